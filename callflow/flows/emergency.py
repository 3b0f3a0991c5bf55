"""Seed 000 cas F and section 4 situation 6: the emergency bridge on a second line.

« Hotliner (met en attente si possible ou utilise 2e ligne) : appelle le 15
(SAMU) ou 17 (Police) selon contexte ; donne numéro de téléphone du client +
adresse si connue dans le dossier ; explique la situation : "Appel muet,
personne en détresse, respiration difficile". […] Ne JAMAIS raccrocher tant
que les secours ne sont pas arrivés. »

So, once started:

1. The call is latched (callflow/agents/latch.py): nothing of ours hangs the
   caller up or moves the call any more.
2. A second line is placed to the configured emergency destination (in test
   mode a real emergency number is refused before dialling).
3. Busy or no answer: the caller is reassured (« Les secours arrivent… je reste
   en ligne avec vous ») and the line is tried again, with a bounded spacing
   and no limit on attempts while the caller is there.
4. On answer the operator first hears the announcement — the caller's number
   digit by digit, the address if one is on file, « appel muet, personne en
   détresse », what the caller answered — then is bridged with the caller (and
   the agent, if one is in the call).
5. The caller's leg stays up until the emergency leg ends or the caller hangs up.

Every step is time-stamped on the call's record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callflow.agents import latch
from callflow.agents.bridges import Bridges, bridge_id_for
from callflow.agents.config import EmergencyConfig
from callflow.agents.legs import CallNotes, hang_up_quietly, originate_while_up, play_all, wait_down
from callflow.core.agents import Agents, Diagnosis
from callflow.core.channel import CallContext, Channel, CallerHungUp
from callflow.core.errors import ConfigError
from callflow.core.recorder import CallRecorder

log = logging.getLogger(__name__)

DIGIT_WORDS = {**{str(d): f"em_digit_{d}" for d in range(10)}, "+": "em_digit_plus", "*": "em_digit_star", "#": "em_digit_pound"}

#: keypad answers (callflow/flows/keypad.py question ids) the operator is told about
#: « Les secours arrivent… je reste en ligne avec vous » (sounds/prompts.yaml)
REASSURE = "emergency_reassure"

ANSWER_PROMPTS = {
    ("urgence_medicale", "oui"): "emergency_answer_medical",
    ("m_entendez_vous", "oui"): "emergency_answer_hears",
    ("difficulte_a_parler", "oui"): "emergency_answer_difficulty",
}

AddressLookup = Callable[[str | None], Awaitable[str | None]]
ChannelLookup = Callable[[str], Channel | None]


def national(number: str | None) -> str:
    """+33 6 12 34 56 78 → 0612345678 (what a French operator dials back)."""
    if not number:
        return ""
    digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if digits.startswith("+33"):
        return "0" + digits[3:]
    if digits.startswith("0033"):
        return "0" + digits[4:]
    return digits


def announcement(caller_number: str | None, *, address_known: bool, answers: dict[str, str], situation: str,
                 by_agent: bool) -> list[str]:
    """The operator's briefing, as prompt ids (the situation of cas F, then who and where)."""
    prompts = ["emergency_announce_intro"]
    prompts.append("emergency_situation_agent" if by_agent else "emergency_situation_silent")
    for (question, answer), prompt in ANSWER_PROMPTS.items():
        if answers.get(question) == answer:
            prompts.append(prompt)
    number = national(caller_number)
    if number:
        spoken = [DIGIT_WORDS[d] for d in number if d in DIGIT_WORDS]
        prompts += ["emergency_number_is", *spoken]  # once: every second counts before the bridge
    else:
        prompts.append("emergency_number_unknown")
    prompts.append("emergency_address_on_file" if address_known else "emergency_address_unknown")
    prompts.append("emergency_connecting")
    return prompts


@dataclass
class EmergencyOutcome:
    bridged: bool
    attempts: int
    ended_by: str  # "emergency_line", "caller"


class EmergencyBridge:
    """Implements callflow.core.handoff.EmergencyLine; the desk calls `run` for an agent's *9."""

    def __init__(self, config: EmergencyConfig, *, recorder: CallRecorder, bridges: Bridges,
                 channels: ChannelLookup, address_for: AddressLookup | None = None,
                 agents: Agents | None = None, agents_context: str = "hotline-agents", speech=None) -> None:
        self.config = config
        self.recorder = recorder
        self.bridges = bridges
        self.channels = channels
        self.address_for = address_for
        self.agents = agents  # who takes the caller once the emergency line has hung up (IVR path)
        self.agents_context = agents_context
        self.speech = speech  # callflow.agents.speech.RuntimeSpeech: reads the address on file aloud
        self.active: dict[str, dict] = {}  # call id → state, for the API

    # -- EmergencyLine (the IVR's cas F) --------------------------------------------------
    async def start(self, call_id: str, *, caller_number: str | None, situation: str, answers: dict[str, str]) -> None:
        latch.latch(call_id)
        caller = self.channels(call_id)
        notes = CallNotes(self.recorder, call_id, caller) if caller is not None else None
        if caller is None or not caller.is_up:
            log.error("emergency for a call that is gone", extra={"call": call_id})
            return
        await self.run(caller, call_id, caller_number=caller_number, situation=situation, answers=answers,
                       notes=notes, bridge_id=None, by_agent=False)
        if caller.is_up:
            # the emergency line hung up and the caller is still there: a person, urgently
            await notes("emergency_to_agent", "caller still on the line after the emergency call")
            diagnosis = Diagnosis(summary=f"urgence: secours prévenus ({situation})", call_type="urgence",
                                  cause="urgence", answers=dict(answers), urgent=True)
            ctx = CallContext(channel=caller, caller=caller.caller, call_id=call_id)
            if self.agents is not None:
                await self.agents.hand_to_agent(ctx, diagnosis, caller.caller.language or "fr")
            else:
                await caller.continue_in_dialplan(self.agents_context)

    # -- the procedure ---------------------------------------------------------------------
    async def run(self, caller: Channel, call_id: str, *, caller_number: str | None, situation: str,
                  answers: dict[str, str], notes: CallNotes, bridge_id: str | None, by_agent: bool) -> EmergencyOutcome:
        """Place the second line, brief the operator, bridge. Returns when the emergency leg or the caller is gone.

        bridge_id: the call's bridge when an agent is in the call (the operator joins it);
        None from the IVR (a bridge is made for the caller and the operator).
        """
        latch.latch(call_id)
        state = {"call_id": call_id, "state": "calling", "attempts": 0, "destination": self.config.destination}
        self.active[call_id] = state
        await notes("emergency_latched", situation)
        try:
            self.config.check_destination(self.config.destination)
        except ConfigError as exc:
            await notes("emergency_refused", str(exc))
            state["state"] = "refused"
            raise
        address = None
        if self.address_for is not None:
            try:
                address = await self.address_for(caller_number)
            except Exception:
                log.exception("address lookup failed", extra={"call": call_id})
        spacing = self.config.retry_spacing
        attempt = 0
        leg: Channel | None = None
        try:
            while True:
                attempt += 1
                state["attempts"] = attempt
                await notes("emergency_dial", f"attempt {attempt} {self.config.destination}")
                result = await originate_while_up(caller, self.config.destination, timeout=self.config.ring_timeout,
                                                  caller_id=self._caller_id(caller_number))
                await notes("emergency_result", f"attempt {attempt}: {result.cause}")
                if result.answered and result.channel is not None:
                    leg = result.channel
                    state["state"] = "announcing"
                    prompts = announcement(caller_number, address_known=bool(address), answers=answers,
                                           situation=situation, by_agent=by_agent)
                    if address and self.speech is not None:
                        spoken = await self.speech.prompt(f"Adresse au dossier : {address}.", "fr")
                        if spoken:
                            prompts[prompts.index("emergency_address_on_file")] = spoken
                    await notes("emergency_announce", " ".join(prompts))
                    if await play_all(leg, prompts, language="fr"):
                        break
                    # the line dropped before the bridge: keep trying while the caller is there
                    await notes("emergency_line_left", "during the announcement")
                    leg = None
                    state["state"] = "calling"
                # « Les secours arrivent… je reste en ligne avec vous » — then try again
                if not by_agent:
                    await caller.play(REASSURE, barge_in=False)
                if await wait_down(caller, timeout=spacing) is caller:
                    raise CallerHungUp(call_id)
                spacing = min(spacing * 2, self.config.retry_spacing_max)
            if not caller.is_up:
                raise CallerHungUp(call_id)
            own_bridge = bridge_id is None
            if own_bridge:
                bridge_id = bridge_id_for(call_id)
                await self.bridges.create(bridge_id, caller, leg)
            else:
                await self.bridges.add(bridge_id, leg)  # the caller is already there, with the agent
            state["state"] = "bridged"
            await notes("emergency_bridged", f"{bridge_id} attempt {attempt}")
            gone = await wait_down(caller, leg)
            if gone is caller:
                raise CallerHungUp(call_id)
            state["state"] = "line_ended"
            await notes("emergency_line_ended", "the emergency line hung up; the caller is still there")
            if own_bridge:
                await self.bridges.remove(bridge_id, caller)
                await self.bridges.destroy(bridge_id)
            return EmergencyOutcome(True, attempt, "emergency_line")
        except CallerHungUp:
            state["state"] = "caller_left"
            await notes("emergency_caller_left", f"after {attempt} attempt(s)")
            if leg is not None and leg.is_up:
                await play_all(leg, ["emergency_caller_left"], language="fr")
                await hang_up_quietly(leg, "the caller hung up")
            return EmergencyOutcome(leg is not None, attempt, "caller")
        finally:
            self.active.pop(call_id, None)

    def _caller_id(self, caller_number: str | None) -> str | None:
        number = self.config.caller_id or national(caller_number)
        return f'"Urgence numi" <{number}>' if number else None

