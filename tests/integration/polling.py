"""Waiting for something to become true, with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time


async def poll(predicate, what: str, timeout: float = 15.0, interval: float = 0.05):
    """Call `predicate` (plain or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


async def never(predicate, what: str, within: float, interval: float = 0.1) -> None:
    """Fail as soon as `predicate` becomes truthy during the next `within` seconds.

    For « this must not happen » checks: the test fails at the moment the forbidden
    event comes (not after a blind sleep), and `within` is the procedure's own timing.
    """
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            raise AssertionError(f"{what}: {result!r}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
