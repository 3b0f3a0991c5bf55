"""The console's live view forgets what ended calls left behind (a 60-minute soak found every call's
audio timeline kept for ever: the controller grew ~12 KB a call)."""

from __future__ import annotations

import asyncio

from callflow.console.live import KEEP_ENDED, RAISED_KEPT, LiveSource

from console_fakes import FakeController


def test_ended_calls_timelines_are_bounded_and_live_ones_kept():
    clock = [1000.0]
    controller = FakeController()
    live = LiveSource(controller=controller, clock=lambda: clock[0])
    for n in range(KEEP_ENDED * 3):  # calls one after the other, each read by the view while it lasts
        cid = f"call-{n}"
        controller.add_ivr_call(cid)
        controller.reading(cid, at=1.0, raised=(n % 7 == 0))
        asyncio.run(live.calls())
        del controller.calls[cid]
        clock[0] += 1.0
    controller.add_ivr_call("still-here")
    controller.reading("still-here", at=1.0)
    asyncio.run(live.calls())
    assert len(live._timelines) <= KEEP_ENDED + 1
    assert live.timeline("still-here"), "a live call's timeline is never dropped"
    assert live.timeline(f"call-{KEEP_ENDED * 3 - 1}"), "the most recent ended calls keep theirs (after-call card)"
    assert not live.timeline("call-0")
    assert set(live._appended) <= set(live._timelines)
    assert all(clock[0] - at < RAISED_KEPT for at in live._raised.values())


def test_a_call_too_short_to_be_seen_by_the_view_is_forgotten_too():
    controller = FakeController()
    live = LiveSource(controller=controller)
    for n in range(KEEP_ENDED + 50):  # readings, but the call ended before the view's next tick
        controller.reading(f"short-{n}", at=0.25)
    asyncio.run(live.calls())
    assert len(live._timelines) == KEEP_ENDED
