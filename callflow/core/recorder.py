"""The call record a flow writes as it goes (seed 000 « Documenter l'appel »).

Flows see only this Protocol; callflow/store/records.py writes it to SQL and
`MemoryRecorder` keeps it in memory for unit tests. Times passed as `at` are
seconds since the call was answered; `started_at` is an epoch.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Protocol


class CallType(str, enum.Enum):
    """« TYPE » of the documentation card."""

    MUET_COMPLET = "muet_complet"  # cas C: aucun son, ligne morte
    RESPIRATION = "respiration"  # cas B (and taps only: present, does not speak)
    BRUIT_DE_FOND = "bruit_de_fond"  # cas A
    PLEURS = "pleurs"  # cas D
    LANGUE_ETRANGERE = "langue_etrangere"  # cas E
    URGENCE = "urgence"  # cas F
    PAROLE = "parole"  # the caller spoke at once: not a silent call

    @property
    def label(self) -> str:
        return _TYPE_LABELS[self]


class Cause(str, enum.Enum):
    """« CAUSE PROBABLE » of the documentation card (seed section 2 categories)."""

    TECHNIQUE = "technique"
    HANDICAP = "handicap"
    EMOTIONNELLE = "emotionnelle"
    LINGUISTIQUE = "linguistique"
    ENVIRONNEMENTALE = "environnementale"
    URGENCE = "urgence"
    ACCIDENTEL = "accidentel"

    @property
    def label(self) -> str:
        return _CAUSE_LABELS[self]


_TYPE_LABELS = {
    CallType.MUET_COMPLET: "Appel muet complet",
    CallType.RESPIRATION: "Respiration",
    CallType.BRUIT_DE_FOND: "Bruit de fond",
    CallType.PLEURS: "Pleurs",
    CallType.LANGUE_ETRANGERE: "Langue étrangère",
    CallType.URGENCE: "Urgence",
    CallType.PAROLE: "Parole",
}
_CAUSE_LABELS = {
    Cause.TECHNIQUE: "Technique",
    Cause.HANDICAP: "Handicap",
    Cause.EMOTIONNELLE: "Émotionnelle",
    Cause.LINGUISTIQUE: "Linguistique",
    Cause.ENVIRONNEMENTALE: "Environnementale",
    Cause.URGENCE: "Urgence",
    Cause.ACCIDENTEL: "Accidentel",
}


class HungUpBy(str, enum.Enum):
    CALLER = "caller"
    SYSTEM = "system"
    AGENT = "agent"  # the call left the flow for a person (agent or emergency line)


class CallRecorder(Protocol):
    async def start(self, call_id: str, *, number: str | None, started_at: float, flow: str, language: str) -> None: ...

    async def note(self, call_id: str, kind: str, detail: str = "", *, at: float) -> None:
        """One action: prompt, question, answer, timeout, handoff, hangup_refused, …"""
        ...

    async def audio(
        self, call_id: str, *, start: float, end: float, state: str, distress: bool = False, level_dbfs: float = -99.0
    ) -> None:
        """One segment of the audio timeline (consecutive readings of one state)."""
        ...

    async def set_type(self, call_id: str, call_type: CallType) -> None: ...

    async def set_cause(self, call_id: str, cause: Cause) -> None: ...

    async def link(self, call_id: str, kind: str, ref: str, *, at: float) -> None:
        """Follow-up link (outbox message id, SMS reply, ticket…)."""
        ...

    async def ended(self, call_id: str, *, at: float, hung_up_by: HungUpBy, reason: str) -> None:
        """`at` is the call duration in seconds."""
        ...


@dataclass
class MemoryCall:
    call_id: str
    number: str | None
    started_at: float
    flow: str
    language: str
    call_type: CallType | None = None
    cause: Cause | None = None
    actions: list[tuple[float, str, str]] = field(default_factory=list)
    timeline: list[tuple[float, float, str, bool, float]] = field(default_factory=list)
    links: list[tuple[float, str, str]] = field(default_factory=list)
    duration: float | None = None
    hung_up_by: HungUpBy | None = None
    hangup_reason: str | None = None

    def kinds(self, kind: str) -> list[str]:
        """Details of every action of one kind, in order (handy in tests)."""
        return [detail for _, k, detail in self.actions if k == kind]


class MemoryRecorder:
    """CallRecorder kept in a dict, for unit tests."""

    def __init__(self) -> None:
        self.calls: dict[str, MemoryCall] = {}

    async def start(self, call_id: str, *, number: str | None, started_at: float, flow: str, language: str) -> None:
        self.calls[call_id] = MemoryCall(call_id, number, started_at, flow, language)

    async def note(self, call_id: str, kind: str, detail: str = "", *, at: float) -> None:
        self.calls[call_id].actions.append((at, kind, detail))

    async def audio(
        self, call_id: str, *, start: float, end: float, state: str, distress: bool = False, level_dbfs: float = -99.0
    ) -> None:
        self.calls[call_id].timeline.append((start, end, state, distress, level_dbfs))

    async def set_type(self, call_id: str, call_type: CallType) -> None:
        self.calls[call_id].call_type = call_type

    async def set_cause(self, call_id: str, cause: Cause) -> None:
        self.calls[call_id].cause = cause

    async def link(self, call_id: str, kind: str, ref: str, *, at: float) -> None:
        self.calls[call_id].links.append((at, kind, ref))

    async def ended(self, call_id: str, *, at: float, hung_up_by: HungUpBy, reason: str) -> None:
        c = self.calls[call_id]
        c.duration, c.hung_up_by, c.hangup_reason = at, hung_up_by, reason


class ResilientRecorder:
    """Wraps a CallRecorder so that a failing store never breaks a live call.

    The caller comes first: a write that fails is logged (the call id, never the
    number) and counted, and the flow goes on.
    """

    def __init__(self, inner: CallRecorder) -> None:
        self.inner = inner
        self.failures = 0

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        async def guarded(*args, **kwargs):
            try:
                return await method(*args, **kwargs)
            except Exception:
                self.failures += 1
                _log.exception("call record: %s failed for call %s", name, args[0] if args else "?")
                return None

        return guarded


_log = logging.getLogger(__name__)
