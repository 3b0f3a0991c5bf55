"""Typed ARI events and their per-call, in-order dispatch."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str
    state: str
    caller_number: str | None
    caller_name: str | None
    dialed: str | None
    language: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "ChannelInfo":
        caller = raw.get("caller") or {}
        dialplan = raw.get("dialplan") or {}
        number = caller.get("number") or None
        if number and number.lower() in ("anonymous", "unknown", "restricted", "private", "unavailable"):
            number = None  # withheld: never treated as a number
        return cls(
            id=raw.get("id", ""),
            name=raw.get("name", ""),
            state=raw.get("state", ""),
            caller_number=number,
            caller_name=caller.get("name") or None,
            dialed=dialplan.get("exten") or None,
            language=raw.get("language") or "fr",
        )


@dataclass(frozen=True)
class AriEvent:
    """One event from the ARI WebSocket; the fields flows care about, parsed."""

    type: str
    raw: dict[str, Any] = field(repr=False)
    channel: ChannelInfo | None = None
    args: tuple[str, ...] = ()
    digit: str | None = None
    playback_id: str | None = None
    bridge_id: str | None = None
    cause: int | None = None
    peer_id: str | None = None  # Dial events: the called leg
    recording_name: str | None = None  # Recording* events

    @classmethod
    def from_json(cls, text: str) -> "AriEvent":
        raw = json.loads(text)
        if not isinstance(raw, dict) or "type" not in raw:
            raise ValueError("not an ARI event")
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "AriEvent":
        channel = raw.get("channel")
        playback = raw.get("playback") or {}
        bridge = raw.get("bridge") or {}
        peer = raw.get("peer") or {}
        recording = raw.get("recording") or {}
        return cls(
            type=raw["type"],
            raw=raw,
            channel=ChannelInfo.from_json(channel) if isinstance(channel, dict) else None,
            args=tuple(str(a) for a in raw.get("args") or ()),
            digit=raw.get("digit"),
            playback_id=playback.get("id"),
            bridge_id=bridge.get("id"),
            cause=raw.get("cause"),
            peer_id=peer.get("id"),
            recording_name=recording.get("name"),
        )

    @property
    def channel_id(self) -> str | None:
        return self.channel.id if self.channel else None

    @property
    def at(self) -> float | None:
        """When Asterisk raised the event (epoch seconds), None if it does not say."""
        stamp = self.raw.get("timestamp")
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() if stamp else None
        except (TypeError, ValueError):
            return None


Handler = Callable[[AriEvent], Awaitable[None]]


class EventRouter:
    """Routes events to the call that owns them; one call's events run strictly in order.

    Each owner (a call) gets a queue and one pump task, so a slow handler for one
    call never delays another call, and never reorders its own call's events.
    Channels, playbacks and bridges are mapped to owners as the flows create them.
    """

    def __init__(self, on_unrouted: Handler, on_handler_error: Callable[[str, BaseException], Awaitable[None]]):
        self._on_unrouted = on_unrouted
        self._on_handler_error = on_handler_error
        self._owner_of: dict[str, str] = {}  # channel / playback / bridge id → owner key
        self._queues: dict[str, asyncio.Queue[AriEvent | None]] = {}
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._handlers: dict[str, Handler] = {}

    def open(self, owner: str, handler: Handler) -> None:
        self._handlers[owner] = handler
        queue: asyncio.Queue[AriEvent | None] = asyncio.Queue()
        self._queues[owner] = queue
        self._pumps[owner] = asyncio.get_running_loop().create_task(self._pump(owner, handler, queue), name=f"events:{owner}")

    def claim(self, owner: str, object_id: str) -> None:
        """Events about object_id (a channel, playback or bridge) now go to owner."""
        self._owner_of[object_id] = owner

    def release(self, object_id: str) -> None:
        self._owner_of.pop(object_id, None)

    def owners(self) -> list[str]:
        return list(self._handlers)

    def owns(self, object_id: str) -> bool:
        return object_id in self._owner_of

    async def close(self, owner: str) -> None:
        queue = self._queues.pop(owner, None)
        self._handlers.pop(owner, None)
        for key in [k for k, v in self._owner_of.items() if v == owner]:
            del self._owner_of[key]
        if queue is not None:
            queue.put_nowait(None)
        pump = self._pumps.pop(owner, None)
        if pump is not None and pump is not asyncio.current_task():
            await asyncio.gather(pump, return_exceptions=True)

    def owner_for(self, event: AriEvent) -> str | None:
        for object_id in (event.playback_id, event.channel_id, event.bridge_id, event.peer_id, event.recording_name):
            if object_id and object_id in self._owner_of:
                return self._owner_of[object_id]
        return None

    async def dispatch(self, event: AriEvent) -> None:
        owner = self.owner_for(event)
        if owner is None or owner not in self._queues:
            await self._on_unrouted(event)
            return
        self._queues[owner].put_nowait(event)

    async def _pump(self, owner: str, handler: Handler, queue: asyncio.Queue[AriEvent | None]) -> None:
        while True:
            event = await queue.get()
            if event is None:  # closed: everything queued before the close was handled
                return
            try:
                await handler(event)
            except Exception as exc:  # one call's bug must not stop its events, nor other calls
                log.exception("ari event handler failed", extra={"owner": owner, "event": event.type})
                await self._on_handler_error(owner, exc)
