"""Live updates: read the live picture every `refresh_seconds`, number what changed, push it.

Each event is what changed in one section of the picture since the last tick, with an id
`<boot>.<n>`, in one of three shapes:

- small sections (agents, queue, emergencies, alerts, conversations, callbacks): the section
  in full, sent when it differs from the last one sent;
- calls, compared row by row (`ROWS`): `{"rows": [changed rows], "gone": [ids], "order": [ids]}`;
- timelines, which only grow (`STREAMS`): `{"append": {call id: [new readings]}, "gone": [ids]}`.

`current` holds every section in full (pages render from it). The last events are kept: a
browser that reconnects with `Last-Event-ID` gets what it missed, in order, and applies it; one
whose id is from another boot or too old gets every section in full afresh (a `reset`, where
calls are a list and timelines `{"full": …}`). Either way a view is never silently stale, and
the page shows "déconnecté" while the stream is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

SECTIONS = ("calls", "agents", "queue", "emergencies", "alerts", "timelines", "conversations", "callbacks")
ROWS = {"calls": "call_id"}  # compared row by row: an event carries the rows that changed
STREAMS = {"timelines": 480}  # append-only: an event carries the new points (and keeps this many per call)


def is_delta(data: Any) -> bool:
    """A row-by-row change of a ROWS section (else: that section in full, a list)."""
    return isinstance(data, dict) and "rows" in data


def apply_stream(current: dict, increment: dict, keep: int) -> None:
    """Apply a STREAMS increment (or a reset's {"full": …}) to a section's full copy."""
    if "full" in increment:
        current.clear()
        current.update({k: list(v) for k, v in increment["full"].items()})
        return
    for key, points in increment.get("append", {}).items():
        line = current.setdefault(key, [])
        line.extend(points)
        del line[:-keep]
    for key in increment.get("gone", ()):
        current.pop(key, None)


@dataclass(frozen=True)
class Event:
    seq: int
    section: str
    data: Any

    def id(self, boot: str) -> str:
        return f"{boot}.{self.seq}"


class EventHub:
    def __init__(self, picture: Callable[[], Awaitable[dict[str, Any]]], *, refresh: float = 0.5,
                 keep: int = 2000) -> None:
        self.picture = picture
        self.refresh = refresh
        self.boot = secrets.token_hex(4)
        self.events: deque[Event] = deque(maxlen=keep)
        self.current: dict[str, Any] = {}
        self._serialised: dict[str, str] = {}
        self._rows: dict[str, dict[str, str]] = {}  # ROWS section → row id → its JSON
        self._order: dict[str, list[str]] = {}
        self._seq = 0
        self._changed = asyncio.Condition()
        self._poked = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        try:
            await self.tick()
        except Exception:  # never stops the controller's HTTP server from starting: the loop tries again
            log.exception("console: first reading of the live picture failed")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="console-events")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        async with self._changed:
            self._changed.notify_all()

    def poke(self) -> None:
        """Something the views show just happened (a call came in): read the picture now, not at the next tick."""
        self._poked.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._poked.wait(), self.refresh)
            except asyncio.TimeoutError:
                pass
            self._poked.clear()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: reading the live picture failed")

    async def tick(self) -> list[Event]:
        picture = await self.picture()
        new = []
        for section in SECTIONS:
            if section not in picture:
                continue
            value = picture[section]
            if section in STREAMS:
                data = self._stream(section, value)
            elif section in ROWS:
                data = self._row_changes(section, value)
            else:
                data = self._whole(section, value)
            if data is None:
                continue
            self._seq += 1
            event = Event(self._seq, section, data)
            self.events.append(event)
            new.append(event)
        if new:
            async with self._changed:
                self._changed.notify_all()
        return new

    def _whole(self, section: str, value: Any) -> Any:
        text = json.dumps(value, sort_keys=True, default=str)
        if self._serialised.get(section) == text:
            return None
        self._serialised[section] = text
        self.current[section] = value
        return value

    def _row_changes(self, section: str, rows: list[dict]) -> dict | None:
        key = ROWS[section]
        texts = {str(row[key]): json.dumps(row, sort_keys=True, default=str) for row in rows}
        old = self._rows.get(section)
        order = [str(row[key]) for row in rows]
        if old is None:  # the first reading: every row
            changed, gone = rows, []
        else:
            changed = [row for row in rows if old.get(str(row[key])) != texts[str(row[key])]]
            gone = [k for k in old if k not in texts]
            if not changed and not gone and order == self._order.get(section):
                return None
        self._rows[section], self._order[section] = texts, order
        self.current[section] = rows
        return {"rows": changed, "gone": gone, "order": order}

    def _stream(self, section: str, increment: dict) -> dict | None:
        if not increment.get("append") and not increment.get("gone"):
            return None
        apply_stream(self.current.setdefault(section, {}), increment, STREAMS[section])
        return increment

    @property
    def last_id(self) -> str:
        return f"{self.boot}.{self._seq}"

    def since(self, last_event_id: str | None) -> list[Event] | None:
        """Events after `last_event_id`, or None when they cannot be replayed (send a reset)."""
        if not last_event_id:
            return None
        boot, _, seq = last_event_id.partition(".")
        if boot != self.boot or not seq.isdigit():
            return None
        seq_n = int(seq)
        if seq_n > self._seq:
            return None
        oldest = self.events[0].seq if self.events else self._seq + 1
        if seq_n + 1 < oldest:
            return None  # fell out of the kept window
        return [e for e in self.events if e.seq > seq_n]

    async def wait_after(self, seq: int, timeout: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._seq > seq), timeout)
            except asyncio.TimeoutError:
                pass

    def snapshot_events(self) -> list[Event]:
        """Every section as it is now, in full (for a reset), numbered with the latest id."""
        return [Event(self._seq, section, {"full": self.current[section]} if section in STREAMS else self.current[section])
                for section in SECTIONS if section in self.current]


async def stream(request, hub: EventHub, render: Callable[[str, Any], Awaitable[dict | None]],
                 *, ping: float = 15.0) -> Any:
    """The SSE response: replay or reset, then live events until the browser goes away."""
    from aiohttp_sse import sse_response

    last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    resp = None
    try:
        async with sse_response(request, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}) as resp:
            resp.ping_interval = ping
            missed = hub.since(last)
            if missed is None:
                await resp.send(json.dumps({"reset": True}), event="reset", id=hub.last_id)
                batch, sent = hub.snapshot_events(), hub._seq
            else:
                batch = missed
                sent = missed[-1].seq if missed else int(last.split(".")[1])
            await _pump(resp, hub, render, batch, sent, ping)
    except ConnectionResetError:  # the browser went away (page closed, network cut)
        pass
    return resp


async def _pump(resp, hub: EventHub, render, batch: list[Event], sent: int, ping: float) -> None:
    while resp.is_connected():
        for event in batch:
            payload = await render(event.section, event.data)
            if payload is not None:
                await resp.send(json.dumps(payload, default=str), event="section", id=event.id(hub.boot))
            sent = max(sent, event.seq)
        await hub.wait_after(sent, ping)
        batch = [e for e in hub.events if e.seq > sent]
        if batch and batch[0].seq > sent + 1:
            # this client fell behind the kept window: start again from the full picture
            await resp.send(json.dumps({"reset": True}), event="reset", id=hub.last_id)
            batch = hub.snapshot_events()
