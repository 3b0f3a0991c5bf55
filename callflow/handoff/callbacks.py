"""Durable callbacks: « je vous rappelle dans 5 minutes », caregiver calls, J+1 / J+3 follow-ups.

State lives in the `callbacks` table, so a restart keeps every promise:
    scheduled → calling → done
        ↑          └──→ scheduled again (busy / no answer / error, due_at + spacing)
        └──────────────  failed (attempts used up, or number refused) · cancelled
Every attempt is stored in `callbacks_attempts`.

At the due time the scheduler calls the injected
`originate(number_or_endpoint, call_id, target) -> outcome` (the ARI adapter
connects the answered call to the agents' queue or to the IVR). The outcome is
a cause string ("answered", "busy", "no_answer", "congestion", "failed") or an
object with a `.cause` (callflow.core.channel.OriginateResult).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable


from callflow.store.db import Database
from callflow.handoff.config import CallbackConfig
from callflow.handoff.db import new_id

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"
CALLING = "calling"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

#: Outcomes that end the callback at once without another try.
FINAL_FAILURES = frozenset({"invalid_number", "rejected", "unallocated"})

Originate = Callable[[str, str, str], Awaitable[Any]]


@dataclass(frozen=True)
class Callback:
    id: str
    idempotency_key: str
    call_id: str
    number: str
    target: str
    reason: str
    status: str
    due_at: float
    attempts: int
    max_attempts: int
    last_outcome: str
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> "Callback":
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def outcome_cause(outcome: Any) -> str:
    if outcome is None:
        return "failed"
    if isinstance(outcome, str):
        return outcome.strip().lower() or "failed"
    cause = getattr(outcome, "cause", None)
    if cause:
        return str(cause).lower()
    if getattr(outcome, "answered", False):
        return "answered"
    return "failed"


class CallbackScheduler:
    def __init__(
        self,
        conn: Database,
        config: CallbackConfig | None = None,
        originate: Originate | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.conn = conn
        self.config = config or CallbackConfig()
        self.originate = originate
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def schedule(
        self, *, call_id: str, number: str, due_at: float, reason: str, target: str = "agents", key: str | None = None
    ) -> tuple[Callback, bool]:
        """Write the promise; the same key twice keeps the first one. Returns (row, created)."""
        now = self.clock()
        key = key or f"{call_id}:callback:{reason}:{number}:{target}"
        cursor = await self.conn.execute(
            "INSERT INTO callbacks (id, idempotency_key, call_id, number, target, reason, status, due_at, attempts,"
            " max_attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            (new_id(), key, call_id, number, target, reason, SCHEDULED, due_at, self.config.max_attempts, now, now),
        )
        row = await self._one("SELECT * FROM callbacks WHERE idempotency_key = ?", (key,))
        assert row is not None
        self._wake.set()
        return row, cursor.rowcount == 1

    async def get(self, callback_id: str) -> Callback | None:
        return await self._one("SELECT * FROM callbacks WHERE id = ?", (callback_id,))

    async def list_for_call(self, call_id: str) -> list[Callback]:
        async with self.conn.execute("SELECT * FROM callbacks WHERE call_id = ? ORDER BY due_at", (call_id,)) as cur:
            return [Callback.from_row(r) for r in await cur.fetchall()]

    async def list(self, status: str | None = None, limit: int = 100) -> list[Callback]:
        sql, params = "SELECT * FROM callbacks", ()
        if status:
            sql, params = sql + " WHERE status = ?", (status,)
        async with self.conn.execute(sql + " ORDER BY due_at DESC LIMIT ?", params + (limit,)) as cur:
            return [Callback.from_row(r) for r in await cur.fetchall()]

    async def attempts(self, callback_id: str) -> list[dict[str, Any]]:
        async with self.conn.execute(
            "SELECT attempt, at, outcome FROM callbacks_attempts WHERE callback_id = ? ORDER BY attempt", (callback_id,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def cancel(self, callback_id: str) -> bool:
        cursor = await self.conn.execute(
            "UPDATE callbacks SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            (CANCELLED, self.clock(), callback_id, SCHEDULED),
        )
        return cursor.rowcount == 1

    async def retry(self, callback_id: str) -> bool:
        """Operator's `outbox retry ID` for a failed callback: due now, with a fresh attempt budget."""
        now = self.clock()
        cursor = await self.conn.execute(
            "UPDATE callbacks SET status = ?, due_at = ?, attempts = 0, updated_at = ? WHERE id = ? AND status = ?",
            (SCHEDULED, now, now, callback_id, FAILED),
        )
        return cursor.rowcount == 1

    async def claim_due(self, limit: int = 10) -> list[Callback]:
        now = self.clock()
        stale_before = now - self.config.calling_lease_seconds
        token = uuid.uuid4().hex  # makes the statement unique per claimer in logs
        async with self.conn.execute(
            "UPDATE callbacks SET status = ?, claimed_at = ?, attempts = attempts + 1, updated_at = ?,"
            " last_outcome = ? WHERE id IN (SELECT id FROM callbacks WHERE (status = ? AND due_at <= ?)"
            " OR (status = ? AND claimed_at < ?) ORDER BY due_at LIMIT ?" + self.conn.skip_locked + ")"
            # PostgreSQL: FOR UPDATE SKIP LOCKED (two controllers never ring one callback twice); the
            # condition is repeated outside the subquery so it is re-checked on the row locked.
            " AND ((status = ? AND due_at <= ?) OR (status = ? AND claimed_at < ?)) RETURNING *",
            (CALLING, now, now, f"claimed:{token}", SCHEDULED, now, CALLING, stale_before, limit,
             SCHEDULED, now, CALLING, stale_before),
        ) as cur:
            rows = await cur.fetchall()
        return [Callback.from_row(r) for r in rows]

    async def run_once(self) -> int:
        """Place every due callback now; returns how many were attempted."""
        if self.originate is None:
            return 0
        due = await self.claim_due()
        # Each call rings for up to ring_timeout: place them side by side, not one after another.
        results = await asyncio.gather(*(self._attempt(callback) for callback in due), return_exceptions=True)
        for callback, result in zip(due, results):
            if isinstance(result, Exception):  # the DB write failed: the lease brings it back later
                log.error("callback %s: could not record the attempt: %r", callback.id, result)
        return len(due)

    async def _attempt(self, callback: Callback) -> None:
        assert self.originate is not None
        try:
            outcome = await asyncio.wait_for(
                self.originate(callback.number, callback.call_id, callback.target),
                self.config.ring_timeout_seconds + 30.0,
            )
            cause = outcome_cause(outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ARI down, timeout: counts as a failed attempt, retried
            log.warning("callback %s: originate raised %s", callback.id, exc)
            cause = "error"
        now = self.clock()
        await self.conn.execute(
            "INSERT INTO callbacks_attempts (callback_id, attempt, at, outcome) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (callback.id, callback.attempts, now, cause),
        )
        if cause == "answered":
            status, due_at = DONE, callback.due_at
        elif cause in FINAL_FAILURES or callback.attempts >= callback.max_attempts:
            status, due_at = FAILED, callback.due_at
        else:
            status, due_at = SCHEDULED, now + self.config.retry_spacing_seconds
        await self.conn.execute(
            "UPDATE callbacks SET status = ?, due_at = ?, last_outcome = ?, claimed_at = NULL, updated_at = ?"
            " WHERE id = ? AND status = ? AND attempts = ?",
            (status, due_at, cause, now, callback.id, CALLING, callback.attempts),
        )
        log.info("callback %s attempt %d: %s → %s", callback.id, callback.attempts, cause, status)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="callback-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                attempted = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback scheduler pass failed")
                attempted = 0
            if attempted:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def _one(self, sql: str, params: tuple) -> Callback | None:
        async with self.conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return Callback.from_row(row) if row else None
