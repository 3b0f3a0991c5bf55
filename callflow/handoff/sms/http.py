"""Generic JSON webhook for SMS providers, signed with HMAC-SHA256.

Outbound: POST sms.http_url with
    {"id", "from", "to", "text", "encoding", "parts"}
and headers `X-Callflow-Timestamp: <unix seconds>`,
`<sms.http_signature_header>: sha256=<hex hmac(secret, "<timestamp>.<body>")>`,
`Idempotency-Key: <outbox id>` (providers that honour it never send twice).
Inbound replies (POST /sms/inbound, see web.py) are checked the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp

from callflow.handoff.config import SmsConfig
from callflow.handoff.sms.base import SmsMessage, TemporaryDeliveryError, classify_http_status

TIMESTAMP_HEADER = "X-Callflow-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, *, max_skew: float, now: float | None = None) -> bool:
    """Constant-time check of an inbound webhook; stale timestamps are refused (replays)."""
    if not secret or not timestamp or not signature:
        return False
    try:
        sent_at = float(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent_at) > max_skew:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())


class HttpSmsBackend:
    name = "http"

    def __init__(self, config: SmsConfig, session: aiohttp.ClientSession | None = None):
        self.config = config
        self._session = session
        self._own_session = session is None

    def request(self, message: SmsMessage, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        encoded = message.encoded
        body = json.dumps(
            {
                "id": message.message_id,
                "from": message.sender or None,  # None: the provider's default sender
                "to": message.to,
                "text": message.text,
                "encoding": encoded.encoding,
                "parts": encoded.parts,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(now if now is not None else time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            self.config.http_signature_header: sign(self.config.http_secret, timestamp, body),
            "Idempotency-Key": message.message_id,
        }
        return body, headers

    async def send(self, message: SmsMessage) -> str | None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        body, headers = self.request(message)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        try:
            async with self._session.post(self.config.http_url, data=body, headers=headers, timeout=timeout) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TemporaryDeliveryError(f"provider unreachable: {type(exc).__name__}: {exc}") from exc
        classify_http_status(status, text)
        try:
            ref = json.loads(text).get("id") if text else None
        except (ValueError, AttributeError):
            ref = None
        return str(ref) if ref else message.message_id

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
