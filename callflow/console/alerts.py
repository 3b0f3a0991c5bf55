"""What the supervisor must be told now (issue 13 §5), computed from plain rows: pure, no I/O.

Kinds: sms_failed (an SMS or email that failed for good), callback_unanswered (a callback
nobody answered), sms_reply (a caller wrote back), sms_unanswered (… and nobody answered within
`console.sms_unanswered_seconds`), emergency_line (the emergency line does not answer),
churn_red, aggressive_call, escalation_missed (from the desk's notifications), raised_voice.
"""

from __future__ import annotations

from typing import Any, Iterable

from callflow.core.channel import mask_number

SEVERITY = {"emergency_line": 0, "sms_unanswered": 1, "sms_failed": 1, "callback_unanswered": 1, "churn_red": 1,
            "escalation_missed": 1, "raised_voice": 2, "aggressive_call": 2, "sms_reply": 2}
LABELS = {
    "sms_failed": "Message non délivré (échec définitif)",
    "callback_unanswered": "Rappel sans réponse",
    "sms_reply": "Réponse SMS d'un appelant",
    "sms_unanswered": "Réponse SMS sans réponse",
    "emergency_line": "Ligne d'urgence : pas de réponse",
    "churn_red": "Risque churn ROUGE",
    "aggressive_call": "Appel agressif",
    "escalation_missed": "Escalade sans réponse du superviseur",
    "raised_voice": "Voix forte détectée",
}
EMERGENCY_NOT_ANSWERING = {"calling", "refused", "line_ended"}


def compute(*, now: float, failed_messages: Iterable[Any] = (), failed_callbacks: Iterable[Any] = (),
            conversations: Iterable[dict] = (), emergencies: Iterable[dict] = (), notifications: Iterable[dict] = (),
            raised_voices: dict[str, float] | None = None, sms_unanswered_seconds: float = 600.0,
            emergency_ring_seconds: float = 20.0, emergency_started: dict[str, float] | None = None) -> list[dict]:
    alerts: list[dict] = []

    def add(kind: str, at: float, text: str, call_id: str | None = None, ref: str = "") -> None:
        alerts.append({"kind": kind, "label": LABELS[kind], "severity": SEVERITY[kind], "at": at, "text": text,
                       "call_id": call_id, "id": f"{kind}:{ref or call_id or at}"})

    for msg in failed_messages:
        add("sms_failed", msg.updated_at, f"{msg.kind} vers {mask_number(msg.destination) if msg.kind == 'sms' else msg.destination}: "
            f"{msg.last_error or 'refusé'}", msg.call_id, msg.id)
    for cb in failed_callbacks:
        add("callback_unanswered", cb.updated_at, f"rappel {cb.target} ({mask_number(cb.number)}) après {cb.attempts} "
            f"essai(s): {cb.last_outcome or 'sans réponse'}", cb.call_id, cb.id)
    for conv in conversations:
        if conv["status"] != "open" or (conv.get("last_answer_at") or 0) >= conv["last_in_at"]:
            continue
        waited = now - conv["last_in_at"]
        if waited >= sms_unanswered_seconds:
            add("sms_unanswered", conv["last_in_at"], f"{mask_number(conv['number'])} attend une réponse depuis "
                f"{int(waited // 60)} min", conv.get("call_id"), conv["number"])
        else:
            add("sms_reply", conv["last_in_at"], f"{mask_number(conv['number'])} a répondu par SMS", conv.get("call_id"),
                conv["number"])
    started = emergency_started or {}
    for em in emergencies:
        state = em.get("state", "")
        since = started.get(em["call_id"], now)
        if state == "refused" or (state in EMERGENCY_NOT_ANSWERING and now - since >= emergency_ring_seconds):
            add("emergency_line", since, f"ligne {em.get('destination', '')}: {state} (essai {em.get('attempts', 0)})",
                em["call_id"])
    for note in notifications:
        if note.get("kind") in ("churn_red", "aggressive_call", "escalation_missed"):
            add(note["kind"], note.get("at", now), note.get("detail", ""), note.get("call_id"), f"{note.get('at')}")
    for call_id, at in (raised_voices or {}).items():
        add("raised_voice", at, "le ton monte: proposer l'aide du superviseur (seed 004)", call_id)
    alerts.sort(key=lambda a: (a["severity"], -a["at"]))
    return alerts
