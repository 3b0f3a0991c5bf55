"""Issue 11 D, G, H and the restart/drain rules on the controller, against a scripted ARI (no Asterisk).

The real-Asterisk versions are in tests/integration/test_restart.py; these pin the decisions.
"""

from __future__ import annotations

import asyncio

from callflow.config import Config
from callflow.controller import Controller
from callflow.core.call import REGISTRY, Call, CallState
from callflow.core.channel import Caller, CallerHungUp
from callflow.telephony.ari.channel import AriChannel
from callflow.telephony.ari.client import AriError, AriNotFound
from callflow.telephony.ari.events import AriEvent


class ScriptedAri:
    """Answers GET from `state`, records every request; 404 for what does not exist."""

    app = "callflow"

    def __init__(self, channels: list[dict] | None = None, bridges: list[dict] | None = None,
                 variables: dict[str, dict[str, str]] | None = None) -> None:
        self.channels = {c["id"]: c for c in channels or []}
        self.bridges = {b["id"]: b for b in bridges or []}
        self.variables = variables or {}
        self.requests: list[tuple[str, str, dict]] = []
        self.fail_paths: dict[str, int] = {}  # path → status to answer with
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def request(self, method: str, path: str, params=None, body=None):
        params = dict(params or {})
        self.requests.append((method, path, params))
        if path in self.fail_paths:
            status = self.fail_paths[path]
            raise (AriNotFound if status == 404 else AriError)(status, method, path, "scripted")
        parts = path.split("/")
        if method == "GET":
            if path == "channels":
                return list(self.channels.values())
            if path == "bridges":
                return list(self.bridges.values())
            if parts[0] == "channels" and len(parts) == 2:
                if parts[1] not in self.channels:
                    raise AriNotFound(404, method, path, "Channel not found")
                return self.channels[parts[1]]
            if parts[0] == "channels" and parts[2] == "variable":
                value = self.variables.get(parts[1], {}).get(params.get("variable"), "")
                if not value:
                    raise AriNotFound(404, method, path, "Provided variable was not found")
                return {"value": value}
            if parts[0] == "bridges" and len(parts) == 2:
                if parts[1] not in self.bridges:
                    raise AriNotFound(404, method, path, "Bridge not found")
                return self.bridges[parts[1]]
            if parts[0] == "applications":
                return {"name": "callflow"}
        if method == "POST" and path == "bridges":
            self.bridges[params["bridgeId"]] = {"id": params["bridgeId"], "channels": []}
        if method == "POST" and parts[0] == "bridges" and parts[-1] == "addChannel":
            self.bridges[parts[1]]["channels"] += params["channel"].split(",")
        return None

    async def get(self, path, **params):
        return await self.request("GET", path, params)

    async def post(self, path, body=None, **params):
        return await self.request("POST", path, params, body)

    async def delete(self, path, **params):
        return await self.request("DELETE", path, params)

    def did(self, method: str, prefix: str) -> list[tuple[str, str, dict]]:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]


def stasis(cid: str, *args: str, name: str = "PJSIP/trunk-0001", number: str = "0612345678") -> dict:
    return {"id": cid, "name": name, "state": "Up", "caller": {"number": number, "name": ""},
            "connected": {"number": ""}, "dialplan": {"context": "x", "exten": "s", "priority": 1,
                                                    "app_name": "Stasis", "app_data": ",".join(["callflow", *args])},
            "language": "fr"}


def controller(ari: ScriptedAri, **kw) -> Controller:
    c = Controller(Config(), flow=kw.pop("flow", None) or _never, **kw)
    c.client = ari
    from callflow.core.guard import LineGuard
    from callflow.telephony.ari.actions import AriLineActions
    c.line = LineGuard(AriLineActions(ari), c._call_for)
    return c


async def _never(ctx):
    await asyncio.sleep(3600)


# -- H: only a verifiably gone channel is a caller gone ----------------------------------------------
async def test_h_a_404_about_something_else_is_not_the_caller_hanging_up():
    ari = ScriptedAri(channels=[stasis("c1", "inbound")])
    ari.fail_paths["channels/c1/play/pb-x"] = 404  # e.g. a sound or playback Asterisk cannot find
    chan = AriChannel(ari, "c1", Caller(number=None), claim=lambda _: None, answered=True)
    try:
        await chan._call("POST", "channels/c1/play/pb-x")
    except CallerHungUp:
        raise AssertionError("a 404 on a playback was read as the caller hanging up")
    except AriNotFound:
        pass
    assert chan.is_up and not chan.hung_up


async def test_h_the_caller_is_gone_when_get_channel_says_404():
    ari = ScriptedAri(channels=[])
    ari.fail_paths["channels/c1/moh"] = 404
    chan = AriChannel(ari, "c1", Caller(number=None), claim=lambda _: None, answered=True)
    try:
        await chan._call("POST", "channels/c1/moh")
        raise AssertionError("no error")
    except CallerHungUp:
        pass
    assert chan.hung_up


# -- G: a callback answered during a restart goes to the agents ---------------------------------------
async def test_g_a_callback_answered_with_nobody_waiting_for_it_goes_to_the_agents_not_hung_up():
    ari = ScriptedAri(channels=[stasis("cb-1", "callback", "call-9")])
    c = controller(ari)
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "channel": stasis("cb-1", "callback", "call-9"),
                                             "args": ["callback", "call-9"]}))
    assert ari.did("POST", "channels/cb-1/continue")
    assert not ari.did("DELETE", "channels/cb-1")


async def test_g_reconcile_sends_an_answered_callback_to_the_agents():
    ari = ScriptedAri(channels=[stasis("cb-2", "callback", "call-9")])
    c = controller(ari)
    await c.reconcile()
    assert ari.did("POST", "channels/cb-2/continue") and not ari.did("DELETE", "channels/cb-2")


# -- D: the emergency latch survives a restart --------------------------------------------------------
async def test_d_restart_before_the_bridge_keeps_the_emergency_from_the_store():
    REGISTRY.adopt(Call(call_id="call-d", channel_id="c-d", state=CallState.EMERGENCY, emergency=True, urgent=True,
                        summary="détresse, urgence confirmée"))
    ari = ScriptedAri(channels=[stasis("c-d", "inbound")])
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)
        await asyncio.sleep(3600)  # the emergency procedure runs until the caller hangs up

    closed: list[str] = []

    async def close(call, reason):
        closed.append(reason)

    c = controller(ari, resume=resume, close_interrupted=close)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert [call.call_id for call in resumed] == ["call-d"] and resumed[0].emergency
    assert not ari.did("POST", "channels/c-d/continue")  # not sent to the ring group without urgency
    assert closed == ["interrupted"]
    c.calls["call-d"].task.cancel()


async def test_d_restart_keeps_the_emergency_from_the_channel_variables_when_the_store_has_none():
    ari = ScriptedAri(channels=[stasis("c-v", "inbound")],
                      variables={"c-v": {"CALLFLOW_CALL": "call-v", "CALLFLOW_STATE": "emergency",
                                         "CALLFLOW_EMERGENCY": "1"}})
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    c = controller(ari, resume=resume)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert resumed and resumed[0].call_id == "call-v" and resumed[0].emergency


async def test_d_the_emergency_leg_that_answers_after_a_restart_is_bridged_with_its_caller_not_hung_up():
    REGISTRY.adopt(Call(call_id="call-e", channel_id="c-e", state=CallState.EMERGENCY, emergency=True))
    ari = ScriptedAri(channels=[stasis("c-e", "inbound"), stasis("leg-1", "leg", "c-e", name="PJSIP/emergency-test-1")])
    c = controller(ari)
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "args": ["leg", "c-e"],
                                             "channel": stasis("leg-1", "leg", "c-e", name="PJSIP/emergency-test-1")}))
    assert not ari.did("DELETE", "channels/leg-1")
    assert set(ari.bridges["callflow-call-e"]["channels"]) == {"leg-1", "c-e"}
    assert REGISTRY.get("call-e").legs["emergency"] == "leg-1"


async def test_a_leg_for_an_ordinary_call_gone_is_hung_up():
    ari = ScriptedAri(channels=[stasis("leg-2", "leg", "c-x")])
    c = controller(ari)
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "args": ["leg", "c-x"],
                                             "channel": stasis("leg-2", "leg", "c-x")}))
    assert ari.did("DELETE", "channels/leg-2")


# -- restart: a caller still in the IVR goes to a person, urgent, with the diagnosis -------------------
async def test_restart_an_ivr_caller_goes_to_a_person_urgent_with_the_diagnosis():
    REGISTRY.adopt(Call(call_id="call-i", channel_id="c-i", state=CallState.QUESTIONNAIRE, summary="respiration",
                        first_sign_of_life=12.0))
    ari = ScriptedAri(channels=[stasis("c-i", "inbound")])
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    c = controller(ari, resume=resume)
    await c.reconcile()
    await asyncio.sleep(0.05)
    (call,) = resumed
    assert call.urgent and "respiration" in call.summary and "redémarrage" in call.summary


async def test_restart_a_call_whose_caller_left_meanwhile_has_its_record_closed_interrupted():
    REGISTRY.adopt(Call(call_id="call-gone", channel_id="c-gone", state=CallState.LISTENING))
    ari = ScriptedAri(channels=[])
    closed: list[tuple[str, str]] = []

    async def close(call, reason):
        closed.append((call.call_id, reason))

    c = controller(ari, close_interrupted=close)
    await c.reconcile()
    assert closed == [("call-gone", "interrupted")]
    assert REGISTRY.get("call-gone") is None


async def test_restart_a_conversation_is_left_alone():
    ari = ScriptedAri(channels=[stasis("c-t", "inbound"), stasis("leg-a", "leg", "c-t", name="PJSIP/2001-1")],
                      bridges=[{"id": "callflow-call-t", "channels": ["c-t", "leg-a"]}])
    c = controller(ari)
    await c.reconcile()
    assert not ari.did("DELETE", "") and not ari.did("POST", "channels/c-t/continue")
    assert "callflow-call-t" in c._adopted_bridges


# -- an app nobody runs: Stasis()'s deadline --------------------------------------------------------------
def deadline_cleared(ari: ScriptedAri, channel_id: str) -> bool:
    return any(params == {"variable": "TIMEOUT(absolute)", "value": "0"}
               for _m, _p, params in ari.did("POST", f"channels/{channel_id}/variable"))


async def test_a_call_taken_clears_the_dialplans_deadline_and_only_callers_of_the_dialplan_do():
    """dialplans/hotline.conf gives Stasis() a deadline (TIMEOUT(absolute)) so that an app nobody runs sends
    the caller to the agents: a running controller clears it as the caller arrives (route inbound, and back
    from the AudioSocket listen context); legs and media forks we place ourselves have none."""
    ari = ScriptedAri(channels=[stasis("c-in", "inbound"), stasis("c-back", "back"), stasis("leg-1", "leg", "c-in")])
    c = controller(ari)
    for cid, args in (("c-in", ["inbound"]), ("c-back", ["back"]), ("leg-1", ["leg", "c-in"])):
        await c.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": args, "channel": stasis(cid, *args)}))
    await asyncio.sleep(0.01)
    assert deadline_cleared(ari, "c-in") and deadline_cleared(ari, "c-back")
    assert not deadline_cleared(ari, "leg-1")


async def test_a_deadline_that_cannot_be_cleared_leaves_the_call_running():
    """ARI refusing the clear is logged; the flow still runs (the dialplan then sends the caller to a person)."""
    ari = ScriptedAri(channels=[stasis("c-x", "inbound")])
    ari.fail_paths["channels/c-x/variable"] = 500
    c = controller(ari)
    await c.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c-x", "inbound")}))
    await asyncio.sleep(0.01)
    assert "c-x" in c.calls and not c.calls["c-x"].task.done()


# -- SIGTERM drains -----------------------------------------------------------------------------------
async def test_drain_takes_no_new_call_and_sends_it_to_the_agents():
    ari = ScriptedAri(channels=[stasis("c-n", "inbound")])
    c = controller(ari)
    await c.drain()
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c-n", "inbound")}))
    assert ari.did("POST", "channels/c-n/continue") and "c-n" not in c.calls


async def test_drain_hands_an_ivr_caller_to_the_agents():
    ari = ScriptedAri(channels=[stasis("c-r", "inbound")])
    c = controller(ari)
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c-r", "inbound")}))
    assert "c-r" in c.calls
    await asyncio.sleep(0.01)
    await c.drain()
    assert ari.did("POST", "channels/c-r/continue")
    assert not ari.did("DELETE", "channels/c-r")


async def test_drain_leaves_a_conversation_in_its_bridge():
    ari = ScriptedAri(channels=[stasis("c-b", "inbound")], bridges=[{"id": "callflow-c-b", "channels": ["c-b", "leg-z"]}])
    c = controller(ari)
    await c._on_unrouted(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c-b", "inbound")}))
    await asyncio.sleep(0.01)
    await c.drain()
    assert not ari.did("POST", "channels/c-b/continue") and not ari.did("DELETE", "")


async def reconciled_with_a_running_emergency(ari) -> tuple:
    """A controller reconciled against `ari`, its emergency procedure standing in as « runs until the caller
    hangs up »: the controller and the calls it resumed."""
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)
        await asyncio.sleep(3600)

    c = controller(ari, resume=resume)
    await c.reconcile()
    await asyncio.sleep(0.05)
    return c, resumed


async def test_restart_an_emergency_whose_line_was_not_reached_is_dialled_again_into_the_conversation():
    """The agent keyed *9 and the controller died before the line answered: after the restart the
    conversation is kept and the line is dialled again into it."""
    REGISTRY.adopt(Call(call_id="call-9", channel_id="c-9", state=CallState.EMERGENCY, emergency=True,
                        bridge_id="callflow-call-9", legs={"agent": "leg-a9"}))
    ari = ScriptedAri(channels=[stasis("c-9", "inbound"), stasis("leg-a9", "leg", "c-9", name="PJSIP/2001-9")],
                      bridges=[{"id": "callflow-call-9", "channels": ["c-9", "leg-a9"]}])
    c, resumed = await reconciled_with_a_running_emergency(ari)
    assert "callflow-call-9" in c._adopted_bridges
    assert [r.call_id for r in resumed] == ["call-9"] and resumed[0].bridge_id == "callflow-call-9"
    assert not ari.did("DELETE", "") and not ari.did("POST", "channels/c-9/continue")
    c.calls["call-9"].task.cancel()


async def test_restart_an_emergency_known_only_from_the_callers_channel_variables_is_dialled_again():
    """kill -9 right after the agent's *9, the store's writer behind (load): the new process's store has no
    such call, but the caller's channel says CALLFLOW_EMERGENCY=1: the line is dialled again into the
    conversation (before, the conversation was only watched and the emergency line never tried again)."""
    REGISTRY.forget("call-7")
    ari = ScriptedAri(channels=[stasis("c-7", "inbound"), stasis("leg-a7", "leg", "c-7", name="PJSIP/2001-7")],
                      bridges=[{"id": "callflow-call-7", "channels": ["c-7", "leg-a7"]}],
                      variables={"c-7": {"CALLFLOW_CALL": "call-7", "CALLFLOW_STATE": "emergency",
                                         "CALLFLOW_EMERGENCY": "1", "CALLFLOW_URGENT": "1"}})
    c, resumed = await reconciled_with_a_running_emergency(ari)
    assert [r.call_id for r in resumed] == ["call-7"], resumed
    assert resumed[0].emergency and resumed[0].bridge_id == "callflow-call-7"
    assert c._adopted_bridges.get("callflow-call-7") == "call-7"
    assert not ari.did("DELETE", "") and not ari.did("POST", "channels/c-7/continue")
    assert not ari.did("POST", "bridges/callflow-call-7/removeChannel")
    c.calls["call-7"].task.cancel()


async def test_restart_a_resumed_emergency_whose_caller_hangs_up_releases_the_agent_and_closes_the_record():
    """The race behind « the agent's leg left behind » (kill9 × emergency_dialling, seen once in three runs):
    after the restart the emergency line is dialled again by a flow of ours while the conversation is watched.
    The caller hangs up: their ChannelLeftBridge comes while their channel still answers (the watch leaves it
    to the flow), the flow ends on the hang-up, and the caller's ChannelDestroyed only comes after that. The
    watch must still release the agent's leg, remove the bridge and close the record."""
    REGISTRY.adopt(Call(call_id="call-8", channel_id="c-8", state=CallState.EMERGENCY, emergency=True,
                        bridge_id="callflow-call-8", legs={"agent": "leg-a8"}))
    ari = ScriptedAri(channels=[stasis("c-8", "inbound"), stasis("leg-a8", "leg", "c-8", name="PJSIP/2001-8")],
                      bridges=[{"id": "callflow-call-8", "channels": ["c-8", "leg-a8"]}])
    hung_up = asyncio.Event()
    closed: list[tuple[str, str]] = []

    async def resume(call):  # as EmergencyBridge.run: dials until the caller's hang-up, then returns
        await hung_up.wait()
        call.channel._mark_hungup()

    async def close_left(call, reason):
        closed.append((call.call_id, reason))

    c = controller(ari, resume=resume, close_left=close_left)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert "call-8" in c.calls
    # the caller leaves the bridge (hanging up): their channel still answers GET for a moment
    ari.bridges["callflow-call-8"]["channels"] = ["leg-a8"]
    await c.dispatch(AriEvent.from_dict({"type": "ChannelLeftBridge", "bridge": {"id": "callflow-call-8"},
                                         "channel": {"id": "c-8"}}))
    await asyncio.sleep(0.05)
    assert not ari.did("DELETE", "channels/leg-a8")  # nothing decided while the caller's channel answers
    # the flow sees the hang-up and ends; only then is the caller's channel destroyed
    hung_up.set()
    await asyncio.sleep(0.05)
    assert "call-8" not in c.calls
    del ari.channels["c-8"]
    await c.dispatch(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": "c-8"}, "cause": 16}))
    for _ in range(40):  # the watch's re-look (0.5 s) or the ChannelDestroyed, whichever comes first
        if ari.did("DELETE", "bridges/callflow-call-8"):
            break
        await asyncio.sleep(0.05)
    assert ari.did("DELETE", "channels/leg-a8"), ari.requests
    assert ari.did("DELETE", "bridges/callflow-call-8")
    assert [cid for cid, _ in closed] == ["call-8"]
    assert "callflow-call-8" not in c._adopted_bridges and REGISTRY.get("call-8") is None


# -- issue 15: a caller on the AudioSocket path when the controller restarted ---------------------------
async def test_restart_a_caller_in_the_listen_context_is_left_there_then_taken_back_when_it_comes_back():
    REGISTRY.adopt(Call(call_id="call-as", channel_id="c-as", state=CallState.LISTENING, summary="respiration",
                        media="audiosocket"))
    in_listen = dict(stasis("c-as"), dialplan={"context": "callflow-listen", "exten": "s", "priority": 2,
                                                "app_name": "TryExec", "app_data": "AudioSocket(x,127.0.0.1:1)"})
    ari = ScriptedAri(channels=[in_listen])
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    c = controller(ari, resume=resume)
    await c.reconcile()
    assert not resumed and not ari.did("POST", "channels/c-as/continue") and not ari.did("DELETE", "channels/c-as")
    assert REGISTRY.get("call-as") is not None  # its channel exists: not closed as vanished
    # AudioSocket() ended with the old process's socket: the dialplan brings the caller back to Stasis
    await c.router.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["back"], "channel": stasis("c-as", "back")}))
    await asyncio.sleep(0.05)
    (call,) = resumed
    assert call.call_id == "call-as" and call.urgent and "redémarrage" in call.summary and call.media == ""


# -- a reconnect while a call arrives: its StasisStart still unread when reconcile lists the channels ----
async def test_a_new_call_whose_stasisstart_is_unread_at_reconcile_runs_its_flow_not_taken_back():
    """test_media's « 409 Channel not in Stasis application »: the ARI link came back as a call entered the
    app; reconcile saw the caller (no state anywhere yet) and sent it to the agents, then the StasisStart
    queued on the new connection started the flow on a channel already gone from the app."""
    ari = ScriptedAri(channels=[stasis("c-new", "inbound")])
    flows: list[str] = []

    async def flow(ctx):
        flows.append(ctx.call_id)
        await asyncio.sleep(3600)

    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    c = controller(ari, flow=flow, resume=resume)
    c.UNSEEN_GRACE = 0.2
    await c.reconcile()
    # the event the new connection held, read right after reconcile (client.run_events' order)
    await c.dispatch(AriEvent.from_dict({"type": "StasisStart", "args": ["inbound"], "channel": stasis("c-new", "inbound")}))
    await asyncio.sleep(0.5)
    try:
        assert flows == ["c-new"]
        assert not resumed and not ari.did("POST", "channels/c-new/continue")
        assert not (REGISTRY.get("c-new") and REGISTRY.get("c-new").urgent)
    finally:
        c.calls["c-new"].task.cancel()


async def test_a_caller_with_no_state_whose_stasisstart_never_comes_is_taken_back_after_the_grace():
    """The same caller left by a controller that died before writing anything: taken back, only later."""
    ari = ScriptedAri(channels=[stasis("c-old", "inbound")])
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    c = controller(ari, resume=resume)
    c.UNSEEN_GRACE = 0.2
    await c.reconcile()
    assert not resumed
    await asyncio.sleep(0.5)
    (call,) = resumed
    assert call.channel_id == "c-old" and call.urgent


async def test_restart_an_emergency_keeps_when_it_latched_from_the_channel_not_the_restart():
    """The 30 s before a person takes an unanswered emergency count from the latch: the copy on the caller's
    channel (CALLFLOW_EMERGENCY_SINCE) gives it back to a restarted controller, from the channel variables
    alone or beside the store's state (which does not keep it)."""
    latched = 1795990000.0
    ari = ScriptedAri(channels=[stasis("c-s", "inbound")],
                      variables={"c-s": {"CALLFLOW_CALL": "call-s", "CALLFLOW_STATE": "emergency",
                                         "CALLFLOW_EMERGENCY": "1", "CALLFLOW_EMERGENCY_SINCE": f"{latched:.0f}"}})
    resumed: list[Call] = []

    async def resume(call):
        resumed.append(call)

    REGISTRY.forget("call-s")
    c = controller(ari, resume=resume)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert resumed and resumed[0].emergency_since == latched
    REGISTRY.forget("call-s")
    # the store's copy (no time in it) is completed from the channel
    REGISTRY.adopt(Call(call_id="call-t", channel_id="c-s", state=CallState.EMERGENCY, emergency=True))
    ari.variables["c-s"]["CALLFLOW_CALL"] = "call-t"
    resumed.clear()
    c = controller(ari, resume=resume)
    await c.reconcile()
    await asyncio.sleep(0.05)
    assert resumed and resumed[0].call_id == "call-t" and resumed[0].emergency_since == latched
    REGISTRY.forget("call-t")
