"""ARI event dispatch: one call's events strictly in order, calls independent, errors contained."""

import asyncio
import json
import random

import pytest

from callflow.telephony.ari.events import AriEvent, EventRouter


def ev(kind, channel=None, **extra):
    raw = {"type": kind, **extra}
    if channel:
        raw["channel"] = {"id": channel, "name": f"PJSIP/{channel}", "state": "Up",
                          "caller": {"number": "0612345678"}, "dialplan": {"exten": "3000"}}
    return AriEvent.from_dict(raw)


def test_parses_the_fields_flows_use():
    e = AriEvent.from_json(json.dumps({
        "type": "StasisStart", "args": ["inbound", "x"],
        "channel": {"id": "c1", "name": "PJSIP/trunk-1", "state": "Ring", "language": "fr",
                    "caller": {"number": "anonymous", "name": ""}, "dialplan": {"exten": "3000"}}}))
    assert e.args == ("inbound", "x")
    assert e.channel.caller_number is None  # withheld is not a number
    assert e.channel.dialed == "3000"
    with pytest.raises(ValueError):
        AriEvent.from_json("[1, 2]")


async def test_events_of_one_call_run_in_order_even_with_slow_handlers():
    seen: dict[str, list[int]] = {"a": [], "b": []}
    rng = random.Random(7)

    async def handler_for(owner):
        async def handle(event):
            await asyncio.sleep(rng.random() / 500)  # handlers that yield at random points
            seen[owner].append(event.raw["n"])
        return handle

    unrouted = []

    async def on_unrouted(event):
        unrouted.append(event)

    router = EventRouter(on_unrouted, lambda owner, exc: asyncio.sleep(0))
    for owner in ("a", "b"):
        router.open(owner, await handler_for(owner))
        router.claim(owner, f"chan-{owner}")
    for n in range(200):
        await router.dispatch(ev("ChannelDtmfReceived", channel=f"chan-{'ab'[n % 2]}", n=n, digit="1"))
    await router.dispatch(ev("ChannelDtmfReceived", channel="stranger", n=-1))
    await router.close("a")
    await router.close("b")
    assert seen["a"] == list(range(0, 200, 2))
    assert seen["b"] == list(range(1, 200, 2))
    assert [e.raw["n"] for e in unrouted] == [-1]


async def test_playback_events_go_to_the_call_that_claimed_the_playback():
    got = []

    async def handle(event):
        got.append(event.type)

    router = EventRouter(lambda e: asyncio.sleep(0), lambda o, e: asyncio.sleep(0))
    router.open("call", handle)
    router.claim("call", "pb-1")
    await router.dispatch(AriEvent.from_dict({"type": "PlaybackFinished", "playback": {"id": "pb-1", "state": "done"}}))
    await router.close("call")
    assert got == ["PlaybackFinished"]


async def test_a_failing_handler_is_reported_and_later_events_still_flow():
    errors, seen = [], []

    async def handle(event):
        if event.raw["n"] == 1:
            raise RuntimeError("bug in a flow")
        seen.append(event.raw["n"])

    async def on_error(owner, exc):
        errors.append((owner, str(exc)))

    router = EventRouter(lambda e: asyncio.sleep(0), on_error)
    router.open("call", handle)
    router.claim("call", "c")
    for n in range(3):
        await router.dispatch(ev("ChannelDtmfReceived", channel="c", n=n))
    await router.close("call")
    assert errors == [("call", "bug in a flow")]
    assert seen == [0, 2]
