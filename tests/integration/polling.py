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
