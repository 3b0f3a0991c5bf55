"""Kannel smsbox `sendsms` (HTTP GET).

Kannel splits long texts itself (UDH concatenation): its sendsms-user needs
`max-messages` >= sms.max_parts and the core `concatenation = true` (default).
We pass the alphabet we detected (`coding` 0 = GSM-7, 2 = UCS-2, text in
UTF-8) and a DLR URL carrying our outbox id, so the delivery report finds the
row whatever Kannel does with its own ids.

Answers: 202 "0: Accepted" / "3: Queued for later delivery" → sent;
503 "Temporal failure" or no connection → retry; 4xx (auth, bad number,
black-listed) → permanent.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import aiohttp

from callflow.handoff.config import SmsConfig
from callflow.handoff.sms.base import SmsMessage, TemporaryDeliveryError, classify_http_status


class KannelSmsBackend:
    name = "kannel"

    def __init__(self, config: SmsConfig, session: aiohttp.ClientSession | None = None):
        self.config = config
        self._session = session
        self._own_session = session is None

    def params(self, message: SmsMessage) -> dict[str, str]:
        cfg = self.config
        params = {
            "username": cfg.kannel_username,
            "password": cfg.kannel_password,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "coding": str(message.encoded.kannel_coding),
        }
        if message.sender:  # else Kannel's default-sender / global-sender
            params["from"] = message.sender
        if cfg.kannel_smsc:
            params["smsc"] = cfg.kannel_smsc
        if cfg.kannel_dlr_url:
            sep = "&" if "?" in cfg.kannel_dlr_url else "?"
            # %d (report type) and %A (SMSC answer) are filled in by Kannel.
            params["dlr-url"] = f"{cfg.kannel_dlr_url}{sep}{urlencode({'id': message.message_id})}&type=%d&answer=%A"
            params["dlr-mask"] = str(cfg.kannel_dlr_mask)
        return params

    async def send(self, message: SmsMessage) -> str | None:
        session = await self._get_session()
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        try:
            async with session.get(self.config.kannel_url, params=self.params(message), timeout=timeout) as resp:
                body = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise TemporaryDeliveryError(f"kannel unreachable: {type(exc).__name__}: {exc}") from exc
        classify_http_status(status, body)
        return message.message_id

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
