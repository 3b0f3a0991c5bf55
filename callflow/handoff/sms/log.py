"""Embedded default backend: one JSON line per SMS in a local file, no gateway needed."""

from __future__ import annotations

import asyncio
import json
import os
import time

from callflow.handoff.sms.base import SmsMessage, TemporaryDeliveryError


class LogSmsBackend:
    name = "log"

    def __init__(self, path: str):
        self.path = path

    async def send(self, message: SmsMessage) -> str | None:
        encoded = message.encoded
        line = json.dumps(
            {
                "at": time.time(),
                "id": message.message_id,
                "from": message.sender,
                "to": message.to,
                "text": message.text,
                "encoding": encoded.encoding,
                "parts": [{"udh": s.udh_hex, "text": s.text} for s in encoded.segments],
            },
            ensure_ascii=False,
        )
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:  # disk full, permissions being fixed…
            raise TemporaryDeliveryError(f"cannot write {self.path}: {exc}") from exc
        return message.message_id

    def _append(self, line: str) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    async def close(self) -> None:
        return None
