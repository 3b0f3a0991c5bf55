"""An ended call leaves nothing alive behind it: its channel, its media fork and its task go with the call,
however far behind the call-state writer is (issue 11's soak: hung-up callers' channels stayed alive
after gc, held through their MediaFork — 6 → 59 in 4 minutes at 30 concurrent, ~12 KB a call).

The cause: `Controller._run_call` ended each call with `await registry.flush()`, i.e. it waited for the
writer (a store write and a few REST requests per call, one call after the other) to reach the call's
last change, holding the task, the channel and its fork meanwhile. Under load the writer lagged and the
ended calls piled up there. The writer below never finishes a write: the old code kept every call."""

from __future__ import annotations

import asyncio
import gc
import weakref

from callflow.config import Config
from callflow.controller import Controller
from callflow.core.call import CallRegistry
from callflow.core.guard import LineGuard
from callflow.telephony.ari.actions import AriLineActions
from callflow.telephony.ari.events import AriEvent
from tests.unit.test_controller_restart import ScriptedAri, stasis


class ForkingAri(ScriptedAri):
    """ScriptedAri that also lets a media fork start (externalMedia answers with its RTP address)."""

    async def request(self, method, path, params=None, body=None):
        if method == "POST" and path == "channels/externalMedia":
            self.requests.append((method, path, dict(params or {})))
            return {"id": params["channelId"], "channelvars": {"UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1",
                                                                "UNICASTRTP_LOCAL_PORT": "40000"}}
        return await super().request(method, path, params, body)


async def _until(condition, timeout: float = 5.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


async def test_an_ended_calls_channel_fork_and_task_are_freed_while_the_state_writer_lags():
    ari = ForkingAri(channels=[stasis("c1", "inbound")])
    registry = CallRegistry()
    stuck = asyncio.Event()

    async def lagging_store(call):  # the store (or the channel's mirror) far behind: never done here
        await stuck.wait()

    registry.add_sink(lagging_store)
    listening = asyncio.Event()

    async def flow(ctx):
        await ctx.channel.answer()
        await ctx.channel.start_listening()
        listening.set()
        while True:
            await ctx.channel.next_input(1.0)  # raises CallerHungUp once the caller is gone

    ctl = Controller(Config(), flow=flow, registry=registry)
    ctl.client = ari
    ctl.line = LineGuard(AriLineActions(ari), ctl._call_for)
    await ctl.receiver.start("127.0.0.1", 0)
    try:
        await _one_call(ctl, ari, registry, listening)
    finally:
        stuck.set()
        await ctl.receiver.stop()
    await asyncio.wait_for(registry.flush(), 5)
    assert registry._pending.empty()


async def _one_call(ctl: Controller, ari: ForkingAri, registry: CallRegistry, listening: asyncio.Event) -> None:
    await ctl.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c1", "inbound")}))
    session = ctl.calls["c1"]
    # the fork's snoop and externalMedia channels enter our app, as Asterisk's would
    await _until(lambda: len(ari.did("POST", "channels/externalMedia")) == 1)
    snoop = ari.did("POST", "channels/c1/snoop")[0][2]["snoopId"]
    media = ari.did("POST", "channels/externalMedia")[0][2]["channelId"]
    for cid in (snoop, media):
        await ctl.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["media"], "channel": {"id": cid}}))
    await asyncio.wait_for(listening.wait(), 5)
    channel, fork, task = weakref.ref(session.channel), weakref.ref(session.channel.media), weakref.ref(session.task)
    assert fork() is not None and fork().active
    del session

    ari.channels.pop("c1")
    await ctl.dispatch(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": "c1"}, "cause": 16}))
    await _until(lambda: task() is None or task().done())  # the old code: still waiting on the writer
    assert "c1" not in ctl.calls and registry.get("c1") is None
    await asyncio.sleep(0)
    gc.collect()
    assert channel() is None, "the ended call's channel is still alive"
    assert fork() is None, "the ended call's media fork is still alive"
    assert task() is None, "the ended call's task is still alive"
    assert ctl.receiver.streams == {}, "the receiver still feeds the ended call's audio"


async def test_a_call_handed_to_the_dialplan_is_forgotten_an_emergency_is_kept():
    """The registry kept every call a flow handed to the agents' dialplan: no event about it reaches us
    after it left our app, so nothing ever ended it there."""
    ari = ScriptedAri(channels=[stasis("c1", "inbound"), stasis("c2", "inbound")])
    registry = CallRegistry()
    ended = asyncio.Event()

    async def flow(ctx):
        if ctx.call_id == "c2":
            registry.get("c2").latch_emergency("cas F")
        await ctx.channel.continue_in_dialplan("agents")
        ended.set()

    ctl = Controller(Config(), flow=flow, registry=registry)
    ctl.client = ari
    ctl.line = LineGuard(AriLineActions(ari), ctl._call_for)
    for cid in ("c1", "c2"):
        ended.clear()
        await ctl.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis(cid, "inbound")}))
        task = ctl.calls[cid].task
        await asyncio.wait_for(task, 5)
    assert ari.did("POST", "channels/c1/continue") and ari.did("POST", "channels/c2/continue")
    assert registry.get("c1") is None
    assert registry.get("c2") is not None and registry.get("c2").emergency


async def test_a_settled_ring_attempt_is_not_kept_for_the_rest_of_the_call():
    """A caller on hold has an agent rung every few seconds: each attempt's future stayed on the caller's
    channel until the call ended."""
    from callflow.core.channel import Caller
    from callflow.telephony.ari.channel import AriChannel

    ari = ScriptedAri(channels=[stasis("c1", "inbound")])
    chan = AriChannel(ari, "c1", Caller(number=None), claim=lambda _: None, answered=True)
    for n in range(3):
        attempt = asyncio.ensure_future(chan.originate("PJSIP/2001", timeout=5))
        await _until(lambda: len(ari.did("POST", "channels")) > n and chan._legs)
        (leg_id,) = list(chan._legs)
        await chan.route(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": leg_id}, "cause": 19}))
        result = await asyncio.wait_for(attempt, 2)
        assert not result.answered and result.cause == "no_answer"
        assert chan._legs == {}, "a settled ring attempt is still held by the caller's channel"
