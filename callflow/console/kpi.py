"""The wallboard's KPIs, from the call records (pure: rows in, numbers out).

Contact-centre KPIs (stated formulas, T = console.service_level_seconds):
- service level = calls an agent answered within T of being queued for one
                  ÷ every call queued for an agent (abandoned ones included) × 100
- ASA (average speed of answer) = mean of (agent_connected − agent_queue) over answered calls
- abandonment = calls queued for an agent that ended before any agent answered ÷ calls queued × 100
- handle time = mean of (end of call − agent_connected) over answered calls that ended
(inbound calls only: a callback leg, flow "callback", is left out of these four)

Seed 000 §8 comes from callflow.store.kpi; seeds 001 §7/§9 and 004 §8 from callflow.store.procedure_kpi
(the record's escalation outcomes — the supervisor's post-escalation card — and incident cards, which the
console's forms write through the desk), the same figures as `callflow kpi`. What the records cannot give
is listed in NOT_FROM_RECORDS, with why.
"""

from __future__ import annotations

from statistics import mean
from typing import Any

from callflow.store import kpi as silent_kpi
from callflow.store import procedure_kpi

NOT_FROM_RECORDS = {
    "000 §8 satisfaction post-résolution": "aucune enquête client n'est enregistrée",
    "001 §7 rétention (clients conservés / perdus), ROI exception": "le churn réel et les coûts n'arrivent pas "
        "jusqu'à callflow (seule la valeur de l'exception est sur la fiche post-escalade)",
    "001 §7/§9 feedback hotliner (soutien reçu)": "le retour des hotliners sur leur superviseur n'est pas recueilli",
    "004 §8 rétention post-colère mesurée": "approchée par le risque churn de la fiche incident en fin d'appel, "
        "pas par une résiliation constatée des mois après",
    "004 §8 geste commercial % approprié, escalade N2 utile, churn évité (ROI geste)":
        "il faudrait un jugement a posteriori (geste approprié, escalade utile) et le churn réel",
}


def _first(actions: list[dict], kind: str, after: float = -1.0) -> float | None:
    for a in actions:
        if a["kind"] == kind and a["at"] >= after:
            return float(a["at"])
    return None


def _kpi(kid: str, label: str, value: float | None, unit: str, target: str, ok: bool | None, source: str) -> dict:
    return {"id": kid, "label": label, "value": None if value is None else round(value, 1), "unit": unit,
            "target": target, "ok": ok, "source": source}


def compute(calls: list[dict], *, service_level_seconds: float = 20.0, service_level_target: float = 80.0,
            abandonment_target: float = 5.0) -> dict[str, Any]:
    """`calls` as Records.calls_with_details returns them."""
    queued = answered_in_t = abandoned = 0
    waits: list[float] = []
    handle: list[float] = []
    esc_missed = 0
    esc_waits: list[float] = []
    esc_talk: list[float] = []
    for call in calls:
        actions = call.get("actions", [])
        # a callback leg (flow "callback") is our call out, not a caller queuing: not in the inbound queue's KPIs
        t_queue = None if call.get("flow") == "callback" else _first(actions, "agent_queue")
        if t_queue is not None:
            queued += 1
            t_conn = _first(actions, "agent_connected", t_queue)
            if t_conn is not None:
                waits.append(t_conn - t_queue)
                if t_conn - t_queue <= service_level_seconds:
                    answered_in_t += 1
                if call.get("duration") is not None:
                    handle.append(max(0.0, float(call["duration"]) - t_conn))
            elif call.get("duration") is not None:
                abandoned += 1
        for a in actions:
            if a["kind"] == "escalation":
                t_c = _first(actions, "escalation_connected", a["at"])
                if t_c is not None:
                    esc_waits.append(t_c - a["at"])
                    if call.get("duration") is not None:
                        esc_talk.append(float(call["duration"]) - t_c)
            elif a["kind"] == "escalation_back_to_agent":
                esc_missed += 1
    n = sum(1 for c in calls if c.get("flow") != "callback")  # « appels reçus »: our callback legs are not

    def pct(part: int, whole: int) -> float | None:
        return None if whole == 0 else 100.0 * part / whole

    sl = pct(answered_in_t, queued)
    ab = pct(abandoned, queued)
    asa = mean(waits) if waits else None
    aht = mean(handle) if handle else None
    centre = [
        _kpi("service_level", f"Niveau de service ({service_level_seconds:.0f} s)", sl, "%",
             f"≥ {service_level_target:.0f} %", None if sl is None else sl >= service_level_target,
             f"répondus en ≤ {service_level_seconds:.0f} s ÷ mis en file pour un conseiller"),
        _kpi("asa", "Temps moyen de réponse (ASA)", asa, "s", f"≤ {service_level_seconds:.0f} s",
             None if asa is None else asa <= service_level_seconds, "moyenne(agent_connected − agent_queue)"),
        _kpi("abandonment", "Abandon avant réponse", ab, "%", f"≤ {abandonment_target:.0f} %",
             None if ab is None else ab <= abandonment_target, "raccrochés avant un conseiller ÷ mis en file"),
        _kpi("handle_time", "Durée moyenne de traitement", aht, "s", "—", None, "moyenne(fin − agent_connected)"),
        _kpi("offered", "Appels reçus", float(n), "", "—", None, "enregistrements"),
    ]
    s = silent_kpi.compute(calls)
    silent = [
        _kpi("silent_pct", "% appels muets", s.silent_pct, "%", "2–5 %", None if s.silent_pct is None else 2 <= s.silent_pct <= 5, "000 §8"),
        _kpi("silent_duration", "Durée moyenne appel muet", s.mean_silent_duration, "s", "60–180 s",
             None if s.mean_silent_duration is None else 60 <= s.mean_silent_duration <= 180, "000 §8"),
        _kpi("conversion", "Conversion vers autre canal", s.conversion_pct, "%", "≥ 60 %",
             None if s.conversion_pct is None else s.conversion_pct >= 60, "000 §8"),
        _kpi("emergency_pct", "Urgences détectées", s.emergency_pct, "%", "< 2 %",
             None if s.emergency_pct is None else s.emergency_pct < 2, "000 §8"),
        _kpi("premature", "Raccrochage prématuré", s.premature_pct, "%", "0 % (seed: < 5 %)",
             None if s.premature_pct is None else s.premature_pct == 0, "000 §8"),
        _kpi("documented", "Appels muets documentés", s.documented_pct, "%", "100 %",
             None if s.documented_pct is None else s.documented_pct == 100, "000 §8"),
    ]
    # seeds 001 §7/§9 and 004 §8: the same figures as `callflow kpi` (the desk's escalation outcomes and
    # incident cards on the records), over the inbound calls
    inbound = [c for c in calls if c.get("flow") != "callback"]
    e = procedure_kpi.escalation_kpis(inbound)
    g = procedure_kpi.anger_kpis(inbound)
    esc_wait = mean(esc_waits) if esc_waits else None  # every escalation, with or without a post-escalation card
    esc_len = mean(esc_talk) if esc_talk else None

    def within(value: float | None, low: float, high: float) -> bool | None:
        return None if value is None else low <= value <= high

    def at_least(value: float | None, low: float) -> bool | None:
        return None if value is None else value >= low

    def at_most(value: float | None, high: float, strict: bool = False) -> bool | None:
        return None if value is None else (value < high if strict else value <= high)

    escal = [
        _kpi("escalations", "Total escalades", float(e.escalations), "", "—", None, "001 §7"),
        _kpi("escalation_rate", "Escalades / total appels", e.escalation_pct, "%", "5–10 %",
             within(e.escalation_pct, 5, 10) if e.escalations else None, "001 §7: escalades ÷ appels reçus"),
        _kpi("escalation_justified", "Escalades justifiées", e.justified_pct, "%", "≥ 70 %", at_least(e.justified_pct, 70),
             "001 §7: fiche post-escalade du superviseur (sinon matrice du briefing)"),
        _kpi("escalation_useless", "Escalades inutiles", e.useless_pct, "%", "< 25 %", at_most(e.useless_pct, 25, True),
             "001 §9"),
        _kpi("escalation_approved", "Taux approbation exception", e.approved_pct, "%", "30–40 %",
             within(e.approved_pct, 30, 40), "001 §9: décisions « approuvée » ÷ fiches post-escalade"),
        _kpi("escalation_refused", "Demandes refusées (justifié)", e.refused_pct, "%", "—", None, "001 §7"),
        _kpi("escalation_direction", "Escaladées direction", e.direction_pct, "%", "—", None, "001 §7"),
        _kpi("exception_value", "Coût moyen exception", e.mean_exception_eur, "€", "< 50 €",
             at_most(e.mean_exception_eur, 50, True), "001 §7/§9: valeur des exceptions approuvées"),
        _kpi("escalation_answer", "Temps réponse escalade", esc_wait, "s", "≤ 300 s", at_most(esc_wait, 300),
             "001 §9: moyenne(escalation_connected − escalation)"),
        _kpi("escalation_satisfied", "Satisfaction post-escalade", e.satisfied_pct, "%", "≥ 85 %",
             at_least(e.satisfied_pct, 85), "001 §9: note ≥ 4/5 sur la fiche post-escalade"),
        _kpi("escalation_missed", "Escalades sans réponse", pct(esc_missed, e.escalations), "%", "—", None,
             "001 §3A: reprises par le conseiller"),
        _kpi("escalation_talk", "Temps appel escalade", esc_len, "s", "300–480 s", within(esc_len, 300, 480),
             "001 §9: fin − conférence"),
    ]
    anger = [
        _kpi("aggressive_pct", "% appels agressifs", g.angry_pct, "%", "3–7 %",
             within(g.angry_pct, 3, 7) if g.angry_calls else None, "004 §8: *7, *8, voix forte ou fiche incident"),
        _kpi("deescalated", "Taux désescalade réussie", g.deescalated_pct, "%", "≥ 80 %", at_least(g.deescalated_pct, 80),
             "004 §8: fiche incident, sentiment en fin d'appel"),
        _kpi("retained", "Rétention post-colère (approchée)", g.retained_pct, "%", "≥ 85 %", at_least(g.retained_pct, 85),
             "004 §8: risque churn non « critique » en fin d'appel"),
        _kpi("plan_satisfaction", "Satisfaction du plan proposé", g.mean_plan_satisfaction, "/5", "≥ 4/5",
             at_least(g.mean_plan_satisfaction, 4), "004 §8: fiche incident"),
        _kpi("wellbeing", "Bien-être hotliner après appel agressif", g.mean_wellbeing, "/5", "≥ 3/5",
             at_least(g.mean_wellbeing, 3), "004 §8: fiche incident"),
        _kpi("deescalation_time", "Temps de désescalade", g.mean_deescalation_minutes, "min", "< 5 min",
             at_most(g.mean_deescalation_minutes, 5, True), "004 §8: fiche incident"),
    ]
    return {"centre": centre, "silent": silent, "escalations": escal, "anger": anger,
            "not_from_records": NOT_FROM_RECORDS, "calls": n}


def series(calls: list[dict], bucket_seconds: float = 3600.0) -> dict[str, list]:
    """Per time bucket: calls, silent calls, queued, answered, abandoned (for the plots)."""
    buckets: dict[float, dict[str, int]] = {}
    for call in calls:
        b = float(call["started_epoch"]) // bucket_seconds * bucket_seconds
        row = buckets.setdefault(b, {"calls": 0, "silent": 0, "queued": 0, "answered": 0, "abandoned": 0})
        row["calls"] += 1
        row["silent"] += silent_kpi.is_silent(call)
        actions = call.get("actions", [])
        if call.get("flow") != "callback" and _first(actions, "agent_queue") is not None:
            row["queued"] += 1
            if _first(actions, "agent_connected") is not None:
                row["answered"] += 1
            elif call.get("duration") is not None:
                row["abandoned"] += 1
    keys = sorted(buckets)
    out: dict[str, list] = {"t": keys}
    for name in ("calls", "silent", "queued", "answered", "abandoned"):
        out[name] = [buckets[k][name] for k in keys]
    return out
