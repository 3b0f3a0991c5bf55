"""The premature hang-up audit: what the call record alone says, not what the guard believed.

Seed 000: « Ne pas raccrocher prématurément (le client a un besoin réel) »; cas F
« Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés ». Issue 11 asks for
a KPI that can catch a bug in the hang-up guard, so this module is a second,
independent reading of the rule. It deliberately does NOT import the guard
(callflow/flows/safety.py or its successor) nor `SIGNS_OF_LIFE` from core: it reads
the stored record (audio timeline, actions, who hung up) with its own vocabulary.
If the guard and this audit ever disagree, the audit is the one `callflow kpi` shows.

The rule read here, stricter than any time window:
- a sign of life is anything on the record that shows a person on the line, at any
  point of the call: breathing, speech, taps or distress on the audio timeline, a
  background noise whose level moves (somebody handling the phone), a key, a tap, an
  answer, a barge-in, a language chosen, a callback answered;
- a system hang-up is the caller's line ended by us: the record's `hung_up_by` is
  "system", or a `hangup` action on the caller that no person decided (a person
  decides with the firm closing of seed 002, `closing`; an agent's leg that merely
  drops is not a decision — issue 11, item 2);
- a system hang-up is premature when the call showed any sign of life, when the call
  was an emergency, when the seed's cas C was not followed (the final warning
  « je vais raccrocher dans 10 secondes » was not spoken, or the line was hung up
  before the seed's 20 s of waiting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# -- the record's vocabulary, read on its own ------------------------------------------------
#: audio timeline states that can only come from a person on the line
ALIVE_AUDIO = frozenset({"breathing", "speech", "taps"})
#: A noise whose level moves by this much between two noise segments is somebody handling
#: the phone (the same 6 dB a hotliner would notice; chosen here, not taken from the guard).
NOISE_MOVE_DB = 6.0
#: actions that only a person on the caller's line can cause (keys, taps, answers, speech over a prompt)
ALIVE_ACTIONS = frozenset({"input", "answer", "invalid", "barge_in", "ignored", "language", "distress"})
#: actions that mean the call became an emergency (the IVR's cas F, an agent's *9)
EMERGENCY_ACTIONS = frozenset({"emergency", "emergency_latched", "emergency_dial", "emergency_bridged"})
#: a person's deliberate end of the call (seed 002's firm closing): a hang-up after it is theirs
PERSON_ENDS = frozenset({"closing"})
#: the seed's cas C minimum: « attendre 20–30 secondes au total » before the final warning
MIN_DEAD_LINE_WAIT = 20.0
FINAL_WARNING_PROMPT = "dead_line_final"


@dataclass
class HangupAudit:
    """One call read by the audit."""

    call_id: str
    system_hangups: list[tuple[float, str]] = field(default_factory=list)  # (at, what ended the caller)
    signs_of_life: list[tuple[float, str]] = field(default_factory=list)  # (at, what showed a person)
    emergency_at: float | None = None
    reasons: list[str] = field(default_factory=list)  # why a system hang-up was premature

    @property
    def hung_up_by_system(self) -> bool:
        return bool(self.system_hangups)

    @property
    def premature(self) -> bool:
        return bool(self.reasons)


def signs_of_life(call: dict) -> list[tuple[float, str]]:
    """Every moment of the record that shows somebody on the caller's line, in time order."""
    found: list[tuple[float, str]] = []
    last_noise_db: float | None = None
    for seg in call.get("audio") or []:
        state = seg.get("state")
        start = float(seg.get("start_at") or 0.0)
        if state in ALIVE_AUDIO:
            found.append((start, state))
        if seg.get("distress"):
            found.append((start, "distress"))
        if state == "background_noise":
            level = seg.get("level_dbfs")
            if level is not None and last_noise_db is not None and abs(level - last_noise_db) >= NOISE_MOVE_DB:
                found.append((start, f"noise moved {last_noise_db:.0f}→{level:.0f} dBFS"))
            if level is not None:
                last_noise_db = level
    for action in call.get("actions") or []:
        kind, detail = action.get("kind"), action.get("detail") or ""
        if kind in ALIVE_ACTIONS:
            found.append((float(action.get("at") or 0.0), f"{kind} {detail}".strip()))
        elif kind == "callback_answer" and detail and detail != "timeout":
            found.append((float(action.get("at") or 0.0), f"callback answer {detail}"))
    return sorted(found, key=lambda sign: sign[0])


def system_hangups(call: dict) -> list[tuple[float, str]]:
    """When we ended the caller's line, read from who hung up and the `hangup` actions."""
    ends: list[tuple[float, str]] = []
    person_decided = False
    for action in call.get("actions") or []:
        kind = action.get("kind")
        if kind in PERSON_ENDS:
            person_decided = True
        elif kind == "hangup" and not person_decided:
            ends.append((float(action.get("at") or 0.0), f"hangup: {action.get('detail') or ''}".strip()))
    if call.get("hung_up_by") == "system" and not ends:
        ends.append((float(call.get("duration") or 0.0), f"system: {call.get('hangup_reason') or ''}".strip()))
    return ends


def audit_call(call: dict) -> HangupAudit:
    result = HangupAudit(call_id=str(call.get("call_id")))
    result.system_hangups = system_hangups(call)
    result.signs_of_life = signs_of_life(call)
    actions = call.get("actions") or []
    emergency = [float(a.get("at") or 0.0) for a in actions if a.get("kind") in EMERGENCY_ACTIONS]
    result.emergency_at = min(emergency) if emergency else None
    if not result.system_hangups:
        return result
    at, what = result.system_hangups[0]
    if result.signs_of_life:
        first_at, first = result.signs_of_life[0]
        result.reasons.append(f"{what} at {at:.1f}s after a sign of life ({first} at {first_at:.1f}s)")
    if result.emergency_at is not None:
        result.reasons.append(f"{what} at {at:.1f}s during an emergency (from {result.emergency_at:.1f}s)")
    warned = [float(a.get("at") or 0.0) for a in actions
              if a.get("kind") == "prompt" and a.get("detail") == FINAL_WARNING_PROMPT]
    if not warned or min(warned) > at:
        result.reasons.append(f"{what} at {at:.1f}s without the final warning ({FINAL_WARNING_PROMPT})")
    if at < MIN_DEAD_LINE_WAIT:
        result.reasons.append(f"{what} at {at:.1f}s, before the seed's {MIN_DEAD_LINE_WAIT:.0f}s of waiting")
    return result


def audit(calls: list[dict]) -> dict[str, HangupAudit]:
    """Every call read by the audit, by call id (calls as returned by Records.calls_with_details)."""
    return {str(c.get("call_id")): audit_call(c) for c in calls}


def explain(result: HangupAudit) -> dict[str, Any]:
    return {"call_id": result.call_id, "premature": result.premature, "reasons": result.reasons,
            "system_hangups": result.system_hangups, "signs_of_life": result.signs_of_life[:10]}
