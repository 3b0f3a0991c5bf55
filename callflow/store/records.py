"""Call records in SQL (SQLite by default), written as the call goes.

`Records` is the CallRecorder (callflow/core/recorder.py) the controller gives
the flows, and the store other rooms link to: the outbox calls
`add_link(call_id, kind, ref, at)` when a message about a call is sent or a
reply arrives. Every write is committed at once, so a crash mid-call still
leaves the record up to that moment. Numbers are stored in full and only ever
logged masked (callflow.core.channel.mask_number).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from callflow.core.channel import mask_number
from callflow.core.recorder import CallType, Cause, HungUpBy
from callflow.store.db import Database
from callflow.store.schema import SCHEMA
from callflow.paths import DEFAULT_DB


log = logging.getLogger(__name__)



def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def to_epoch(value: float | int | str | datetime | None) -> float:
    """Epoch seconds from an epoch, a datetime or an ISO text (naive means UTC)."""
    if value is None:
        return datetime.now(timezone.utc).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class Records:
    def __init__(self, conn: Database) -> None:
        self.conn = conn  # callflow.store.db.Database: SQLite or PostgreSQL, the same SQL
        self._seq: dict[tuple[str, str], int] = {}  # (table, call_id) → last seq written
        self._started: dict[str, float] = {}

    @classmethod
    async def open(cls, path: str | Path | Database = DEFAULT_DB) -> "Records":
        """A path, sqlite:///path, postgresql://… URL, or an open Database to share (callflow.store.db)."""
        conn = await Database.open(path)
        await conn.executescript(SCHEMA)
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    async def _write(self, sql: str, params: tuple) -> None:
        await self.conn.execute(sql, params)  # autocommit: on disk before the call goes on

    async def _next_seq(self, table: str, call_id: str) -> int:
        key = (table, call_id)
        if key not in self._seq:  # a call we did not start (restart): continue its numbering
            async with self.conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table} WHERE call_id = ?", (call_id,)) as cur:
                self._seq[key] = (await cur.fetchone())[0]
        self._seq[key] += 1
        return self._seq[key]

    # -- CallRecorder ------------------------------------------------------------
    async def start(self, call_id: str, *, number: str | None, started_at: float, flow: str, language: str) -> None:
        self._started[call_id] = started_at
        log.info("record %s: call from %s", call_id, mask_number(number))
        await self._write(
            "INSERT INTO calls (call_id, started_at, started_epoch, number, flow, language) VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, iso(started_at), started_at, number, flow, language),
        )

    async def note(self, call_id: str, kind: str, detail: str = "", *, at: float) -> None:
        seq = await self._next_seq("call_actions", call_id)
        await self._write(
            "INSERT INTO call_actions (call_id, seq, at, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (call_id, seq, at, kind, detail),
        )

    async def audio(
        self, call_id: str, *, start: float, end: float, state: str, distress: bool = False, level_dbfs: float = -99.0
    ) -> None:
        seq = await self._next_seq("call_audio", call_id)
        await self._write(
            "INSERT INTO call_audio (call_id, seq, start_at, end_at, state, distress, level_dbfs) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, seq, start, end, state, int(distress), level_dbfs),
        )

    async def set_type(self, call_id: str, call_type: CallType) -> None:
        await self._write("UPDATE calls SET call_type = ? WHERE call_id = ?", (CallType(call_type).value, call_id))

    async def set_cause(self, call_id: str, cause: Cause) -> None:
        await self._write("UPDATE calls SET cause = ? WHERE call_id = ?", (Cause(cause).value, call_id))

    async def link(self, call_id: str, kind: str, ref: str, *, at: float) -> None:
        """From a flow: `at` is seconds since the call was answered."""
        started = self._started.get(call_id)
        await self.add_link(call_id, kind, ref, None if started is None else started + at)

    async def ended(self, call_id: str, *, at: float, hung_up_by: HungUpBy, reason: str) -> None:
        started = self._started.pop(call_id, None)
        ended_at = iso(started + at) if started is not None else iso(to_epoch(None))
        await self._write(
            "UPDATE calls SET duration = ?, hung_up_by = ?, hangup_reason = ?, ended_at = ? WHERE call_id = ?",
            (at, HungUpBy(hung_up_by).value, reason, ended_at, call_id),
        )
        for table in ("call_actions", "call_audio"):
            self._seq.pop((table, call_id), None)

    # -- each call's one state (callflow/core/call.py), written through -------------------
    async def save_call_state(self, call) -> None:
        """A `CallRegistry` sink: the call's state as it changes (upsert)."""
        snap = call.snapshot()
        await self._write(
            "INSERT INTO call_state (call_id, channel_id, number, state, emergency, urgent, summary, first_sign_of_life,"
            " bridge_id, legs, updated_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (call_id) DO UPDATE SET channel_id = excluded.channel_id, number = excluded.number,"
            " state = excluded.state, emergency = excluded.emergency, urgent = excluded.urgent,"
            " summary = excluded.summary, first_sign_of_life = excluded.first_sign_of_life,"
            " bridge_id = excluded.bridge_id, legs = excluded.legs, updated_epoch = excluded.updated_epoch",
            (snap["call_id"], snap["channel_id"], snap["number"], snap["state"], int(snap["emergency"]),
             int(snap["urgent"]), snap["summary"], snap["first_sign_of_life"], snap["bridge_id"],
             json.dumps(snap["legs"]), snap["updated_at"]),
        )

    async def live_call_states(self) -> list[dict]:
        """Every call not ended, as `Call.from_snapshot` reads it (a restarted controller rebuilds from these)."""
        async with self.conn.execute("SELECT * FROM call_state WHERE state != 'ended'") as cur:
            rows = await cur.fetchall()
        out = []
        for row in rows:
            data = dict(row)
            data["legs"] = json.loads(data.get("legs") or "{}")
            out.append(data)
        return out

    async def close_interrupted(self, call_id: str, *, hung_up_by: HungUpBy = HungUpBy.AGENT,
                                reason: str = "interrupted") -> bool:
        """Close a record left open by a controller that stopped (documented = 100 % still holds)."""
        now = to_epoch(None)
        async with self.conn.execute("SELECT started_epoch FROM calls WHERE call_id = ? AND ended_at IS NULL",
                                     (call_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return False
        await self._write(
            "UPDATE calls SET duration = ?, hung_up_by = ?, hangup_reason = ?, ended_at = ?"
            " WHERE call_id = ? AND ended_at IS NULL",
            (max(0.0, now - row[0]), HungUpBy(hung_up_by).value, reason, iso(now), call_id),
        )
        return True

    # -- for the outbox and the inbound SMS matcher ---------------------------------
    async def add_link(self, call_id: str, kind: str, ref: str, at: float | str | datetime | None = None) -> None:
        """« Si client écrit : Lier à cet appel ». Idempotent."""
        await self._write(
            "INSERT INTO call_links (call_id, kind, ref, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (call_id, kind, str(ref), iso(to_epoch(at))),
        )

    async def find_recent_call(self, number: str, since: float) -> str | None:
        """The latest call from `number` started after `since` (epoch), for linking a reply."""
        async with self.conn.execute(
            "SELECT call_id FROM calls WHERE number = ? AND started_epoch >= ? ORDER BY started_epoch DESC LIMIT 1",
            (number, since),
        ) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    # -- reading -----------------------------------------------------------------------
    async def list_calls(self, since: Any = None, until: Any = None, limit: int | None = None) -> list[dict]:
        sql, params = "SELECT * FROM calls WHERE 1 = 1", []
        if since is not None:
            sql += " AND started_epoch >= ?"
            params.append(to_epoch(since))
        if until is not None:
            sql += " AND started_epoch < ?"
            params.append(to_epoch(until))
        sql += " ORDER BY started_epoch, call_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self.conn.execute(sql, params) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def get_call(self, call_id: str) -> dict | None:
        async with self.conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        call = dict(row)
        call.update((await self._details([call_id]))[call_id])
        return call

    async def calls_with_details(self, since: Any = None, until: Any = None) -> list[dict]:
        calls = await self.list_calls(since, until)
        details = await self._details([c["call_id"] for c in calls])
        for c in calls:
            c.update(details.get(c["call_id"], _empty()))
        return calls

    async def _details(self, call_ids: Iterable[str]) -> dict[str, dict]:
        ids = list(call_ids)
        out: dict[str, dict] = {i: _empty() for i in ids}
        if not ids:
            return out
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for table, key, order in (
                ("call_actions", "actions", "seq"),
                ("call_audio", "audio", "seq"),
                ("call_links", "links", "at, kind, ref"),
            ):
                async with self.conn.execute(
                    f"SELECT * FROM {table} WHERE call_id IN ({marks}) ORDER BY call_id, {order}", chunk
                ) as cur:
                    for r in await cur.fetchall():
                        out[r["call_id"]][key].append(dict(r))
        return out

    async def export_csv(self, out: io.TextIOBase, since: Any = None, until: Any = None) -> int:
        """One line per call: the documentation card, actions summarised."""
        calls = await self.calls_with_details(since, until)
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for c in calls:
            writer.writerow(card_row(c))
        return len(calls)


CSV_COLUMNS = [
    "call_id", "date_heure", "numero", "duree_s", "type", "cause_probable",
    "raccroche_par", "raison", "langue", "actions", "handoffs", "audio", "suivi",
]


def card_row(c: dict) -> list:
    actions = [f"{a['at']:.1f}s {a['kind']}:{a['detail']}" for a in c["actions"] if a["kind"] != "input"]
    handoffs = [a["detail"] for a in c["actions"] if a["kind"] in ("handoff", "agent", "emergency")]
    audio = [f"{s['start_at']:.1f}-{s['end_at']:.1f}s {s['state']}{' distress' if s['distress'] else ''}" for s in c["audio"]]
    links = [f"{link['kind']}:{link['ref']}" for link in c["links"]]
    return [
        c["call_id"], c["started_at"], c["number"] or "", "" if c["duration"] is None else round(c["duration"], 1),
        _label(CallType, c["call_type"]), _label(Cause, c["cause"]), c["hung_up_by"] or "", c["hangup_reason"] or "",
        c["language"], " | ".join(actions), " | ".join(handoffs), " | ".join(audio), " | ".join(links),
    ]


def _label(enum_cls, value: str | None) -> str:
    if value is None:
        return ""
    try:
        return enum_cls(value).label
    except ValueError:
        return value


def _empty() -> dict:
    return {"actions": [], "audio": [], "links": []}
