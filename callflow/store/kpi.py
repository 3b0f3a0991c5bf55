"""Seed 000 section 8, « KPIs Appels muets », from the call records.

A silent call is a recorded call whose type is known and is not « parole »
(the caller spoke at once). The premature hang-up rate is the audit's
(callflow/store/audit.py): read from the record alone, independently of the
hang-up guard, any system hang-up after any sign of life, during an emergency,
without the final warning or before the seed's 20 s counts. It must be 0;
documented calls must be 100 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from callflow.core.recorder import CallType
from callflow.store.audit import audit_call

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
    premature_all_calls: int = 0  # every call, spoken ones included: caller safety is for all
    premature_reasons: dict[str, list[str]] = field(default_factory=dict)  # call id → the audit's reasons

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


def is_premature(call: dict) -> bool:
    """A system hang-up the audit finds premature (callflow/store/audit.py)."""
    return audit_call(call).premature


def converted(call: dict) -> bool:
    return any(a["kind"] == "handoff" and a["detail"].split(" ")[0] in CONVERSIONS for a in call.get("actions", []))


def compute(calls: list[dict]) -> SilentCallKpis:
    """KPIs over calls as returned by Records.calls_with_details (with actions, audio, links)."""
    silent = [c for c in calls if is_silent(c)]
    n = len(silent)
    durations = [c["duration"] for c in silent if c.get("duration") is not None]
    audits = {c["call_id"]: audit_call(c) for c in calls}
    hangups = [c for c in silent if audits[c["call_id"]].hung_up_by_system]
    premature = [c["call_id"] for c in hangups if audits[c["call_id"]].premature]
    premature_all = [a for a in audits.values() if a.premature]
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
        premature_all_calls=len(premature_all),
        premature_reasons={a.call_id: a.reasons for a in premature_all},
    )


async def kpis(records, since: Any = None, until: Any = None) -> SilentCallKpis:
    return compute(await records.calls_with_details(since, until))


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole
