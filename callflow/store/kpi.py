"""Seed 000 section 8, « KPIs Appels muets », from the call records.

A silent call is a recorded call whose type is known and is not « parole »
(the caller spoke at once). The premature hang-up rate is audited from the
record itself, not from what the flow believed: a system hang-up counts as
premature when the timeline or the actions show a sign of life in the
dead-line window before it, when no final warning was spoken, or when it came
before the seed's 20–30 s. It must be 0; documented calls must be 100 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from callflow.core.recorder import CallType

SIGN_OF_LIFE_STATES = {"breathing", "speech", "taps"}
LIFE_ACTIONS = {"input", "answer", "barge_in", "invalid", "ignored"}
CONVERSIONS = {"sms", "email", "rappel", "aidant"}  # « résolus via SMS/email/chat » (and callbacks)


@dataclass
class SilentCallKpis:
    calls: int
    silent_calls: int
    silent_pct: float | None  # cible 2–5 %
    mean_silent_duration: float | None  # seconds; cible 1–3 min
    conversion_pct: float | None  # cible ≥ 60 %
    emergencies: int
    emergency_pct: float | None  # cible < 2 %
    system_hangups: int
    premature_hangups: int
    premature_pct: float | None  # must be 0
    documented: int
    documented_pct: float | None  # must be 100
    premature_call_ids: list[str]
    undocumented_call_ids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_silent(call: dict) -> bool:
    return call.get("call_type") not in (None, CallType.PAROLE.value)


def is_documented(call: dict) -> bool:
    """Date, number (or withheld), duration, type, cause, who hung up, and what was done."""
    return (
        call.get("call_type") is not None
        and call.get("cause") is not None
        and call.get("duration") is not None
        and call.get("hung_up_by") is not None
        and bool(call.get("actions"))
    )


def is_premature(call: dict, window: float = 40.0, min_wait: float = 20.0) -> bool:
    """A system hang-up with a sign of life in the `window` seconds before it, or without warning."""
    if call.get("hung_up_by") != "system":
        return False
    end = call.get("duration") or 0.0
    if end < min_wait:
        return True
    prompts = [a["detail"] for a in call.get("actions", []) if a["kind"] == "prompt"]
    if "dead_line_final" not in prompts:
        return True
    for seg in call.get("audio", []):
        alive = seg["state"] in SIGN_OF_LIFE_STATES or seg["distress"]
        if alive and seg["end_at"] > end - window:
            return True
    return any(a["kind"] in LIFE_ACTIONS and a["at"] > end - window for a in call.get("actions", []))


def converted(call: dict) -> bool:
    return any(a["kind"] == "handoff" and a["detail"].split(" ")[0] in CONVERSIONS for a in call.get("actions", []))


def compute(calls: list[dict], *, window: float = 40.0, min_wait: float = 20.0) -> SilentCallKpis:
    """KPIs over calls as returned by Records.calls_with_details (with actions, audio, links)."""
    silent = [c for c in calls if is_silent(c)]
    n = len(silent)
    durations = [c["duration"] for c in silent if c.get("duration") is not None]
    hangups = [c for c in silent if c.get("hung_up_by") == "system"]
    premature = [c["call_id"] for c in hangups if is_premature(c, window, min_wait)]
    undocumented = [c["call_id"] for c in silent if not is_documented(c)]
    emergencies = [c for c in silent if c.get("call_type") == CallType.URGENCE.value]
    return SilentCallKpis(
        calls=len(calls),
        silent_calls=n,
        silent_pct=_pct(n, len(calls)),
        mean_silent_duration=sum(durations) / len(durations) if durations else None,
        conversion_pct=_pct(sum(converted(c) for c in silent), n),
        emergencies=len(emergencies),
        emergency_pct=_pct(len(emergencies), n),
        system_hangups=len(hangups),
        premature_hangups=len(premature),
        premature_pct=_pct(len(premature), n),  # « % appels muets où hotliner a raccroché trop vite »
        documented=n - len(undocumented),
        documented_pct=_pct(n - len(undocumented), n),
        premature_call_ids=premature,
        undocumented_call_ids=undocumented,
    )


async def kpis(records, since: Any = None, until: Any = None, **kw) -> SilentCallKpis:
    return compute(await records.calls_with_details(since, until), **kw)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole
