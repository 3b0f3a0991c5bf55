"""CallRegistry.flush waits for the changes queued before it, not for a queue that steady traffic
never empties (the 60-minute soak: every ended call's task stayed in flush, ~12 KB a call kept)."""

from __future__ import annotations

import asyncio

from callflow.core.call import CallRegistry


async def test_flush_returns_once_its_own_changes_are_written_while_other_calls_keep_writing():
    registry = CallRegistry()
    written: list[str] = []

    async def slow_store(call):
        await asyncio.sleep(0.01)
        written.append(call.call_id)

    registry.add_sink(slow_store)
    registry.open("ended")  # a call that just ended: its last change is queued
    busy = [registry.open(f"busy-{n}") for n in range(5)]
    stop = asyncio.Event()

    async def steady_traffic():  # other calls keep changing state faster than the store writes
        while not stop.is_set():
            for call in busy:
                registry.changed(call)
            await asyncio.sleep(0.005)

    traffic = asyncio.create_task(steady_traffic())
    try:
        await asyncio.wait_for(registry.flush(), timeout=5)
        assert "ended" in written
    finally:
        stop.set()
        await traffic
    await asyncio.wait_for(registry.flush(), timeout=10)


async def test_flush_with_nothing_queued_returns_at_once_and_a_cancelled_writer_never_leaves_it_waiting():
    registry = CallRegistry()
    await registry.flush()
    gate = asyncio.Event()

    async def stuck_store(call):
        await gate.wait()

    registry.add_sink(stuck_store)
    registry.open("a")
    await asyncio.sleep(0)
    registry._writer.cancel()  # a stop while a change is being written
    await asyncio.wait_for(registry.flush(), timeout=2)
