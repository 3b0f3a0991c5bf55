"""Small helpers shared by the desk, the escalation and the emergency bridge."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from callflow.core.channel import Channel, CallerHungUp, OriginateResult
from callflow.core.guard import abandon_ringing_legs, drop_stray_leg
from callflow.core.recorder import CallRecorder

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between looks at the legs' state

_FIRST_SEEN: dict[str, float] = {}  # call id → monotonic time we first wrote about it (channels without a clock)


class CallNotes:
    """Writes one call's actions to its record; a record failure never breaks the call."""

    def __init__(self, recorder: CallRecorder, call_id: str, channel: Channel) -> None:
        self.recorder = recorder
        self.call_id = call_id
        self.channel = channel
        if call_id not in _FIRST_SEEN:
            if len(_FIRST_SEEN) > 10000:
                _FIRST_SEEN.clear()
            _FIRST_SEEN[call_id] = time.monotonic()
        self._t0 = _FIRST_SEEN[call_id]

    def now(self) -> float:
        """Seconds since the call was answered when the channel knows it, else since we took it."""
        clock = getattr(self.channel, "now", None)
        try:
            if callable(clock):
                return float(clock())
            if isinstance(clock, (int, float)):
                return float(clock)
        except Exception:
            pass
        return time.monotonic() - self._t0

    async def __call__(self, kind: str, detail: str = "") -> None:
        try:
            await self.recorder.note(self.call_id, kind, detail, at=round(self.now(), 3))
        except Exception:
            log.exception("call record note failed", extra={"call": self.call_id, "kind": kind})


async def wait_down(*channels: Channel, timeout: float | None = None, stop: Callable[[], bool] | None = None) -> Channel | None:
    """Wait until one of the channels is gone (returned), or timeout / stop() (None)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for c in channels:
            if not c.is_up:
                return c
        if stop is not None and stop():
            return None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(POLL, remaining))
        else:
            await asyncio.sleep(POLL)


async def hang_up_quietly(channel: Channel | None, reason: str) -> None:
    """A leg nobody needs (answered after its caller left): see callflow/core/guard.py."""
    await drop_stray_leg(channel, reason)


async def originate_while_up(caller: Channel, endpoint: str, *, timeout: float, caller_id: str | None = None) -> OriginateResult:
    """Place a call linked to the caller's; CallerHungUp if the caller leaves first.

    A leg that answers after the caller left is hung up at once.
    """
    placing = asyncio.ensure_future(caller.originate(endpoint, caller_id=caller_id, timeout=timeout))
    watcher = asyncio.ensure_future(wait_down(caller))
    try:
        done, _ = await asyncio.wait({placing, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # stopped from outside (SIGTERM, an error): a leg that answers later is left to the
        # controller, which bridges an emergency line with its caller (never dropped here)
        watcher.cancel()
        raise
    if placing in done:
        watcher.cancel()
        return placing.result()
    placing.add_done_callback(drop_late_leg)
    await abandon_ringing_legs(caller)  # the caller is gone: its legs stop ringing now
    raise CallerHungUp(getattr(caller, "id", ""))


def drop_late_leg(fut: "asyncio.Future[OriginateResult]") -> None:
    """A leg placed for someone who no longer waits for it: hung up if it answers."""
    if fut.cancelled() or fut.exception() is not None:
        return
    result = fut.result()
    if result.answered and result.channel is not None:
        asyncio.ensure_future(drop_stray_leg(result.channel, "caller left before the answer"))


async def play_all(channel: Channel, prompts: list[str], *, language: str | None = None) -> bool:
    """Play prompts one after the other, not interruptible; False if the leg went away."""
    for prompt in prompts:
        if not channel.is_up:
            return False
        try:
            await channel.play(prompt, language=language, barge_in=False)
        except CallerHungUp:
            return False
    return channel.is_up
