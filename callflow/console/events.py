"""Live updates: compare the live picture every `refresh_seconds`, number what changed, push it.

Each event is one section of the picture (calls, agents, queue, emergencies, alerts,
timelines, conversations) in full, with an id `<boot>.<n>`. The last events are kept: a
browser that reconnects with `Last-Event-ID` gets what it missed, in order; one whose id is
from another boot or too old gets every section afresh (a `reset`). Either way a view is
never silently stale, and the page shows "déconnecté" while the stream is down.
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
        self._seq = 0
        self._changed = asyncio.Condition()
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

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
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
            text = json.dumps(picture[section], sort_keys=True, default=str)
            if self._serialised.get(section) == text:
                continue
            self._serialised[section] = text
            self.current[section] = picture[section]
            self._seq += 1
            event = Event(self._seq, section, picture[section])
            self.events.append(event)
            new.append(event)
        if new:
            async with self._changed:
                self._changed.notify_all()
        return new

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
        """Every section as it is now (for a reset), numbered with the latest id."""
        return [Event(self._seq, section, self.current[section]) for section in SECTIONS if section in self.current]


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
