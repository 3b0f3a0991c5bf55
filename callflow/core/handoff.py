"""What a flow may ask of the outside world once the caller chose another channel.

The flows call this Protocol; callflow/handoff/ implements it with a durable
outbox (SMS, email, callbacks). Every method must return quickly: it records the
request durably and lets a worker deliver it. It never raises for a gateway that
is down — the promise is kept later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HandoffResult:
    accepted: bool  # written to the outbox, will be delivered
    reason: str = ""  # why not: "anonymous", "invalid_number", "landline", "no_email_on_file", …
    message_id: str | None = None


class Handoffs(Protocol):
    async def send_sms(self, call_id: str, caller_number: str | None, *, agent_name: str, language: str = "fr") -> HandoffResult:
        """The cas B SMS « C'est Jean de numi… Répondez à ce SMS… » to the caller's number."""
        ...

    async def send_email_or_instructions(self, call_id: str, caller_number: str | None, *, language: str = "fr") -> HandoffResult:
        """Email on file → the section-6 email; else SMS with the address and instructions."""
        ...

    async def schedule_callback(
        self, call_id: str, number: str | None, *, delay_seconds: float, reason: str, target: str = "agents"
    ) -> HandoffResult:
        """« Je vous rappelle dans 5 minutes », caregiver calls, J+1 / J+3 follow-ups."""
        ...

    async def followup_email(self, call_id: str, caller_number: str | None, *, called_at: float,
                             language: str = "fr") -> HandoffResult:
        """Section 6 email after a silent call, when an email is known for the number (in the caller's language)."""
        ...


    async def escalation_emails(self, call_id: str, caller_number: str | None, *, client: tuple[str, str],
                                hotliner: tuple[str, str], hotliner_email: str) -> list[HandoffResult]:
        """Seed 001 §4 / phase 6: the resolution email to the client (email on file) and the hotliner's feedback."""
        ...


class EmergencyLine(Protocol):
    async def start(self, call_id: str, *, caller_number: str | None, situation: str, answers: dict[str, str]) -> None:
        """Hand the call to the emergency bridge (second line). From then on nobody hangs up the caller."""
        ...
