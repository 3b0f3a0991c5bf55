"""KPIs of seeds 001 (§7, §9), 003 and 004 (§8) that the call records can give.

Computed from `Records.calls_with_details` (the actions each call's record
holds: `escalation`, `escalation_connected`, `escalation_outcome` JSON,
`flag`, `raised_voice`, `incident_card` JSON, `overflow_offer`, `ticket`…) and
the messages store. What records cannot know (ROI, feedback hotliner,
retention measured months later) is not invented: the seed's « rétention
post-colère » is approximated by the card's churn risk at the end of the call
(not « critique ») and said so in the CLI.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from callflow.flows.anger import CALMED

HOLD_MAX = 30.0  # seed 001 « 30 secondes maximum »


@dataclass
class EscalationKpis:  # seed 001 §7 / §9
    escalations: int
    escalation_pct: float | None  # cible 5–10 %
    outcomes: int
    justified_pct: float | None  # cible ≥ 70 %
    useless_pct: float | None  # « Escalades inutiles » < 25 %
    approved_pct: float | None  # cible 30–40 %
    alternative_pct: float | None
    refused_pct: float | None
    direction_pct: float | None
    mean_exception_eur: float | None  # cible < 50 €
    median_exception_eur: float | None
    max_exception_eur: float | None
    mean_answer_seconds: float | None  # « Temps réponse escalade » ≤ 5 min
    mean_hold_seconds: float | None  # the caller's hold until the conference (≤ 30 s)
    hold_within_30s_pct: float | None
    satisfied_pct: float | None  # « Satisfaction post-escalade » ≥ 85 %


@dataclass
class AngerKpis:  # seed 004 §8
    angry_calls: int
    angry_pct: float | None  # cible 3–7 %
    raised_voice_alerts: int
    cards: int
    deescalated_pct: float | None  # cible ≥ 80 %
    retained_pct: float | None  # approximated: churn risk not « critique » at the end
    mean_plan_satisfaction: float | None  # cible ≥ 4/5
    mean_wellbeing: float | None  # cible ≥ 3/5
    mean_deescalation_minutes: float | None  # cible < 5 min
    gestures: int
    mean_gesture_eur: float | None
    followups_scheduled: int  # J+1 / J+3 calls


@dataclass
class MessageKpis:  # seed 003
    messages: int
    urgent: int
    confirmed_pct: float | None
    open: int
    done: int
    overflow_offers: int
    callback_slots: int


@dataclass
class ProcedureKpis:
    escalation: EscalationKpis
    anger: AngerKpis
    messages: MessageKpis

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json_actions(call: dict, kind: str) -> list[dict]:
    found = []
    for a in call.get("actions", []):
        if a["kind"] == kind:
            try:
                found.append(json.loads(a["detail"]))
            except ValueError:
                continue
    return found


def _kinds(call: dict) -> list[str]:
    return [a["kind"] for a in call.get("actions", [])]


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def escalation_kpis(calls: list[dict]) -> EscalationKpis:
    escalated = [c for c in calls if "escalation" in _kinds(c)]
    outcomes = [o for c in calls for o in _json_actions(c, "escalation_outcome")]
    judged = [o for o in outcomes if o.get("justifiee") is not None or o.get("justifiee_matrice")]

    def is_justified(o: dict) -> bool:
        return o["justifiee"] if o.get("justifiee") is not None else o.get("justifiee_matrice") == "oui"

    decisions = [o.get("decision") for o in outcomes]
    values = [float(o["valeur_eur"]) for o in outcomes
              if o.get("valeur_eur") is not None and o.get("decision") in ("approuvee", "alternative")]
    answers = [float(o["answer_seconds"]) for o in outcomes if o.get("answer_seconds") is not None]
    holds = [float(o["hold_seconds"]) for o in outcomes if o.get("hold_seconds") is not None]
    rated = [o["satisfaction"] for o in outcomes if o.get("satisfaction") is not None]
    n = len(outcomes)
    return EscalationKpis(
        escalations=len(escalated),
        escalation_pct=_pct(len(escalated), len(calls)),
        outcomes=n,
        justified_pct=_pct(sum(is_justified(o) for o in judged), len(judged)),
        useless_pct=_pct(sum(not is_justified(o) for o in judged), len(judged)),
        approved_pct=_pct(decisions.count("approuvee"), n),
        alternative_pct=_pct(decisions.count("alternative"), n),
        refused_pct=_pct(decisions.count("refusee"), n),
        direction_pct=_pct(decisions.count("escaladee"), n),
        mean_exception_eur=_mean(values),
        median_exception_eur=statistics.median(values) if values else None,
        max_exception_eur=max(values) if values else None,
        mean_answer_seconds=_mean(answers),
        mean_hold_seconds=_mean(holds),
        hold_within_30s_pct=_pct(sum(h <= HOLD_MAX + 1 for h in holds), len(holds)),
        satisfied_pct=_pct(sum(r >= 4 for r in rated), len(rated)),
    )


def anger_kpis(calls: list[dict]) -> AngerKpis:
    def angry(c: dict) -> bool:
        flags = [a["detail"] for a in c.get("actions", []) if a["kind"] == "flag"]
        return any(f.startswith(("agressif", "risque churn")) for f in flags) or "raised_voice" in _kinds(c) \
            or "incident_card" in _kinds(c)

    angry_calls = [c for c in calls if angry(c)]
    cards = [card for c in calls for card in _json_actions(c, "incident_card")]
    with_sentiment = [k for k in cards if k.get("sentiment_fin")]
    with_churn = [k for k in cards if k.get("risque_churn")]
    gestures = [k for k in cards if k.get("geste_montant") is not None]
    followups = sum(1 for c in calls for a in c.get("actions", [])
                    if a["kind"] == "callback" and "follow-up scheduled" in a["detail"])
    return AngerKpis(
        angry_calls=len(angry_calls),
        angry_pct=_pct(len(angry_calls), len(calls)),
        raised_voice_alerts=sum(_kinds(c).count("raised_voice") for c in calls),
        cards=len(cards),
        deescalated_pct=_pct(sum(k["sentiment_fin"] in CALMED for k in with_sentiment), len(with_sentiment)),
        retained_pct=_pct(sum(k["risque_churn"] != "critique" for k in with_churn), len(with_churn)),
        mean_plan_satisfaction=_mean([k["satisfaction_plan"] for k in cards if k.get("satisfaction_plan")]),
        mean_wellbeing=_mean([k["bien_etre_hotliner"] for k in cards if k.get("bien_etre_hotliner")]),
        mean_deescalation_minutes=_mean([k["desescalade_minutes"] for k in cards if k.get("desescalade_minutes") is not None]),
        gestures=len(gestures),
        mean_gesture_eur=_mean([k["geste_montant"] for k in gestures]),
        followups_scheduled=followups,
    )


def message_kpis(calls: list[dict], tickets: list) -> MessageKpis:
    return MessageKpis(
        messages=len(tickets),
        urgent=sum(t.motive == "urgent" for t in tickets),
        confirmed_pct=_pct(sum(t.confirmed for t in tickets), len(tickets)),
        open=sum(t.status == "open" for t in tickets),
        done=sum(t.status == "done" for t in tickets),
        overflow_offers=sum(_kinds(c).count("overflow_offer") for c in calls),
        callback_slots=sum(1 for c in calls for a in c.get("actions", [])
                           if a["kind"] == "callback" and a["detail"].startswith("slot ") and "scheduled" in a["detail"]),
    )


def compute(calls: list[dict], tickets: list) -> ProcedureKpis:
    return ProcedureKpis(escalation_kpis(calls), anger_kpis(calls), message_kpis(calls, tickets))


async def kpis(records, messages, since: Any = None, until: Any = None) -> ProcedureKpis:
    from callflow.store.records import to_epoch

    calls = await records.calls_with_details(since, until)
    low = to_epoch(since) if since is not None else float("-inf")
    high = to_epoch(until) if until is not None else float("inf")
    tickets = [t for t in await messages.list(status=None, limit=100000) if low <= t.created_epoch < high]
    return compute(calls, tickets)
