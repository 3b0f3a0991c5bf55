"""The console's two after-call forms, read into what the desk stores on the call's record (pure).

- seed 004 §3.1, « INCIDENT CLIENT – COLÈRE / MÉCONTENTEMENT » → `callflow.agents.anger.IncidentCard`
  (the desk's `incident_card`: the record's `incident_card` action, churn red → J+1/J+3 calls);
- seed 001 phase 6, « FICHE DE SUIVI POST-ESCALADE » → `callflow.agents.escalation.Outcome`
  (the desk's `escalation_outcome`: the record's `escalation_outcome` action and the §4 emails).

Both feed `callflow kpi` and the wallboard (seed 001 §7/§9, 004 §8). A field left empty is left out;
a value that is not what the card expects is a ValueError naming the field (the page says it).
"""

from __future__ import annotations

from typing import Any, Mapping


def _text(form: Mapping[str, Any], name: str) -> str:
    return str(form.get(name, "") or "").strip()


def _number(form: Mapping[str, Any], name: str, label: str, *, whole: bool = False) -> float | int | None:
    raw = _text(form, name).replace(",", ".").removesuffix("€").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{label}: expected a number (got {raw!r})") from None
    if whole:
        if value != int(value):
            raise ValueError(f"{label}: expected a whole number (got {raw!r})")
        return int(value)
    return value


def _lines(form: Any, name: str) -> list[str]:
    values = form.getall(name, []) if hasattr(form, "getall") else [form.get(name, "")]
    out: list[str] = []
    for value in values:
        out += [line.strip() for line in str(value or "").splitlines() if line.strip()]
    return out


def incident_from_form(form: Any) -> dict[str, Any]:
    """The incident card's form → the JSON the desk's IncidentCard reads."""
    client = " · ".join(part for part in (_text(form, "nom"), _text(form, "client_id"), _text(form, "anciennete"),
                                          f"valeur {_text(form, 'valeur')}" if _text(form, "valeur") else "",
                                          _text(form, "abonnement")) if part)
    card: dict[str, Any] = {"client": client}
    for name in ("intensite", "raison", "raison_detail", "geste_commercial", "escalade_vers", "ticket", "priorite",
                 "risque_churn", "sentiment_fin", "note"):
        value = _text(form, name)
        if value:
            card[name] = value
    for name, label in (("bien_etre_hotliner", "Bien-être hotliner (1-5)"),
                        ("satisfaction_plan", "Satisfaction du plan proposé (1-5)")):
        value = _number(form, name, label, whole=True)
        if value is not None:
            card[name] = value
    for name, label in (("geste_montant", "Montant du geste (€)"), ("desescalade_minutes", "Temps de désescalade (min)")):
        value = _number(form, name, label)
        if value is not None:
            card[name] = value
    card["menace_resiliation"] = _text(form, "menace_resiliation") in ("on", "1", "true")
    card["engagements"] = _lines(form, "engagements")[:3]
    return card


def outcome_from_form(form: Any, supervisor: str) -> dict[str, Any]:
    """The post-escalation card's form → the JSON the desk's Outcome reads."""
    outcome: dict[str, Any] = {"decision": _text(form, "decision"), "superviseur": supervisor}
    for name in ("motif_decision", "feedback_hotliner"):
        value = _text(form, name)
        if value:
            outcome[name] = value
    value = _number(form, "valeur_eur", "Valeur de l'exception (€)")
    if value is not None:
        outcome["valeur_eur"] = value
    value = _number(form, "satisfaction", "Satisfaction client (1-5)", whole=True)
    if value is not None:
        outcome["satisfaction"] = value
    justified = _text(form, "justifiee")
    if justified in ("oui", "non"):
        outcome["justifiee"] = justified == "oui"
    steps = _lines(form, "prochaines_etapes")
    if steps:
        outcome["prochaines_etapes"] = steps[:5]
    return outcome
