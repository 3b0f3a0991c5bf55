"""The agents' desk on small real-time fakes: routing, hold and callback offer, feature codes, flags."""

from __future__ import annotations

import asyncio

from test_agents_fakes import Desk, until

from callflow.agents import latch
from callflow.agents.pool import AgentState


async def test_longest_idle_agent_first_then_the_next_when_no_answer():
    d = Desk()
    caller = d.caller()
    agent2 = d.leg("agent2002")
    caller.plan = {"PJSIP/2001": ["no_answer"], "PJSIP/2002": [agent2]}
    task = await d.start(caller)
    await until(lambda: d.desk.live.get("call-1") and d.desk.live["call-1"].state == "with_agent", what="agent connected")
    rung = [e[2] for e in d.events if e[0] == "originate"]
    assert rung[:2] == ["PJSIP/2001", "PJSIP/2002"]
    # holding words, then music, before any ring; music stops when the agent is there
    plays = [e for e in d.events if e[1] == "caller"]
    assert plays[0] == ("play", "caller", "agents_hold") and plays[1] == ("moh", "caller", "start")
    assert ("moh", "caller", "stop") in d.events
    assert d.bridges.bridges["callflow-call-1"] == [caller.id, agent2.id]
    assert d.pool.get("2002").state is AgentState.ON_CALL
    assert d.pool.get("2001").state is AgentState.AVAILABLE
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert not agent2.up, "the agent's leg is hung up when the caller leaves"
    assert d.pool.get("2002").state is AgentState.AVAILABLE  # wrap-up 0 s in these tests
    assert "agent_connected" in d.kinds()


async def test_unregistered_phones_are_skipped():
    d = Desk(online={"PJSIP/2003"})
    caller = d.caller()
    agent3 = d.leg("agent2003")
    caller.plan = {"PJSIP/2003": [agent3]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    assert [e[2] for e in d.events if e[0] == "originate"] == ["PJSIP/2003"]
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_no_agent_hold_then_callback_offer_and_the_caller_is_never_hung_up():
    d = Desk(online=set())
    caller = d.caller()
    task = await d.start(caller)
    await until(lambda: ("play", "caller", "callback_offer") in d.events, timeout=3, what="callback offer")
    caller.press("1")
    await until(lambda: ("play", "caller", "callback_confirmed") in d.events, timeout=3)
    assert d.handoffs.requests[0][0] == "callback"
    assert d.handoffs.requests[0][1]["target"] == "agents" and d.handoffs.requests[0][1]["number"] == "+33612345678"
    await asyncio.sleep(1.0)  # still holding, never offered twice once accepted, never hung up
    assert [e for e in d.events if e[0] == "hangup"] == []
    assert sum(1 for e in d.events if e == ("play", "caller", "callback_offer")) == 1
    assert d.events[-1] == ("moh", "caller", "start") or ("moh", "caller", "start") in d.events[-3:]
    assert not task.done()
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert ("callback", "scheduled msg-1") in d.notes()


async def test_callback_offer_comes_again_while_not_accepted():
    d = Desk(online=set())
    caller = d.caller()
    task = await d.start(caller)
    await until(lambda: sum(1 for e in d.events if e == ("play", "caller", "callback_offer")) >= 2, timeout=5)
    assert d.handoffs.requests == []
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_agent_hangs_up_the_call_ends():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.leaves()
    await asyncio.wait_for(task, 3)
    assert caller.hangup_reasons == ["agent hung up"]


async def test_firm_closing_code_plays_the_closing_then_ends_the_call():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*0")
    await asyncio.wait_for(task, 3)
    steps = [d.events.index(("play", "caller", f"closing_step_{n}")) for n in (1, 2, 3)]
    hangup = d.events.index(("hangup", "caller", "firm closing (seed 002) after the third goodbye"))
    assert steps == sorted(steps) and steps[-1] < hangup
    assert d.kinds().count("closing_step") == 3
    assert ("remove", "callflow-call-1", (caller.id,)) in d.bridges.log  # the agent does not hear the prompt twice
    assert not agent.up


async def test_aggressive_flag_pauses_the_agent_and_routing_skips_them():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent2001")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*7")
    await until(lambda: d.desk.live["call-1"].aggressive)
    caller.leaves()
    await asyncio.wait_for(task, 3)
    a = d.pool.get("2001")
    assert a.state is AgentState.WRAP_UP and a.wrap_up_until - d.pool.clock() > 290
    # the next call skips 2001 even though it is first in the configured order
    caller2, agent2 = d.caller(), d.leg("agent2002")
    caller2.plan = {"PJSIP/2001": [d.leg("should-not-ring")], "PJSIP/2002": [agent2]}
    task2 = await d.start(caller2, "call-2")
    await until(lambda: d.desk.live["call-2"].state == "with_agent")
    assert [e[2] for e in d.events if e[0] == "originate" and e[1] == "caller"][-1] == "PJSIP/2002"
    assert "PJSIP/2001" not in [e[2] for e in d.events[d.events.index(("originate", "caller", "PJSIP/2002")) - 1:] if e[0] == "originate"]
    assert d.desk.notifications[0]["kind"] == "aggressive_call"
    caller2.leaves()
    await asyncio.wait_for(task2, 3)


async def test_churn_red_notifies_the_supervisor_and_schedules_a_j1_follow_up():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*8")
    await until(lambda: d.desk.notifications)
    assert d.desk.notifications[0]["kind"] == "churn_red" and d.desk.notifications[0]["to"] == "2100"
    await until(lambda: d.handoffs.requests)
    kind, req = d.handoffs.requests[0]
    assert kind == "callback" and req["target"] == "supervisor" and req["delay_seconds"] == 86400
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert any(k == "notification" and "churn_red" in v for k, v in d.notes())


async def test_keys_pressed_by_the_caller_are_not_feature_codes():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    caller.press("*0")
    await asyncio.sleep(0.5)
    assert caller.up and "closing" not in d.kinds()
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_an_emergency_call_is_never_hung_up_when_the_agent_leaves():
    d = Desk()
    caller, agent, operator, agent2 = d.caller(), d.leg("agent"), d.leg("operator"), d.leg("agent2")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/emergency-test": [operator], "PJSIP/2002": [agent2]}
    task = await d.start(caller, "call-emergency-agent")
    await until(lambda: d.desk.live["call-emergency-agent"].state == "with_agent")
    agent.press("*9")
    await until(lambda: ("originate", "caller", "PJSIP/emergency-test") in d.events)
    await until(lambda: operator.id in d.bridges.bridges.get("callflow-call-emergency-agent", []))
    assert latch.is_latched("call-emergency-agent")
    agent.press("*0")  # refused at once: never closed while latched
    await until(lambda: "closing_refused" in d.kinds("call-emergency-agent"), timeout=2)
    agent.leaves()
    await asyncio.sleep(0.5)
    assert caller.up and caller.hangup_reasons == []
    operator.leaves()  # the emergency line ends: the caller goes to the next agent, never hung up
    await until(lambda: agent2.id in d.bridges.bridges.get("callflow-call-emergency-agent", []), timeout=3)
    assert caller.up
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert "hangup_refused" in d.kinds("call-emergency-agent")
