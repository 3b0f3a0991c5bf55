"""Seed 002 « Mettre fin de façon professionnelle à un téléphone qui dure ».

« L'attitude appropriée est la fermeté […] mixer détermination […] et souplesse
(je peux m'y reprendre à 2 ou 3 reprises, c'est ok !). BUT : raccrocher de façon
courtoise. » The agent keys the closing code and the caller hears, in up to
three steps, what the seed's professionals say:

1. the reformulated close — « J'espère que je vous ai donné toutes les
   informations nécessaires à votre demande. Alors on va terminer cette
   conversation. » (Madeleine, Carmen);
2. a firmer one — « Je ne peux pas faire plus pour vous. Il y a d'autres appels
   qui m'attendent. » (Martine, Martin);
3. the goodbye — « Je vous souhaite une bonne journée. Au revoir. » — then BYE
   (« c'est le professionnel qui raccroche tout simplement après un 3ème au
   revoir »).

« Le plus souvent, les clients raccrochent »: after steps 1 and 2 the caller
has `step_wait` seconds to hang up, and the closing ends there. Every step is
on the call's record (`closing_step`), then how it ended (`closing_done`).

« l'annonce que le téléphone est enregistré pour des questions de qualité […] a
été de faire baisser les dérapages »: `recorded_call_notice` plays that notice at
the start of a call when configured (the app wiring calls it).

Never during an emergency (callflow/agents/latch.py): the closing is refused.
Choice where the seed is silent: the steps follow each other by themselves
(the agent keys the code once); the caller is out of the agent's bridge
meanwhile, as before, so the agent is free.
"""

from __future__ import annotations

from callflow.agents import latch
from callflow.agents.legs import CallNotes, PersonGuard
from callflow.core.channel import Channel, CallerHungUp

CLOSING_STEPS = ("closing_step_1", "closing_step_2", "closing_step_3")
NOTICE_PROMPT = "recorded_call_notice"
STEP_WAIT = 5.0  # seconds the caller has to hang up after steps 1 and 2


async def firm_closing(caller: Channel, call_id: str, notes: CallNotes, *, language: str | None = None,
                       guard: PersonGuard | None = None, step_wait: float = STEP_WAIT) -> bool:
    """The three steps, then the end of the call (through the guard). False (and recorded) when refused."""
    guard = guard or PersonGuard(caller, call_id, notes)
    if latch.is_latched(call_id):
        await notes("closing_refused", "emergency: never hang up until help is there")
        return False
    if not caller.is_up:
        return False
    await notes("closing", f"{len(CLOSING_STEPS)} steps")
    for step, prompt in enumerate(CLOSING_STEPS, start=1):
        await notes("closing_step", f"{step}: {prompt}")
        try:
            await caller.play(prompt, language=language, barge_in=False)
        except CallerHungUp:
            await notes("closing_done", f"the caller hung up during step {step}")
            return True
        if step < len(CLOSING_STEPS) and await _caller_left_within(caller, step_wait):
            await notes("closing_done", f"the caller hung up after step {step}")
            return True
    if caller.is_up and not await guard.hang_up("firm closing (seed 002) after the third goodbye"):
        return False
    await notes("closing_done", f"call ended after step {len(CLOSING_STEPS)} (goodbye)")
    return True


async def _caller_left_within(caller: Channel, seconds: float) -> bool:
    """Wait for the caller to hang up (a key they press meanwhile only moves to the next step)."""
    try:
        await caller.next_input(seconds, accept_taps=False)
    except CallerHungUp:
        return True
    caller.flush_input()
    return not caller.is_up


async def recorded_call_notice(channel: Channel, *, language: str | None = None, notes: CallNotes | None = None) -> None:
    """« Cet appel peut être enregistré pour des questions de qualité » — at the start of a call."""
    if notes is not None:
        await notes("prompt", NOTICE_PROMPT)
    await channel.play(NOTICE_PROMPT, language=language, barge_in=False)
