"""SMS replies from callers, linked to their most recent call (« Si client écrit : lier à cet appel »)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable


from callflow.store.db import Database
from callflow.handoff.contacts import Contacts
from callflow.handoff.db import new_id
from callflow.core.phone import MAX_RAW_LENGTH, number_variants, parse_number

log = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 5000  # ten concatenated UCS-2 parts is ~670; anything far beyond is not an SMS

#: Optional hook from the records store: (number_e164, since) → call_id of the latest call.
FindRecentCall = Callable[[str, float], Awaitable[str | None]]


class CallLinks:
    """Things attached to a call (sms, email, callback, sms_reply).

    Always kept in our `outbox_links` table; also forwarded to the records
    store when the controller gives us one with `add_link(call_id, kind, ref, at)`.
    """

    def __init__(self, conn: Database, records: Any = None):
        self.conn = conn
        self.records = records

    async def add(self, call_id: str, kind: str, ref: str, at: float | None = None) -> None:
        at = at if at is not None else time.time()
        await self.conn.execute(
            "INSERT INTO outbox_links (call_id, kind, ref, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (call_id, kind, ref, at),
        )
        if self.records is not None and hasattr(self.records, "add_link"):
            try:
                result = self.records.add_link(call_id, kind, ref, at)
                if hasattr(result, "__await__"):
                    await result
            except Exception:  # the record is a copy; ours is already stored
                log.exception("records.add_link failed for call %s", call_id)

    async def list(self, call_id: str) -> list[dict[str, Any]]:
        async with self.conn.execute(
            "SELECT call_id, kind, ref, at FROM outbox_links WHERE call_id = ? ORDER BY at, kind, ref", (call_id,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class InboundResult:
    id: str
    call_id: str | None
    duplicate: bool


class InboundSms:
    def __init__(
        self,
        conn: Database,
        contacts: Contacts,
        links: CallLinks,
        *,
        region: str = "FR",
        window_seconds: float = 24 * 3600.0,
        find_recent_call: FindRecentCall | None = None,
    ):
        self.conn = conn
        self.contacts = contacts
        self.links = links
        self.region = region
        self.window_seconds = window_seconds
        self.find_recent_call = find_recent_call

    async def receive(
        self, number: str, text: str, *, source: str, gateway_id: str = "", received_at: float | None = None
    ) -> InboundResult:
        """Store one reply and link it. Raises ValueError for input that cannot be an SMS."""
        raw = (number or "").strip()
        if not raw or len(raw) > MAX_RAW_LENGTH:
            raise ValueError("sender number missing or too long")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError("text too long")
        e164, _ = parse_number(raw, self.region)
        sender = e164 or raw
        at = received_at if received_at is not None else time.time()
        # A gateway that re-posts the same MO (timeout on our answer) must not create a second row.
        basis = gateway_id or f"{sender}|{text}|{int(at // 60)}"
        dedup_key = f"{source}:" + hashlib.sha256(basis.encode()).hexdigest()[:32]
        call_id = await self._latest_call(e164, at) if e164 else None
        inbound_id = new_id()
        cursor = await self.conn.execute(
            "INSERT INTO sms_inbound (id, dedup_key, number, text, received_at, call_id, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING",
            (inbound_id, dedup_key, sender, text, at, call_id, source),
        )
        if cursor.rowcount != 1:
            async with self.conn.execute("SELECT id, call_id FROM sms_inbound WHERE dedup_key = ?", (dedup_key,)) as cur:
                row = await cur.fetchone()
            return InboundResult(row["id"], row["call_id"], duplicate=True)
        if call_id:
            await self.links.add(call_id, "sms_reply", inbound_id, at)
        return InboundResult(inbound_id, call_id, duplicate=False)

    async def list_for_call(self, call_id: str) -> list[dict[str, Any]]:
        async with self.conn.execute(
            "SELECT id, number, text, received_at, source FROM sms_inbound WHERE call_id = ? ORDER BY received_at", (call_id,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def _latest_call(self, e164: str, at: float) -> str | None:
        since = at - self.window_seconds
        if self.find_recent_call is not None:
            try:
                # The records store keeps the caller ID as Asterisk gave it: try its usual forms.
                for form in number_variants(e164):
                    found = await self.find_recent_call(form, since)
                    if found:
                        return found
            except Exception:
                log.exception("find_recent_call failed; using our own call list")
        return await self.contacts.latest_call(e164, since=since)
