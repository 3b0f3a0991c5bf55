"""Seed 000 cas F and section 4 situation 6: the emergency bridge on a second line.

« Hotliner (met en attente si possible ou utilise 2e ligne) : appelle le 15
(SAMU) ou 17 (Police) selon contexte ; donne numéro de téléphone du client +
adresse si connue dans le dossier ; explique la situation : "Appel muet,
personne en détresse, respiration difficile". […] Ne JAMAIS raccrocher tant
que les secours ne sont pas arrivés. »

So, once started:

1. The call is latched on its one state (`Call.emergency`, callflow/core/call.py,
   durable): nothing of ours hangs the caller up, moves the call or takes them
   out of the bridge with the line any more (callflow/core/guard.py decides).
2. A second line is placed to the configured emergency destination (in test
   mode a real emergency number is refused before dialling).
3. Busy or no answer: the caller hears that help is being *called*
   (« J'appelle les secours pour vous… je reste en ligne avec vous »), never
   that it is coming, and the line is tried again, with a bounded spacing and
   no limit on attempts while the caller is there.
4. No operator within `person_after` (30 s): the supervisor is notified and a
   person (the agents' desk, urgent) takes the caller at once, while the line
   keeps being tried; the operator then joins the person and the caller.
5. On answer the operator first hears the announcement — the caller's number
   digit by digit, the address if one is on file, « appel muet, personne en
   détresse », what the caller answered — then is bridged with the caller (and
   the person, if one is in the call).
6. The caller's leg stays up until the emergency leg ends or the caller hangs up.

Every step is time-stamped on the call's record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callflow.agents.bridges import Bridges, bridge_id_for
from callflow.agents.config import EmergencyConfig
from callflow.agents.legs import CallNotes, originate_while_up, play_all, wait_down
from callflow.core.call import REGISTRY
from callflow.core.guard import Guard
from callflow.core.agents import Agents, Diagnosis
from callflow.core.channel import Channel, CallerHungUp
from callflow.core.errors import ConfigError
from callflow.core.recorder import CallRecorder

log = logging.getLogger(__name__)

DIGIT_WORDS = {**{str(d): f"em_digit_{d}" for d in range(10)}, "+": "em_digit_plus", "*": "em_digit_star", "#": "em_digit_pound"}

#: keypad answers (callflow/flows/keypad.py question ids) the operator is told about
#: « J'appelle les secours pour vous. Ne raccrochez pas, je reste en ligne avec vous. » (sounds/prompts.yaml):
#: until an operator answered, the caller hears that help is being called, never that it is coming.
CALLING = "emergency_calling"

ANSWER_PROMPTS = {
    ("urgence_medicale", "oui"): "emergency_answer_medical",
    ("m_entendez_vous", "oui"): "emergency_answer_hears",
    ("difficulte_a_parler", "oui"): "emergency_answer_difficulty",
}

AddressLookup = Callable[[str | None], Awaitable[str | None]]
ChannelLookup = Callable[[str], Channel | None]
Notify = Callable[[str, str, str], Awaitable[None]]  # kind, call id, detail


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
                 agents: Agents | None = None, agents_context: str = "hotline-agents", speech=None,
                 notify: Notify | None = None) -> None:
        self.config = config
        self.recorder = recorder
        self.bridges = bridges
        self.channels = channels
        self.address_for = address_for
        self.agents = agents  # who takes the caller (no operator within person_after, or once the line hung up)
        self.agents_context = agents_context
        self.speech = speech  # callflow.agents.speech.RuntimeSpeech: reads the address on file aloud
        self.notify = notify  # the supervisor's notifications (the desk's), set by the wiring
        self.active: dict[str, dict] = {}  # call id → state, for the API

    # -- EmergencyLine (the IVR's cas F) --------------------------------------------------
    async def start(self, call_id: str, *, caller_number: str | None, situation: str, answers: dict[str, str]) -> None:
        call = REGISTRY.open(call_id)
        call.latch_emergency("cas F")
        caller = self.channels(call_id)
        notes = CallNotes(self.recorder, call_id, caller) if caller is not None else None
        if caller is None or not caller.is_up:
            log.error("emergency for a call that is gone", extra={"call": call_id})
            return
        diagnosis = Diagnosis(summary=f"urgence: secours appelés ({situation})", call_type="urgence",
                              cause="urgence", answers=dict(answers), urgent=True)
        call.attach(caller)  # the same one Call, its channel on it, for whoever takes the caller
        person: asyncio.Task | None = None

        async def a_person_takes_the_caller() -> None:
            nonlocal person
            if person is None and self.agents is not None:
                person = asyncio.ensure_future(self.agents.hand_to_agent(call, diagnosis, caller.caller.language or "fr"))

        try:
            await self.run(caller, call_id, caller_number=caller_number, situation=situation, answers=answers,
                           notes=notes, bridge_id=None, by_agent=False, on_no_operator=a_person_takes_the_caller)
            if caller.is_up and person is None:
                # the emergency line hung up and the caller is still there: a person, urgently
                await notes("emergency_to_agent", "caller still on the line after the emergency call")
                if self.agents is not None:
                    await a_person_takes_the_caller()
                else:
                    await Guard(call, notes, notes.now).move_caller(caller, self.agents_context,
                                                                    reason="after the emergency line")
            if person is not None:
                await person  # the desk keeps the caller until they hang up
        finally:
            if person is not None and not person.done():
                await asyncio.wait([person])

    # -- the procedure ---------------------------------------------------------------------
    async def run(self, caller: Channel, call_id: str, *, caller_number: str | None, situation: str,
                  answers: dict[str, str], notes: CallNotes, bridge_id: str | None, by_agent: bool,
                  on_no_operator: Callable[[], Awaitable[None]] | None = None) -> EmergencyOutcome:
        """Place the second line, brief the operator, bridge. Returns when the emergency leg or the caller is gone.

        bridge_id: the call's bridge when an agent is in the call (the operator joins it);
        None from the IVR (a bridge is made for the caller and the operator, or the one a
        person already shares with the caller is used).
        """
        call = REGISTRY.open(call_id)
        call.latch_emergency("emergency line")
        guard = Guard(call, notes, notes.now)
        state = {"call_id": call_id, "state": "calling", "attempts": 0, "destination": self.config.destination}
        self.active[call_id] = state
        await notes("emergency_latched", situation)
        try:
            self.config.check_destination(self.config.destination)
        except ConfigError as exc:
            await notes("emergency_refused", str(exc))
            state["state"] = "refused"
            if on_no_operator is not None:
                await on_no_operator()  # never left alone: a person takes the caller
            await self._alert(call_id, f"ligne des secours refusée: {exc}")
            raise
        address = None
        if self.address_for is not None:
            try:
                address = await self.address_for(caller_number)
            except Exception:
                log.exception("address lookup failed", extra={"call": call_id})
        watchdog = asyncio.ensure_future(self._no_operator_after(call_id, state, notes, on_no_operator,
                                                                 wait=self._left_before_a_person(call)))
        spacing = self.config.retry_spacing
        attempt = 0
        leg: Channel | None = None
        try:
            while True:
                joined = call.legs.get("emergency")
                if joined and (leg is None or joined != leg.id):
                    # the line answered a call placed before a restart and was bridged by the controller
                    await notes("emergency_line_joined", f"{joined} (placed before a restart)")
                    state["state"] = "bridged"
                    return EmergencyOutcome(True, attempt, "adopted")
                attempt += 1
                state["attempts"] = attempt
                await notes("emergency_dial", f"attempt {attempt} {self.config.destination}")
                result = await originate_while_up(caller, self.config.destination, timeout=self.config.ring_timeout,
                                                  caller_id=self._caller_id(caller_number))
                await notes("emergency_result", f"attempt {attempt}: {result.cause}")
                if result.answered and result.channel is not None:
                    leg = result.channel
                    call.set_leg("emergency", leg.id)
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
                    call.set_leg("emergency", None)
                    leg = None
                    state["state"] = "calling"
                # « J'appelle les secours… je reste en ligne avec vous »: help is being *called*;
                # never « les secours arrivent » before an operator answered. Not once a person has the caller.
                if not by_agent and not state.get("person"):
                    await caller.play(CALLING, barge_in=False)
                if await wait_down(caller, timeout=spacing) is caller:
                    raise CallerHungUp(call_id)
                spacing = min(spacing * 2, self.config.retry_spacing_max)
            if not caller.is_up:
                raise CallerHungUp(call_id)
            watchdog.cancel()
            shared = bridge_id or call.bridge_id  # a person may already share a bridge with the caller
            own_bridge = shared is None
            if own_bridge:
                if state.get("person"):
                    try:
                        await caller.stop_moh()  # on hold for a person: the operator must not hear music
                    except Exception:
                        pass
                bridge_id = bridge_id_for(call_id)
                await self.bridges.create(bridge_id, caller, leg)
            else:
                bridge_id = shared
                await self.bridges.add(bridge_id, leg)  # the caller is already there, with a person
            call.set_bridge(bridge_id)
            state["state"] = "bridged"
            await notes("emergency_bridged", f"{bridge_id} attempt {attempt}")
            gone = await wait_down(caller, leg)
            if gone is caller:
                raise CallerHungUp(call_id)
            state["state"] = "line_ended"
            call.set_leg("emergency", None)
            await notes("emergency_line_ended", "the emergency line hung up; the caller is still there")
            if own_bridge and not state.get("person"):
                await guard.remove_caller(self.bridges, bridge_id, caller, "the emergency line hung up")
                await guard.destroy_bridge(self.bridges, bridge_id, "the emergency line hung up", caller_up=caller.is_up)
            return EmergencyOutcome(True, attempt, "emergency_line")
        except CallerHungUp:
            state["state"] = "caller_left"
            await notes("emergency_caller_left", f"after {attempt} attempt(s)")
            if leg is not None and leg.is_up:
                await play_all(leg, ["emergency_caller_left"], language="fr")
                await guard.drop_leg(leg, "emergency", "the caller hung up", caller_up=False)
            return EmergencyOutcome(leg is not None, attempt, "caller")
        finally:
            watchdog.cancel()
            self.active.pop(call_id, None)

    def _left_before_a_person(self, call) -> float:
        """person_after counts from the latch, also for an emergency taken back after a restart (the caller
        has been waiting all along); not knowing since when, a person comes at once."""
        if call.emergency_since is None:
            return 0.0
        return min(self.config.person_after, max(0.0, self.config.person_after - (time.time() - call.emergency_since)))

    async def _no_operator_after(self, call_id: str, state: dict, notes: CallNotes,
                                 on_no_operator: Callable[[], Awaitable[None]] | None, *, wait: float) -> None:
        """No operator within person_after (busy, no answer, unreachable): people are alerted, a person comes."""
        await asyncio.sleep(wait)
        if state.get("state") != "calling":
            return
        state["person"] = True
        await notes("emergency_no_operator", f"no operator after {self.config.person_after:.0f}s: "
                                             "supervisor and agents alerted, the line is still being tried")
        await self._alert(call_id, f"aucun opérateur des secours après {self.config.person_after:.0f}s "
                                   f"({state.get('attempts', 0)} essai(s)): prendre l'appelant")
        if on_no_operator is not None:
            await on_no_operator()

    async def _alert(self, call_id: str, detail: str) -> None:
        if self.notify is None:
            return
        try:
            await self.notify("emergency_unanswered", call_id, detail)
        except Exception:
            log.exception("emergency alert failed", extra={"call": call_id})

    def _caller_id(self, caller_number: str | None) -> str | None:
        number = self.config.caller_id or national(caller_number)
        return f'"Urgence numi" <{number}>' if number else None

