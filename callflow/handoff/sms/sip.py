"""SIP MESSAGE through Asterisk: ARI `POST /endpoints/sendMessage` (res_pjsip_messaging).

We take an injected `ari_post(path, params)` so this room does not depend on
the ARI client. It returns the HTTP status (or None for "done") or raises:
connection problems and timeouts are temporary; an exception with a `status`
attribute is classified like an HTTP answer (404 unknown endpoint → permanent).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from callflow.handoff.config import SmsConfig
from callflow.handoff.sms.base import SmsMessage, TemporaryDeliveryError, classify_http_status

AriPost = Callable[[str, dict[str, str]], Awaitable[Any]]


class SipSmsBackend:
    name = "sip"

    def __init__(self, config: SmsConfig, ari_post: AriPost):
        self.config = config
        self.ari_post = ari_post

    def params(self, message: SmsMessage) -> dict[str, str]:
        return {
            "to": self.config.sip_to_template.format(number=message.to),
            "from": self.config.sip_from,
            "body": message.text,
        }

    async def send(self, message: SmsMessage) -> str | None:
        try:
            result = await asyncio.wait_for(
                self.ari_post("/endpoints/sendMessage", self.params(message)), self.config.timeout_seconds
            )
        except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
            raise TemporaryDeliveryError(f"ARI unreachable: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                classify_http_status(status, str(exc))
            raise TemporaryDeliveryError(f"ARI error: {type(exc).__name__}: {exc}") from exc
        if isinstance(result, int):
            classify_http_status(result)
        return message.message_id

    async def close(self) -> None:
        return None
