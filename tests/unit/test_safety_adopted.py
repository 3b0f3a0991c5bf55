"""Issue 11, the fault campaign's leftovers: a conversation no flow runs any more is still watched.

After kill -9, SIGTERM or a handler error the people stay with the caller and the controller
adopts the bridge (docs/safety.md rules 10 and 15). These pin what happens next, against a
scripted ARI: when the caller leaves, the agent's and the operator's legs are released through
the guard, the bridge goes and the record is closed; a connection error is never "the caller
left"; our own bridges left empty by a stopped controller are removed at reconcile.
"""

from __future__ import annotations

import asyncio

import aiohttp

from callflow.core.call import REGISTRY, Call, CallState
from callflow.telephony.ari.events import AriEvent
from test_controller_restart import ScriptedAri, controller, stasis


def left_bridge(bridge_id: str, channel_id: str) -> AriEvent:
    return AriEvent.from_dict({"type": "ChannelLeftBridge", "bridge": {"id": bridge_id, "channels": []},
                               "channel": {"id": channel_id}})


async def settle(c) -> None:
    """Let the watch's task (started by dispatch) run to its end."""
    for _ in range(20):
        await asyncio.sleep(0.01)
        if not any(t.get_name().startswith("adopted:") for t in asyncio.all_tasks()):
            return


def emergency_call(call_id: str, caller: str) -> Call:
    return REGISTRY.adopt(Call(call_id=call_id, channel_id=caller, state=CallState.EMERGENCY, emergency=True,
                               bridge_id=f"callflow-{call_id}", legs={"agent": "leg-a", "emergency": "leg-e"}))


async def test_the_caller_leaves_an_adopted_emergency_bridge_the_agent_and_the_line_are_released_and_the_record_closed():
    emergency_call("call-x", "c-x")
    ari = ScriptedAri(channels=[stasis("leg-a", "leg", "c-x", name="PJSIP/2001-1"),
                                stasis("leg-e", "leg", "c-x", name="PJSIP/emergency-test-1")],
                      bridges=[{"id": "callflow-call-x", "channels": ["leg-a", "leg-e"]}])  # the caller hung up
    closed: list[tuple[str, str]] = []

    async def close_left(call, reason):
        closed.append((call.call_id, reason))

    c = controller(ari, close_left=close_left)
    await c._adopt_bridge("callflow-call-x", "call-x")
    await c.dispatch(left_bridge("callflow-call-x", "c-x"))
    await settle(c)
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "channels/leg-e")
    assert ari.did("DELETE", "bridges/callflow-call-x")
    assert [cid for cid, _ in closed] == ["call-x"] and "caller hung up" in closed[0][1]
    assert "callflow-call-x" not in c._adopted_bridges and REGISTRY.get("call-x") is None


async def test_the_watch_sees_the_bridge_even_when_a_resumed_call_owns_the_callers_events():
    """SIGTERM while the line was dialled: the next controller dials it again (a session claims the caller's
    channel), so ChannelLeftBridge is routed to that session — the adopted bridge must still be watched."""
    emergency_call("call-y", "c-y")
    ari = ScriptedAri(channels=[stasis("leg-a", "leg", "c-y", name="PJSIP/2001-1")],
                      bridges=[{"id": "callflow-call-y", "channels": ["leg-a"]}])
    c = controller(ari, close_left=_ignore)
    seen: list[str] = []

    async def session_handler(event):
        seen.append(event.type)

    c.router.open("call-y", session_handler)
    c.router.claim("call-y", "c-y")
    await c._adopt_bridge("callflow-call-y", "call-y")
    await c.dispatch(left_bridge("callflow-call-y", "c-y"))
    await settle(c)
    assert seen == ["ChannelLeftBridge"]  # the call's own handler still gets it
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "bridges/callflow-call-y")
    await c.router.close("call-y")


async def test_a_connection_error_is_not_the_caller_leaving_nobody_is_released():
    """Issue 11 H for errors that are not a 404: ARI unreachable means « cannot tell », never « gone »."""
    emergency_call("call-z", "c-z")

    class Unreachable(ScriptedAri):
        async def request(self, method, path, params=None, body=None):
            if method == "GET" and path == "channels/c-z":
                raise aiohttp.ClientConnectionError("ARI link cut")
            return await super().request(method, path, params, body)

    ari = Unreachable(channels=[stasis("leg-a", "leg", "c-z"), stasis("leg-e", "leg", "c-z")],
                      bridges=[{"id": "callflow-call-z", "channels": ["leg-a", "leg-e"]}])
    c = controller(ari, close_left=_ignore)
    await c._adopt_bridge("callflow-call-z", "call-z")
    await c.dispatch(left_bridge("callflow-call-z", "c-z"))
    await settle(c)
    assert not ari.did("DELETE", "")
    assert "callflow-call-z" in c._adopted_bridges  # still watched: the next event or reconcile looks again
    REGISTRY.forget("call-z")


async def test_the_caller_still_with_the_operator_nothing_is_released():
    emergency_call("call-w", "c-w")
    ari = ScriptedAri(channels=[stasis("c-w", "inbound"), stasis("leg-e", "leg", "c-w")],
                      bridges=[{"id": "callflow-call-w", "channels": ["c-w", "leg-e"]}])  # the agent left
    c = controller(ari, close_left=_ignore)
    await c._adopt_bridge("callflow-call-w", "call-w")
    await c.dispatch(left_bridge("callflow-call-w", "leg-a"))
    await settle(c)
    assert not ari.did("DELETE", "") and not ari.did("POST", "bridges/callflow-call-w/removeChannel")
    REGISTRY.forget("call-w")


async def test_restart_the_caller_left_while_we_were_away_the_people_left_in_the_bridge_are_released():
    """kill -9 with the emergency line bridged, the caller hangs up before the controller is back."""
    emergency_call("call-k", "c-k")
    ari = ScriptedAri(channels=[stasis("leg-a", "leg", "c-k", name="PJSIP/2001-1"),
                                stasis("leg-e", "leg", "c-k", name="PJSIP/emergency-test-1")],
                      bridges=[{"id": "callflow-call-k", "channels": ["leg-a", "leg-e"]}])
    closed: list[str] = []

    async def close_left(call, reason):
        closed.append(call.call_id)

    c = controller(ari, close_left=close_left)
    await c.reconcile()
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "channels/leg-e")
    assert ari.did("DELETE", "bridges/callflow-call-k") and closed == ["call-k"]


async def test_restart_an_adopted_conversation_has_its_record_closed_when_the_caller_hangs_up():
    """kill -9 with an agent: the conversation is left alone, then closed in the record when the caller leaves."""
    REGISTRY.adopt(Call(call_id="call-a", channel_id="c-a", state=CallState.WITH_AGENT,
                        bridge_id="callflow-call-a", legs={"agent": "leg-a"}))
    ari = ScriptedAri(channels=[stasis("c-a", "inbound"), stasis("leg-a", "leg", "c-a", name="PJSIP/2001-1")],
                      bridges=[{"id": "callflow-call-a", "channels": ["c-a", "leg-a"]}])
    closed: list[str] = []

    async def close_left(call, reason):
        closed.append(call.call_id)

    c = controller(ari, close_left=close_left)
    await c.reconcile()
    assert not ari.did("DELETE", "") and closed == []  # the conversation goes on
    del ari.channels["c-a"]
    ari.bridges["callflow-call-a"]["channels"] = ["leg-a"]
    await c.dispatch(left_bridge("callflow-call-a", "c-a"))
    await settle(c)
    assert ari.did("DELETE", "channels/leg-a") and closed == ["call-a"]


async def test_restart_our_empty_bridges_are_removed_a_bridge_with_a_person_is_kept():
    ari = ScriptedAri(channels=[stasis("snoop-1", "media", name="Snoop/c-q-0001"), stasis("c-p", "inbound")],
                      bridges=[{"id": "fork-abc", "channels": ["snoop-1", "gone-media"]},
                               {"id": "callflow-old", "channels": []},
                               {"id": "callflow-live", "channels": ["c-p", "leg-p"]},
                               {"id": "somebody-elses", "channels": []}])
    c = controller(ari, resume=_ignore_resume)
    await c.reconcile()
    assert ari.did("DELETE", "bridges/fork-abc") and ari.did("DELETE", "bridges/callflow-old")
    assert ari.did("DELETE", "channels/snoop-1")
    assert not ari.did("DELETE", "bridges/callflow-live") and not ari.did("DELETE", "bridges/somebody-elses")
    for session in list(c.calls.values()):
        session.task.cancel()


async def test_restart_a_caller_alone_in_our_bridge_is_taken_out_and_the_bridge_removed():
    REGISTRY.adopt(Call(call_id="call-l", channel_id="c-l", state=CallState.WITH_AGENT, bridge_id="callflow-call-l"))
    ari = ScriptedAri(channels=[stasis("c-l", "inbound")], bridges=[{"id": "callflow-call-l", "channels": ["c-l"]}])
    resumed: list[str] = []

    async def resume(call):
        resumed.append(call.call_id)

    c = controller(ari, resume=resume, close_interrupted=_ignore)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert ari.did("POST", "bridges/callflow-call-l/removeChannel") and ari.did("DELETE", "bridges/callflow-call-l")
    assert resumed == ["call-l"] and not ari.did("DELETE", "channels/c-l")


async def _ignore(*_args) -> None:
    return None


async def _ignore_resume(call) -> None:
    await asyncio.sleep(3600)


# -- legs placed for a caller: after the caller left, after an ARI cut ----------------------------------
def _pending_legs(chan, *leg_ids):
    loop = asyncio.get_running_loop()
    for leg_id in leg_ids:
        chan._legs[leg_id] = loop.create_future()


async def test_a_leg_still_ringing_when_the_caller_leaves_stops_ringing():
    """The emergency line that never answers rang on up to 30 s after its caller had gone."""
    from callflow.agents.legs import originate_while_up
    from callflow.core.channel import Caller, CallerHungUp
    from callflow.telephony.ari.channel import AriChannel

    ari = ScriptedAri(channels=[stasis("c-r", "inbound")])
    chan = AriChannel(ari, "c-r", Caller(number=None), claim=lambda _: None, answered=True)
    placing = asyncio.ensure_future(originate_while_up(chan, "PJSIP/emergency-test", timeout=30))
    await asyncio.sleep(0.05)
    (leg_id,) = list(chan._legs)
    await chan.handle(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": "c-r"}}))  # the caller hangs up
    try:
        await asyncio.wait_for(placing, 2)
        raise AssertionError("no CallerHungUp")
    except CallerHungUp:
        pass
    assert ari.did("DELETE", f"channels/{leg_id}")


async def test_after_an_ari_cut_legs_that_answered_or_ended_meanwhile_are_caught_up():
    from callflow.core.channel import Caller
    from callflow.telephony.ari.channel import AriChannel

    ari = ScriptedAri(channels=[stasis("c-u", "inbound"), stasis("leg-up", "leg", "c-u")])
    chan = AriChannel(ari, "c-u", Caller(number=None), claim=lambda _: None, answered=True)
    _pending_legs(chan, "leg-up", "leg-gone", "leg-ringing")
    await chan.catch_up_legs(existing={"c-u", "leg-up", "leg-ringing"}, in_app={"c-u", "leg-up"})
    assert chan._legs["leg-up"].result().answered and chan.legs["leg-up"].is_up
    assert not chan._legs["leg-gone"].result().answered
    assert not chan._legs["leg-ringing"].done()  # still ringing: its own events will tell


async def test_after_an_ari_cut_a_prompt_that_finished_meanwhile_does_not_keep_the_caller_in_silence():
    """ARI cut during the greeting: its PlaybackFinished was lost and the flow waited 50 s in silence."""
    from callflow.core.channel import Caller
    from callflow.telephony.ari.channel import AriChannel

    ari = ScriptedAri(channels=[stasis("c-g", "inbound")])
    c = controller(ari)
    chan = AriChannel(ari, "c-g", Caller(number=None), claim=lambda _: None, answered=True)
    playing = asyncio.ensure_future(chan.play("greeting", barge_in=False))
    await asyncio.sleep(0.05)
    (playback_id,) = list(chan._playbacks)
    from callflow.core.call import Call

    c.calls["c-g"] = Call(call_id="c-g").attach(chan)
    ari.fail_paths[f"playbacks/{playback_id}"] = 404  # it played out while the link was down
    await c.reconcile()
    result = await asyncio.wait_for(playing, 1)
    assert result.completed and chan.is_up  # and the caller is still there: not "hung up"
    assert not ari.did("POST", "channels/c-g/continue")


async def _caller_left_an_adopted_emergency_bridge(x: str):
    """An emergency whose bridge (agent's and operator's legs) was adopted after a restart, and the caller's
    ChannelLeftBridge while their channel still answers GET: the fake ARI and the controller."""
    emergency_call(f"call-{x}", f"c-{x}")
    ari = ScriptedAri(channels=[stasis(f"c-{x}", "inbound"), stasis("leg-a", "leg", f"c-{x}"), stasis("leg-e", "leg", f"c-{x}")],
                      bridges=[{"id": f"callflow-call-{x}", "channels": ["leg-a", "leg-e"]}])
    c = controller(ari, close_left=_ignore)
    await c._adopt_bridge(f"callflow-call-{x}", f"call-{x}")
    await c.dispatch(left_bridge(f"callflow-call-{x}", f"c-{x}"))
    await settle(c)
    return ari, c


async def test_the_caller_leaving_the_bridge_before_its_channel_is_gone_is_caught_at_the_channels_end():
    """The fault campaign's handler_error × emergency_bridged: ChannelLeftBridge came while GET channels/{id}
    still answered (the hang-up in progress), so the legs stayed; the caller's ChannelDestroyed settles it."""
    ari, c = await _caller_left_an_adopted_emergency_bridge("v")
    assert not ari.did("DELETE", "")  # not verifiably gone yet: nothing released
    del ari.channels["c-v"]
    await c.dispatch(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": "c-v"}}))
    await settle(c)
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "channels/leg-e")
    assert ari.did("DELETE", "bridges/callflow-call-v")


async def test_the_caller_out_of_the_bridge_is_looked_at_again_even_when_its_channels_end_is_never_reported(monkeypatch):
    """The merged suite's kill -9 × with_agent: the caller left the adopted bridge while GET channels/{id} still
    answered, and no ChannelDestroyed came after it: the agent's leg and the bridge stayed until the next ARI
    reconnect. The watch now looks again on its own timer."""
    from callflow import controller as controller_module

    monkeypatch.setattr(controller_module, "_ELSEWHERE_RECHECKS", (0.05, 0.1))
    REGISTRY.adopt(Call(call_id="call-w", channel_id="c-w", state=CallState.WITH_AGENT,
                        bridge_id="callflow-call-w", legs={"agent": "leg-a"}))
    ari = ScriptedAri(channels=[stasis("c-w", "inbound"), stasis("leg-a", "leg", "c-w", name="PJSIP/2001-1")],
                      bridges=[{"id": "callflow-call-w", "channels": ["leg-a"]}])
    closed: list[str] = []

    async def close_left(call, reason):
        closed.append(call.call_id)

    c = controller(ari, close_left=close_left)
    await c._adopt_bridge("callflow-call-w", "call-w")
    await c.dispatch(left_bridge("callflow-call-w", "c-w"))
    await settle(c)
    assert not ari.did("DELETE", "")  # the caller's channel still answers: nothing released yet
    del ari.channels["c-w"]  # its end is never reported to us
    for _ in range(100):
        if ari.did("DELETE", "bridges/callflow-call-w"):
            break
        await asyncio.sleep(0.01)
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "bridges/callflow-call-w")
    assert closed == ["call-w"] and "callflow-call-w" not in c._adopted_bridges


async def test_the_callers_channel_destroyed_is_proof_enough_even_if_get_still_answers_for_a_moment():
    """The same cell, the race left last session: at the caller's ChannelDestroyed, GET channels/{id} still
    answered 200 (Asterisk unlinks the channel just after publishing its end), so the watch said « the caller
    is elsewhere » and the agent's and the operator's legs stayed. Asterisk's own event is the proof."""
    ari, c = await _caller_left_an_adopted_emergency_bridge("w")
    assert not ari.did("DELETE", "")
    await c.dispatch(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": "c-w"}}))  # GET still 200
    await settle(c)
    assert ari.did("DELETE", "channels/leg-a") and ari.did("DELETE", "channels/leg-e")
    assert ari.did("DELETE", "bridges/callflow-call-w")
