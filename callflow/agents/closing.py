"""Seed 002 « Mettre fin de façon professionnelle à un téléphone qui dure ».

« L'attitude appropriée est la fermeté […] BUT : raccrocher de façon courtoise. »
The agent keys the closing code: the caller hears the courteous closing
(« je vous ai donné toutes les informations… je vous souhaite une bonne
journée, au revoir ») and the call ends after it.

« l'annonce que le téléphone est enregistré pour des questions de qualité […] a
été de faire baisser les dérapages »: `recorded_call_notice` plays that notice at
the start of a call when configured (the app wiring calls it).

Never during an emergency: the call's guard (callflow/core/guard.py) refuses it.
"""

from __future__ import annotations

from callflow.agents.legs import CallNotes
from callflow.core.call import REGISTRY
from callflow.core.channel import Channel, CallerHungUp
from callflow.core.guard import By, Guard

CLOSING_PROMPT = "closing_firm"
NOTICE_PROMPT = "recorded_call_notice"


async def firm_closing(caller: Channel, call_id: str, notes: CallNotes, *, language: str | None = None,
                       guard: Guard | None = None) -> bool:
    """Play the closing to the caller, then end the call (through the guard). False (and recorded) when refused."""
    guard = guard or Guard(REGISTRY.open(call_id), notes, notes.now)
    if guard.call.emergency:
        await notes("closing_refused", "emergency: never hang up until help is there")
        return False
    if not caller.is_up:
        return False
    await notes("closing", CLOSING_PROMPT)
    try:
        await caller.play(CLOSING_PROMPT, language=language, barge_in=False)
    except CallerHungUp:
        await notes("closing_done", "the caller hung up during the closing")
        return True
    if caller.is_up and not await guard.hang_up_caller(caller, "firm closing (seed 002) after the courteous goodbye",
                                                       by=By.PERSON):
        return False
    await notes("closing_done", "call ended after the closing prompt")
    return True


async def recorded_call_notice(channel: Channel, *, language: str | None = None, notes: CallNotes | None = None) -> None:
    """« Cet appel peut être enregistré pour des questions de qualité » — at the start of a call."""
    if notes is not None:
        await notes("prompt", NOTICE_PROMPT)
    await channel.play(NOTICE_PROMPT, language=language, barge_in=False)
