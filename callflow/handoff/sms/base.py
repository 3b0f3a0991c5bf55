"""What every SMS backend receives and how it reports failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError
from callflow.handoff.sms.encoding import Encoded, encode

__all__ = ["SmsMessage", "SmsBackend", "TemporaryDeliveryError", "PermanentDeliveryError", "classify_http_status"]


@dataclass(frozen=True)
class SmsMessage:
    message_id: str  # the outbox row id: unique per message, reused on every retry
    to: str  # E.164
    text: str
    sender: str

    @property
    def encoded(self) -> Encoded:
        # The 8-bit concatenation reference comes from the message id: stable across retries.
        return encode(self.text, reference=int(self.message_id[-2:], 16) if _is_hex(self.message_id[-2:]) else 0)


class SmsBackend(Protocol):
    name: str

    async def send(self, message: SmsMessage) -> str | None:
        """Hand the message to the gateway; return its reference (or None).

        Raises TemporaryDeliveryError when a retry may succeed, PermanentDeliveryError otherwise.
        """
        ...

    async def close(self) -> None: ...


def classify_http_status(status: int, body: str = "") -> None:
    """Raise the right error for a gateway's HTTP answer; return for 2xx."""
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}: {body[:200]}".strip()
    if status in (408, 425, 429) or status >= 500:
        raise TemporaryDeliveryError(detail)
    raise PermanentDeliveryError(detail)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
