"""Seed 004 « Client mécontent ou en colère »: what the system does around the agent's conversation.

* §3.1 the incident card (« Fiche de suivi Situation critique / client en
  colère », « À remplir immédiatement après l'appel »): `IncidentCard`, posted
  by the agent's screen (`POST /api/calls/{id}/incident`) and written to the
  call's record (action `incident_card`, JSON), with what the system knows filled
  in (hotliner, date, duration, the flags *7 / *8, « voix forte »).
* §3.2 / §3.3 « Risque churn 🔴 … un suivi proactif est planifié (appel J+1 ou
  J+3) »: `schedule_followups` — the supervisor calls back at J+1 and J+3 (both:
  the issue asks for the two), once per call, whether the agent keyed *7, *8 or
  marked the card's churn risk red.
* « voix forte »: `RaisedVoiceWatch` reads Asterisk's TALK_DETECT events set
  with a high energy threshold on the caller's channel while an agent has the
  call (native cost: no media fork). Loud talking that adds up to
  `seconds` within `window` seconds raises the alert once, to the agent (a short
  whisper only they hear) and to the supervisor's notifications.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

INTENSITIES = ("legere", "moderee", "forte", "extreme")
REASONS = ("promesse_non_tenue", "produit", "communication", "bug", "relation", "externe", "autre")
CHURN_RISKS = ("faible", "modere", "eleve", "critique")
SENTIMENTS = ("tres_fache", "moins_fache", "apaise", "satisfait")
PRIORITIES = ("normal", "haut", "urgent")
CALMED = ("moins_fache", "apaise", "satisfait")  # « colère apaisée avant fin appel »
RED_CHURN = ("eleve", "critique")  # « Si le hotliner a marqué 🔴 ou 🔴🔴 »
TEXT_MAX = 2000


@dataclass
class IncidentCard:
    """§3.1, field by field (the agent's part; the system adds its own when storing)."""

    client: str = ""  # Nom, ID, ancienneté, valeur, abonnement
    intensite: str = ""  # 🟢 légère … 🔴🔴 extrême
    raison: str = ""  # RAISON PRINCIPALE
    raison_detail: str = ""
    bien_etre_hotliner: int | None = None  # 1–5
    geste_commercial: str = ""  # type
    geste_montant: float | None = None  # €
    escalade_vers: str = ""
    menace_resiliation: bool = False
    engagements: list[str] = field(default_factory=list)  # « Action + délai », up to 3
    ticket: str = ""
    priorite: str = ""
    risque_churn: str = ""
    sentiment_fin: str = ""
    satisfaction_plan: int | None = None  # 1–5, « Client satisfait du plan proposé »
    desescalade_minutes: float | None = None  # « Durée avant client apaisé »
    note: str = ""

    @classmethod
    def from_json(cls, data: Any) -> "IncidentCard":
        if not isinstance(data, dict):
            raise ValueError("the incident card is a JSON object")
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown incident card field(s): {', '.join(sorted(unknown))}")
        card = cls()
        for name, choices in (("intensite", INTENSITIES), ("raison", REASONS), ("risque_churn", CHURN_RISKS),
                              ("sentiment_fin", SENTIMENTS), ("priorite", PRIORITIES)):
            value = data.get(name, "")
            if value and value not in choices:
                raise ValueError(f"incident card {name!r} is one of {', '.join(choices)}")
            setattr(card, name, value)
        for name in ("client", "raison_detail", "geste_commercial", "escalade_vers", "ticket", "note"):
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > TEXT_MAX:
                raise ValueError(f"incident card {name!r} is a text of at most {TEXT_MAX} characters")
            setattr(card, name, value.strip())
        for name in ("bien_etre_hotliner", "satisfaction_plan"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5):
                raise ValueError(f"incident card {name!r} is a whole number from 1 to 5")
            setattr(card, name, value)
        for name, top in (("geste_montant", 10000.0), ("desescalade_minutes", 600.0)):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top):
                raise ValueError(f"incident card {name!r} is a number from 0 to {top:.0f}")
            setattr(card, name, None if value is None else float(value))
        threat = data.get("menace_resiliation", False)
        if not isinstance(threat, bool):
            raise ValueError("incident card 'menace_resiliation' is true or false")
        card.menace_resiliation = threat
        commitments = data.get("engagements", [])
        if not isinstance(commitments, list) or len(commitments) > 3 or \
                not all(isinstance(c, str) and len(c) <= 500 for c in commitments):
            raise ValueError("incident card 'engagements' is a list of at most 3 texts")
        card.engagements = [c.strip() for c in commitments]
        return card

    @property
    def churn_red(self) -> bool:
        return self.risque_churn in RED_CHURN

    def stored(self, **system: Any) -> str:
        """The card as written to the call's record: the agent's fields and the system's (hotliner, flags…)."""
        return json.dumps({**asdict(self), **system}, ensure_ascii=False, sort_keys=True)


FOLLOWUP_REASON = "suivi J+{days} (seed 004 §3.3): {why}"


async def schedule_followups(handoffs, call_id: str, number: str | None, *, delays: list[float], why: str
                             ) -> list[tuple[float, Any]]:
    """J+1 and J+3 supervisor calls; returns (delay, HandoffResult) for each."""
    results = []
    for delay in delays:
        days = max(1, round(delay / 86400))
        result = await handoffs.schedule_callback(call_id, number, delay_seconds=delay,
                                                  reason=FOLLOWUP_REASON.format(days=days, why=why)[:500],
                                                  target="supervisor")
        results.append((delay, result))
    return results


class RaisedVoiceWatch:
    """Sustained loud talking from TALK_DETECT start/finish events (a pure rule; times in seconds)."""

    def __init__(self, *, seconds: float = 6.0, window: float = 20.0, clock=time.monotonic) -> None:
        self.seconds = seconds
        self.window = window
        self.clock = clock
        self._loud_since: float | None = None
        self._spans: deque[tuple[float, float]] = deque()
        self.alerted = False

    def started(self) -> None:
        if self._loud_since is None:
            self._loud_since = self.clock()

    def finished(self) -> None:
        if self._loud_since is not None:
            self._spans.append((self._loud_since, self.clock()))
            self._loud_since = None

    def loud_seconds(self) -> float:
        now = self.clock()
        while self._spans and self._spans[0][1] < now - self.window:
            self._spans.popleft()
        total = sum(end - max(start, now - self.window) for start, end in self._spans)
        if self._loud_since is not None:
            total += now - max(self._loud_since, now - self.window)
        return total

    def check(self) -> bool:
        """True once (the first time the caller has shouted long enough)."""
        if self.alerted or self.loud_seconds() < self.seconds:
            return False
        self.alerted = True
        return True
