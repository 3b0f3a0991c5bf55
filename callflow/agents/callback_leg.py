"""A callback answered: the person called back goes to an agent through the desk, with the original call.

Seed 000 promises callbacks (« je vous rappelle dans 5 minutes », cas B choice 3: « que quelqu'un
d'autre appelle pour vous (proche, aidant) », seed 003's overflow slots). When the scheduler's
call is answered:

1. The person called back hears who is calling and why (« Bonjour, ici numi.support… »: the
   caller « nous vous rappelons comme convenu », a relative « un de vos proches nous a demandé
   de vous appeler »).
2. The desk rings the agents as for any caller (longest idle first, hold music, never dropped);
   while an agent's phone rings, their console shows the original call's card (caller,
   diagnosis, keypad answers, why the callback) — the agent knows who and why before a word.
3. The agent picks up and first hears a short whisper (« Rappel d'un appelant » / « Rappel
   d'un proche », as the desk whispers « appel urgent »), then the person is connected.

The callback leg is a call of its own (record flow "callback", linked both ways to the original).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from callflow.core.agents import Diagnosis
from callflow.core.call import Call
from callflow.core.channel import CallerHungUp
from callflow.core.recorder import HungUpBy

log = logging.getLogger(__name__)

ROUTE = "callback"  # Stasis args: callback,<original call id>,<target>,<number>
HELLO = {"caregiver": "callback_hello_caregiver"}  # else "callback_hello"
WHISPER = {"caregiver": "agent_whisper_callback_caregiver"}  # else "agent_whisper_callback"
WHO = {"caregiver": "proche / aidant", "agents": "l'appelant", "supervisor": "l'appelant (superviseur)"}


@dataclass(frozen=True)
class CallbackOf:
    """What the callback leg knows of its promise: whose call, to whom, which number."""

    original: str
    target: str
    number: str | None

    @classmethod
    def from_args(cls, args: list[str] | tuple[str, ...] | None) -> "CallbackOf | None":
        args = list(args or [])
        if len(args) < 2 or args[0] != ROUTE or not args[1]:
            return None
        target = args[2] if len(args) > 2 and args[2] else "agents"
        number = args[3] if len(args) > 3 and args[3] else None
        return cls(args[1], target, number)

    @property
    def who(self) -> str:
        return WHO.get(self.target, self.target)


def args_for(original: str, target: str, number: str) -> list[str]:
    return [ROUTE, original, target, number]


def whisper_for(args: Any) -> list[str]:
    """The agent's whisper before a callback's person is connected (empty for any other call)."""
    of = CallbackOf.from_args(args)
    if of is None:
        return []
    return [WHISPER.get(of.target, "agent_whisper_callback")]


def original_card(record: dict | None) -> dict:
    """The original call as the agent needs it: number, when, diagnosis, keypad answers, what was promised."""
    if not record:
        return {"found": False}
    actions = record.get("actions") or []
    answers = {}
    for action in actions:
        if action.get("kind") == "answer" and "=" in (action.get("detail") or ""):
            key, _, value = action["detail"].partition("=")
            answers[key.strip()] = value.strip()
    queued = [a["detail"] for a in actions if a.get("kind") in ("agent_queue", "handoff", "distress") and a.get("detail")]
    return {"found": True, "call_id": record.get("call_id"), "number": record.get("number"),
            "started_at": record.get("started_at"), "language": record.get("language") or "fr",
            "call_type": record.get("call_type") or "", "cause": record.get("cause") or "",
            "diagnosis": queued[-1] if queued else (record.get("call_type") or ""), "answers": answers}


def diagnosis_for(of: CallbackOf, card: dict, reason: str = "") -> Diagnosis:
    why = reason or of.target
    summary = f"rappel {of.who} ({why})"
    if card.get("diagnosis"):
        summary += f" — appel d'origine: {card['diagnosis']}"
    return Diagnosis(summary=summary[:300], call_type=card.get("call_type") or None, answers=dict(card.get("answers") or {}))


async def callback_to_agent(call: Call, *, agents: Any, records: Any) -> None:
    """The flow of an answered callback leg (call.args from `args_for`)."""
    of = CallbackOf.from_args(call.args)
    if of is None:
        raise ValueError(f"not a callback leg: {call.args!r}")
    original = await records.get_call(of.original) if records is not None else None
    card = original_card(original)
    language = card.get("language") or "fr"
    # the leg's own caller id is ours: the person called back is this number, in the original call's language
    who = replace(call.channel.caller, number=of.number or call.channel.caller.number, language=language)
    call.channel.caller = who
    call.caller = who
    started = time.time()
    await records.start(call.call_id, number=of.number, started_at=started, flow="callback", language=language)
    await records.add_link(call.call_id, "callback_of", of.original)
    await records.add_link(of.original, "callback_leg", call.call_id)
    hung_up_by, why = HungUpBy.AGENT, "with an agent"
    try:
        await call.channel.play(HELLO.get(of.target, "callback_hello"), language=language, barge_in=False)
        await agents.hand_to_agent(call, diagnosis_for(of, card), language)
    except CallerHungUp:
        hung_up_by, why = HungUpBy.CALLER, "hung up"
    finally:
        try:
            await records.ended(call.call_id, at=time.time() - started, hung_up_by=hung_up_by, reason=why)
        except Exception:  # the record never breaks the call
            log.exception("callback record not closed", extra={"call": call.call_id})
