"""Messages left by callers and the hotline's open/closed override (seed 003).

« relevé et traité dès la réouverture »: every message a caller leaves (line
closed, or no agent free) becomes a ticket — caller, time, the Asterisk
recording, the motive chosen by key (urgent / normal) — listed for the agents
(`callflow messages list|play|done`, `GET /api/messages` for the console) until
someone marks it done. Same database as the call records (callflow.store.db: SQLite or PostgreSQL).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from callflow.core.hours import OVERRIDES
from callflow.paths import DEFAULT_DB
from callflow.store.db import Database
from callflow.store.records import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id             TEXT PRIMARY KEY,     -- MSG-xxxxxxxx
    call_id        TEXT NOT NULL,
    number         TEXT,                 -- full; NULL when withheld
    created_at     TEXT NOT NULL,        -- ISO 8601 UTC
    created_epoch  REAL NOT NULL,
    language       TEXT NOT NULL,
    source         TEXT NOT NULL,        -- closed (out of hours) / overflow (no agent free)
    motive         TEXT NOT NULL,        -- urgent / normal (the caller's key)
    recording      TEXT,                 -- Asterisk stored recording name
    duration       REAL,                 -- seconds of recording
    confirmed      INTEGER NOT NULL,     -- 1: confirmed by key; 0: the caller hung up after speaking
    summary        TEXT NOT NULL DEFAULT '',
    callback_id    TEXT,                 -- the « à l'ouverture » callback of an urgent message
    status         TEXT NOT NULL,        -- open / done
    done_at        TEXT,
    done_by        TEXT,
    done_note      TEXT
);

CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status, created_epoch);

CREATE TABLE IF NOT EXISTS hours_override (
    id      INTEGER PRIMARY KEY,         -- always 1
    mode    TEXT NOT NULL,               -- auto / open / closed
    set_at  TEXT NOT NULL,
    set_by  TEXT NOT NULL DEFAULT ''
);
"""

MOTIVES = ("urgent", "normal")
SOURCES = ("closed", "overflow")


@dataclass
class Ticket:
    id: str
    call_id: str
    number: str | None
    created_at: str
    created_epoch: float
    language: str
    source: str
    motive: str
    recording: str | None
    duration: float | None
    confirmed: bool
    summary: str
    callback_id: str | None
    status: str
    done_at: str | None = None
    done_by: str | None = None
    done_note: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Messages:
    def __init__(self, conn: Database, clock=time.time) -> None:
        self.conn = conn
        self.clock = clock

    @classmethod
    async def open(cls, path: str | Path | Database = DEFAULT_DB, clock=time.time) -> "Messages":
        conn = await Database.open(path)
        await conn.executescript(SCHEMA)
        return cls(conn, clock)

    async def close(self) -> None:
        await self.conn.close()

    # -- tickets ------------------------------------------------------------------
    async def add(self, *, call_id: str, number: str | None, language: str, source: str, motive: str,
                  recording: str | None, duration: float | None, confirmed: bool, summary: str = "") -> Ticket:
        if motive not in MOTIVES:
            raise ValueError(f"motive is one of {MOTIVES}, not {motive!r}")
        if source not in SOURCES:
            raise ValueError(f"source is one of {SOURCES}, not {source!r}")
        now = self.clock()
        ticket = Ticket(id=f"MSG-{uuid.uuid4().hex[:8]}", call_id=call_id, number=number, created_at=iso(now),
                        created_epoch=now, language=language, source=source, motive=motive, recording=recording,
                        duration=duration, confirmed=confirmed, summary=summary[:500], callback_id=None, status="open")
        await self.conn.execute(
            "INSERT INTO tickets (id, call_id, number, created_at, created_epoch, language, source, motive, recording,"
            " duration, confirmed, summary, callback_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ticket.id, call_id, number, ticket.created_at, now, language, source, motive, recording, duration,
             int(confirmed), ticket.summary, None, "open"))
        await self.conn.commit()
        return ticket

    async def set_callback(self, ticket_id: str, callback_id: str) -> None:
        await self.conn.execute("UPDATE tickets SET callback_id = ? WHERE id = ?", (callback_id, ticket_id))
        await self.conn.commit()

    async def get(self, ticket_id: str) -> Ticket | None:
        async with self.conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)) as cur:
            row = await cur.fetchone()
        return _ticket(row) if row else None

    async def list(self, *, status: str | None = "open", limit: int = 200) -> list[Ticket]:
        """Urgent first, then the oldest: the order the agents should take them at opening."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        sql = (f"SELECT * FROM tickets {where} ORDER BY CASE motive WHEN 'urgent' THEN 0 ELSE 1 END, created_epoch"
               " LIMIT ?")
        async with self.conn.execute(sql, (*params, limit)) as cur:
            return [_ticket(r) for r in await cur.fetchall()]

    async def for_call(self, call_id: str) -> list[Ticket]:
        async with self.conn.execute("SELECT * FROM tickets WHERE call_id = ? ORDER BY created_epoch", (call_id,)) as cur:
            return [_ticket(r) for r in await cur.fetchall()]

    async def done(self, ticket_id: str, *, by: str = "", note: str = "") -> bool:
        cur = await self.conn.execute(
            "UPDATE tickets SET status = 'done', done_at = ?, done_by = ?, done_note = ? WHERE id = ? AND status = 'open'",
            (iso(self.clock()), by[:60], note[:500], ticket_id))
        await self.conn.commit()
        return cur.rowcount == 1

    # -- the supervisor's override --------------------------------------------------
    async def override(self) -> str:
        async with self.conn.execute("SELECT mode FROM hours_override WHERE id = 1") as cur:
            row = await cur.fetchone()
        return row[0] if row else "auto"

    async def set_override(self, mode: str, by: str = "") -> None:
        if mode not in OVERRIDES:
            raise ValueError(f"the override is one of {', '.join(OVERRIDES)}, not {mode!r}")
        await self.conn.execute(
            "INSERT INTO hours_override (id, mode, set_at, set_by) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, set_at = excluded.set_at, set_by = excluded.set_by",
            (mode, iso(self.clock()), by[:60]))
        await self.conn.commit()


def _ticket(row) -> Ticket:
    data = dict(row)
    data["confirmed"] = bool(data["confirmed"])
    return Ticket(**data)
