"""The desk's state, durable: agents' states and pauses, the supervisor's escalations, notifications.

Issue 11 item 1: what the desk knows about people must survive the controller. The desk's logic
stays where it is (callflow/agents/pool.py, escalation.py, desk.py); this module only writes
its state through to the store as it changes, and puts it back after a restart:

- agents (`desk_agents`): state, since when (wall clock), pause reason, calls taken, aggressive
  calls, time idle and wrap-up left. After a restart an agent who was being rung or on a call is
  available again (the desk that would free them is gone; the call itself is taken back by its
  own state);
  a pause stays a pause, with its reason and its start; a wrap-up goes on where it was.
- escalations (`desk_escalations`): every escalation with its briefing, times and the supervisor's
  decision. One that was waiting or with the supervisor when the controller stopped comes back
  in the history as "interrupted" (its caller is taken back by the call's own state, core/call.py),
  so the supervisor can still record its outcome; new escalations keep numbering after the last.
- notifications (`desk_notifications`): what the supervisor was told, the latest 500 come back.

Writes come from the desk's synchronous code: they are queued in order and written by one task
(the same way the call registry writes `call_state`); a failing write is logged, never raised
into a call. Same SQL on SQLite and PostgreSQL (callflow.store.db).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from dataclasses import asdict, fields
from typing import Any, Awaitable, Callable, Iterable

from callflow.agents.escalation import CANCELLED, ENDED, NO_ANSWER, Briefing, Escalation, SupervisorQueue
from callflow.agents.pool import Agent, AgentPool, AgentState
from callflow.store.db import Database

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_agents (
    extension         TEXT PRIMARY KEY,
    state             TEXT NOT NULL,       -- callflow.agents.pool.AgentState
    since_epoch       REAL NOT NULL,       -- in this state since (wall clock)
    pause_reason      TEXT NOT NULL DEFAULT '',
    call_id           TEXT,
    calls_taken       INTEGER NOT NULL DEFAULT 0,
    aggressive_calls  INTEGER NOT NULL DEFAULT 0,
    idle_since_epoch  REAL NOT NULL,       -- longest idle rings first
    wrap_up_until     REAL NOT NULL DEFAULT 0,
    updated_epoch     REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS desk_escalations (
    id             TEXT PRIMARY KEY,       -- esc-N
    seq            INTEGER NOT NULL,
    call_id        TEXT NOT NULL,
    state          TEXT NOT NULL,
    body           TEXT NOT NULL,          -- JSON: the Escalation with its briefing and decision
    updated_epoch  REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS desk_notifications (
    id       TEXT PRIMARY KEY,
    at       REAL NOT NULL,
    kind     TEXT NOT NULL,
    call_id  TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT '',
    body     TEXT NOT NULL                 -- JSON: the notification as the API shows it
);
CREATE INDEX IF NOT EXISTS desk_notifications_at ON desk_notifications (at);
"""

INTERRUPTED = "interrupted"
#: escalation states that mean it is over (any other was going on when the controller stopped)
ENDED_STATES = frozenset({ENDED, NO_ANSWER, CANCELLED, INTERRUPTED})
KEEP_NOTIFICATIONS = 500


class _Writer:
    """Writes queued from synchronous code, in order, by one task; the latest copy of a key wins."""

    def __init__(self) -> None:
        self._pending: dict[str, Callable[[], Awaitable[None]]] = {}
        self._task: asyncio.Task | None = None

    def put(self, key: str, write: Callable[[], Awaitable[None]]) -> None:
        self._pending.pop(key, None)  # a newer copy goes to the end: writes stay in change order
        self._pending[key] = write
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous test): nothing to write with
            self._pending.clear()
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="desk-state-writer")

    async def _run(self) -> None:
        while self._pending:
            key = next(iter(self._pending))
            write = self._pending.pop(key)
            try:
                await write()
            except Exception:  # a failing copy must never break the desk
                log.exception("desk state write failed (%s)", key)

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


class DurableNotifications(list):
    """The desk's `notifications` list, each one also written to the store."""

    def __init__(self, items: Iterable[dict], save: Callable[[dict], None]) -> None:
        super().__init__(items)
        self._save = save

    def append(self, item: dict) -> None:  # type: ignore[override]
        super().append(item)
        self._save(item)


class DurableEscalation(Escalation):
    """An Escalation whose every change (state, times, decision) is written through."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        save = self.__dict__.get("_save")
        if save is not None and name != "_save":
            save(self)


class DurableSupervisorQueue(SupervisorQueue):
    """The supervisor's queue (seed 001 §3.1) with its escalations written through."""

    def __init__(self, state: "DeskState", clock=time.time) -> None:
        super().__init__(clock=clock)
        self._state = state

    def new(self, call_id: str, briefing: Briefing, mode: str, agent: str | None) -> Escalation:
        plain = super().new(call_id, briefing, mode, agent)
        esc = DurableEscalation(**{f.name: getattr(plain, f.name) for f in fields(Escalation)})
        self.waiting[self.waiting.index(plain)] = esc
        object.__setattr__(esc, "_save", self._state.save_escalation)
        self._state.save_escalation(esc)
        return esc


class DeskState:
    """The desk's tables. `open`, then `restore_*` before the desk runs, then `attach_*`."""

    def __init__(self, db: Database, *, wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.wall = wall
        self._writer = _Writer()

    @classmethod
    async def open(cls, target: "str | Database") -> "DeskState":
        db = await Database.open(target)
        await db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self.flush()
        await self.db.close()

    async def flush(self) -> None:
        await self._writer.flush()

    # -- agents --------------------------------------------------------------------------------
    async def restore_pool(self, pool: AgentPool, live_call_ids: Iterable[str] = ()) -> int:
        """Put the stored states back on the pool's agents (those still configured). Returns how many.

        `live_call_ids` (the calls rebuilt at restart) is kept for the callers' sake but no agent is
        held on one: see below."""
        rows = {r["extension"]: dict(r) for r in await self.db.fetchall("SELECT * FROM desk_agents")}
        now_wall, now = self.wall(), pool.clock()
        restored = 0
        for ext, agent in pool.agents.items():
            row = rows.get(ext)
            if row is None:
                continue
            try:
                state = AgentState(row["state"])
            except ValueError:
                continue
            if state in (AgentState.RINGING, AgentState.ON_CALL):
                # the offer died with the process; a call still live is taken back by its own state
                # (core/call.py: the adopted bridge, or the caller handed to a person again), and the
                # desk that would have freed the agent is gone: available, as a restart always left
                # them (a phone still busy just does not answer the next offer)
                state = AgentState.AVAILABLE
            call_id = None
            fields_now = agent.__dict__  # set quietly: this is the stored state, not a change
            fields_now.update(state=state, call_id=call_id, pause_reason=row["pause_reason"] or "",
                              calls_taken=int(row["calls_taken"]), aggressive_calls=int(row["aggressive_calls"]))
            fields_now["since"] = float(row["since_epoch"]) if state.value == row["state"] else now_wall
            fields_now["idle_since"] = now - max(0.0, now_wall - float(row["idle_since_epoch"]))
            fields_now["wrap_up_until"] = now + max(0.0, float(row["wrap_up_until"]) - now_wall)
            if state is AgentState.AVAILABLE and row["state"] != AgentState.AVAILABLE.value:
                fields_now["pause_reason"] = ""
            restored += 1
        return restored

    def attach_pool(self, pool: AgentPool) -> None:
        """From now on every change of an agent is written through."""
        for agent in pool.agents.values():
            agent.on_change = lambda a, pool=pool: self._writer.put(f"agent:{a.extension}", self._agent_write(pool, a))
            self._writer.put(f"agent:{agent.extension}", self._agent_write(pool, agent))

    def _agent_write(self, pool: AgentPool, agent: Agent) -> Callable[[], Awaitable[None]]:
        # the copy is taken now (the agent keeps changing while the write waits its turn)
        now_wall, now = self.wall(), pool.clock()
        row = (agent.extension, agent.state.value, agent.since, agent.pause_reason, agent.call_id, agent.calls_taken,
               agent.aggressive_calls, now_wall - max(0.0, now - agent.idle_since),
               now_wall + max(0.0, agent.wrap_up_until - now) if agent.wrap_up_until else 0.0, now_wall)

        async def write() -> None:
            await self.db.execute(
                "INSERT INTO desk_agents (extension, state, since_epoch, pause_reason, call_id, calls_taken,"
                " aggressive_calls, idle_since_epoch, wrap_up_until, updated_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (extension) DO UPDATE SET state = excluded.state, since_epoch = excluded.since_epoch,"
                " pause_reason = excluded.pause_reason, call_id = excluded.call_id,"
                " calls_taken = excluded.calls_taken, aggressive_calls = excluded.aggressive_calls,"
                " idle_since_epoch = excluded.idle_since_epoch, wrap_up_until = excluded.wrap_up_until,"
                " updated_epoch = excluded.updated_epoch", row)

        return write

    # -- the supervisor's escalations ---------------------------------------------------------------
    def supervisor_queue(self) -> DurableSupervisorQueue:
        return DurableSupervisorQueue(self)

    def save_escalation(self, esc: Escalation) -> None:
        data = {f.name: getattr(esc, f.name) for f in fields(Escalation)}
        data["briefing"] = asdict(esc.briefing)
        row = (esc.id, esc.seq, esc.call_id, esc.state, json.dumps(data, ensure_ascii=False, default=str), self.wall())

        async def write() -> None:
            await self.db.execute(
                "INSERT INTO desk_escalations (id, seq, call_id, state, body, updated_epoch) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body,"
                " updated_epoch = excluded.updated_epoch", row)

        self._writer.put(f"escalation:{esc.id}", write)

    async def restore_queue(self, queue: SupervisorQueue, *, keep: int = 200) -> int:
        """The stored escalations as the queue's history; those cut short by the stop are "interrupted"."""
        rows = await self.db.fetchall("SELECT body FROM desk_escalations ORDER BY seq DESC LIMIT ?", (keep,))
        top = await self.db.fetchone("SELECT COALESCE(MAX(seq), 0) FROM desk_escalations")
        history = []
        for row in reversed(rows):
            data = json.loads(row["body"])
            data["briefing"] = Briefing(**data.get("briefing") or {})
            esc = DurableEscalation(**{f.name: data[f.name] for f in fields(Escalation) if f.name in data})
            if esc.state not in ENDED_STATES:
                esc.state, esc.outcome = INTERRUPTED, esc.outcome or "controller stopped"
                esc.ended_at = esc.ended_at or self.wall()
                self.save_escalation(esc)
            object.__setattr__(esc, "_save", self.save_escalation)
            history.append(esc)
        queue.history[:0] = history
        queue._seq = itertools.count(int(top[0]) + 1)  # ids stay unique across restarts
        return len(history)

    # -- notifications ---------------------------------------------------------------------------------
    async def restore_notifications(self) -> DurableNotifications:
        rows = await self.db.fetchall("SELECT body FROM desk_notifications ORDER BY at DESC LIMIT ?",
                                      (KEEP_NOTIFICATIONS,))
        return DurableNotifications([json.loads(r["body"]) for r in reversed(rows)], self.save_notification)

    def save_notification(self, item: dict) -> None:
        row = (uuid.uuid4().hex, float(item.get("at") or self.wall()), str(item.get("kind") or ""),
               str(item.get("call_id") or ""), str(item.get("detail") or "")[:2000],
               json.dumps(item, ensure_ascii=False, default=str))

        async def write() -> None:
            await self.db.execute("INSERT INTO desk_notifications (id, at, kind, call_id, detail, body)"
                                  " VALUES (?, ?, ?, ?, ?, ?)", row)

        self._writer.put(f"notification:{row[0]}", write)


async def attach(desk: Any, state: DeskState, live_call_ids: Iterable[str] = ()) -> None:
    """The wiring's one call: put the stored desk back on `desk`, then write it through from now on.

    The desk is built with `queue=state.supervisor_queue()` so new escalations are durable.
    """
    await state.restore_pool(desk.pool, live_call_ids)
    state.attach_pool(desk.pool)
    await state.restore_queue(desk.queue)
    desk.notifications = await state.restore_notifications()
