"""Durable outbox: every SMS and email is written here before it is attempted.

Life of a row:  queued → sending → sent → delivered
                   ↑         └──→ queued again (temporary failure, next_attempt_at pushed back)
                   └── retry ←─── failed_permanently (permanent failure or attempts exhausted)

* The idempotency key (UNIQUE) is derived from the call and the message, so
  the flow asking twice, or a restart replaying the request, writes one row.
* A worker claims rows with one `UPDATE … RETURNING` (status transition +
  claim token) whose sub-select is `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's
  write lock on its file does the same): two workers, two controllers, never send the
  same row.
* Backoff is durable: `next_attempt_at` is a column, computed with tenacity's
  exponential wait, so a restart keeps the schedule.
* A row left in 'sending' after a crash is claimed again once its lease is
  over (at-least-once in that narrow window; the gateway gets the same
  message id each time so its DLRs still match).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

import tenacity

from callflow.store.db import Database
from callflow.handoff.config import OutboxConfig
from callflow.handoff.db import new_id
from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError

log = logging.getLogger(__name__)

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed_permanently"
STATUSES = (QUEUED, SENDING, SENT, DELIVERED, FAILED)


@dataclass(frozen=True)
class OutboxMessage:
    id: str
    idempotency_key: str
    call_id: str
    kind: str  # "sms" | "email"
    destination: str  # E.164 number or email address
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    provider_ref: str | None
    last_error: str
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> "OutboxMessage":
        return cls(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            call_id=row["call_id"],
            kind=row["kind"],
            destination=row["destination"],
            payload=json.loads(row["payload"]),
            status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            provider_ref=row["provider_ref"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


#: A sender hands one message to its gateway and returns the gateway's reference.
#: It raises TemporaryDeliveryError (retry) or PermanentDeliveryError (stop).
Sender = Callable[[OutboxMessage], Awaitable[str | None]]


def idempotency_key(call_id: str, kind: str, purpose: str, destination: str) -> str:
    """One message per call, kind, purpose and destination."""
    return f"{call_id}:{kind}:{purpose}:{destination}"


class Outbox:
    """The `outbox` table. Cheap to build; shares the caller's connection."""

    def __init__(self, conn: Database, config: OutboxConfig | None = None, *, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.config = config or OutboxConfig()
        self.clock = clock
        self._backoff = tenacity.wait_exponential(
            multiplier=self.config.backoff_initial_seconds,
            exp_base=self.config.backoff_multiplier,
            max=self.config.backoff_max_seconds,
        )

    async def enqueue(
        self, *, call_id: str, kind: str, destination: str, payload: dict[str, Any], key: str
    ) -> tuple[OutboxMessage, bool]:
        """Write the message (or find the one with the same key). Returns (row, created)."""
        now = self.clock()
        message_id = new_id()
        cursor = await self.conn.execute(
            "INSERT INTO outbox (id, idempotency_key, call_id, kind, destination, payload, status, attempts,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (message_id, key, call_id, kind, destination, json.dumps(payload, ensure_ascii=False), QUEUED, now, now, now),
        )
        created = cursor.rowcount == 1
        row = await self._one("SELECT * FROM outbox WHERE idempotency_key = ?", (key,))
        assert row is not None
        return row, created

    async def get(self, message_id: str) -> OutboxMessage | None:
        return await self._one("SELECT * FROM outbox WHERE id = ?", (message_id,))

    async def list_for_call(self, call_id: str) -> list[OutboxMessage]:
        return await self._all("SELECT * FROM outbox WHERE call_id = ? ORDER BY created_at, id", (call_id,))

    async def list(self, status: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        if status:
            return await self._all("SELECT * FROM outbox WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status, limit))
        return await self._all("SELECT * FROM outbox ORDER BY created_at DESC LIMIT ?", (limit,))

    async def attempts(self, message_id: str) -> list[dict[str, Any]]:
        async with self.conn.execute(
            "SELECT attempt, at, outcome, detail FROM outbox_attempts WHERE message_id = ? ORDER BY attempt", (message_id,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def claim_due(self, limit: int) -> list[OutboxMessage]:
        """Move due rows to 'sending' atomically; only this worker gets them."""
        now = self.clock()
        token = uuid.uuid4().hex
        stale_before = now - self.config.sending_lease_seconds
        async with self.conn.execute(
            "UPDATE outbox SET status = ?, claim_token = ?, claimed_at = ?, attempts = attempts + 1, updated_at = ?"
            " WHERE id IN (SELECT id FROM outbox WHERE (status = ? AND next_attempt_at <= ?)"
            " OR (status = ? AND claimed_at < ?) ORDER BY next_attempt_at LIMIT ?" + self.conn.skip_locked + ")"
            # PostgreSQL: rows another controller is taking are skipped, not waited for (FOR UPDATE SKIP
            # LOCKED); the condition is repeated outside the subquery so it is re-checked on the row locked.
            " AND ((status = ? AND next_attempt_at <= ?) OR (status = ? AND claimed_at < ?)) RETURNING *",
            (SENDING, token, now, now, QUEUED, now, SENDING, stale_before, limit, QUEUED, now, SENDING, stale_before),
        ) as cur:
            rows = await cur.fetchall()
        return [OutboxMessage.from_row(r) for r in rows]

    async def mark_sent(self, message: OutboxMessage, provider_ref: str | None) -> None:
        await self._finish(message, SENT, "sent", provider_ref=provider_ref)

    async def mark_failed(self, message: OutboxMessage, error: str) -> None:
        await self._finish(message, FAILED, "failed_permanently", error=error)

    async def mark_retry(self, message: OutboxMessage, error: str) -> float:
        """Temporary failure: back to 'queued' later, or failed once attempts are used up."""
        if message.attempts >= self.config.max_attempts:
            await self._finish(message, FAILED, "failed_permanently", error=f"{error} (after {message.attempts} attempts)")
            return 0.0
        delay = self.backoff(message.attempts)
        await self._finish(message, QUEUED, "retry", error=error, next_attempt_at=self.clock() + delay)
        return delay

    async def release(self, message: OutboxMessage) -> None:
        """A claimed row this worker will not try after all (it is stopping): queued again at once,
        its claim's attempt given back. Only the claim that took it may (same attempt count)."""
        await self.conn.execute(
            "UPDATE outbox SET status = ?, claim_token = NULL, attempts = attempts - 1, updated_at = ?"
            " WHERE id = ? AND status = ? AND attempts = ?",
            (QUEUED, self.clock(), message.id, SENDING, message.attempts),
        )

    def backoff(self, attempts: int) -> float:
        return float(self._backoff(SimpleNamespace(attempt_number=max(1, attempts))))

    async def mark_delivered(self, message_id: str, *, delivered: bool, detail: str = "") -> bool:
        """Delivery report from the gateway (Kannel DLR). Only moves forward from 'sent'/'sending'."""
        now = self.clock()
        status = DELIVERED if delivered else FAILED
        cursor = await self.conn.execute(
            "UPDATE outbox SET status = ?, last_error = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)",
            (status, "" if delivered else detail, now, message_id, SENT, SENDING),
        )
        return cursor.rowcount == 1

    async def retry(self, message_id: str) -> bool:
        """Operator's `outbox retry ID`: a failed message goes back to the queue now."""
        now = self.clock()
        cursor = await self.conn.execute(
            "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = ?, last_error = '', updated_at = ?"
            " WHERE id = ? AND status = ?",
            (QUEUED, now, now, message_id, FAILED),
        )
        return cursor.rowcount == 1

    async def _finish(
        self,
        message: OutboxMessage,
        status: str,
        outcome: str,
        *,
        provider_ref: str | None = None,
        error: str = "",
        next_attempt_at: float | None = None,
    ) -> None:
        now = self.clock()
        # Only the worker that claimed the row (same attempt count, still 'sending') may finish it.
        await self.conn.execute(
            "UPDATE outbox SET status = ?, provider_ref = COALESCE(?, provider_ref), last_error = ?,"
            " next_attempt_at = COALESCE(?, next_attempt_at), claim_token = NULL, updated_at = ?"
            " WHERE id = ? AND status = ? AND attempts = ?",
            (status, provider_ref, error[:500], next_attempt_at, now, message.id, SENDING, message.attempts),
        )
        await self.conn.execute(
            "INSERT INTO outbox_attempts (message_id, attempt, at, outcome, detail) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (message_id, attempt) DO NOTHING",
            (message.id, message.attempts, now, outcome, error[:500]),
        )

    async def _one(self, sql: str, params: tuple) -> OutboxMessage | None:
        async with self.conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return OutboxMessage.from_row(row) if row else None

    async def _all(self, sql: str, params: tuple) -> list[OutboxMessage]:
        async with self.conn.execute(sql, params) as cur:
            return [OutboxMessage.from_row(r) for r in await cur.fetchall()]


class OutboxWorker:
    """Delivers due rows with the sender registered for their kind."""

    #: How long `stop` lets the delivery in flight finish: longer than a gateway request's timeout.
    STOP_GRACE_SECONDS = 10.0

    def __init__(self, outbox: Outbox, senders: dict[str, Sender], config: OutboxConfig | None = None):
        self.outbox = outbox
        self.senders = senders
        self.config = config or outbox.config
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    def notify(self) -> None:
        """New work was queued: do not wait for the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, grace: float | None = None) -> None:
        """Stop after the delivery in flight (up to `grace`, STOP_GRACE_SECONDS by default); the rest
        of its batch is queued again. Cancelled mid-delivery, a row stays 'sending' until its lease
        runs out (outbox.sending_lease_seconds, 2 min by default) before the next worker may send it:
        a deploy would hold back the messages it happened to be sending (seen in session 9's full
        run). A crash still leaves them to the lease: whether the gateway got one is not known."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), self.STOP_GRACE_SECONDS if grace is None else grace)
        except asyncio.TimeoutError:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        finally:
            self._stopping = False

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were attempted."""
        batch = await self.outbox.claim_due(self.config.batch_size)
        for i, message in enumerate(batch):
            if self._stopping:
                for rest in batch[i:]:
                    await self.outbox.release(rest)
                return i
            await self._deliver(message)
        return len(batch)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                attempted = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the DB was busy or gone: keep the worker alive
                log.exception("outbox worker pass failed")
                attempted = 0
            if attempted or self._stopping:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def _deliver(self, message: OutboxMessage) -> None:
        sender = self.senders.get(message.kind)
        if sender is None:
            await self.outbox.mark_failed(message, f"no sender for kind {message.kind!r}")
            return
        try:
            ref = await sender(message)
        except PermanentDeliveryError as exc:
            log.warning("outbox %s %s refused for good: %s", message.kind, message.id, exc)
            await self.outbox.mark_failed(message, str(exc) or type(exc).__name__)
        except TemporaryDeliveryError as exc:
            delay = await self.outbox.mark_retry(message, str(exc) or type(exc).__name__)
            log.info("outbox %s %s will retry in %.1fs: %s", message.kind, message.id, delay, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unforeseen gateway answer: retry, bounded
            log.exception("outbox %s %s: unexpected error", message.kind, message.id)
            await self.outbox.mark_retry(message, f"{type(exc).__name__}: {exc}")
        else:
            await self.outbox.mark_sent(message, ref)
