"""Issue 11 C and E on the desk's fakes: the emergency line unanswered, the desk stopped during *9."""

from __future__ import annotations

import asyncio

from test_agents_fakes import Desk, until

from callflow.core.call import REGISTRY


async def test_c_no_operator_within_person_after_a_person_takes_the_caller_and_the_line_keeps_being_tried():
    d = Desk()
    d.emergency.config.person_after = 0.3
    d.emergency.notify = d.desk.notify
    caller, agent, operator = d.caller(), d.leg("agent"), d.leg("operator")
    caller.plan = {"PJSIP/emergency-test": ["no_answer"] * 12 + [operator], "PJSIP/2001": [agent]}
    d.calls["call-c"] = caller
    await d.recorder.start("call-c", number="+33612345678", started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-c", caller_number="+33612345678", situation="détresse",
                                                   answers={"urgence_medicale": "oui"}))
    # a person takes the caller while the line is still unanswered
    await until(lambda: d.desk.live.get("call-c") is not None and d.desk.live["call-c"].state == "with_agent", timeout=5)
    assert d.desk.live["call-c"].diagnosis.urgent
    assert [n["kind"] for n in d.desk.notifications].count("emergency_unanswered") == 1  # the supervisor is alerted
    dialled = sum(1 for e in d.events if e == ("originate", "caller", "PJSIP/emergency-test"))
    # the line keeps being tried; the operator joins the caller and the agent
    await until(lambda: operator.id in d.bridges.bridges.get("callflow-call-c", []), timeout=10)
    assert sum(1 for e in d.events if e == ("originate", "caller", "PJSIP/emergency-test")) > dialled
    assert set(d.bridges.bridges["callflow-call-c"]) == {caller.id, agent.id, operator.id}
    heard = [e[2] for e in d.events if e[0] == "play" and e[1] == "caller"]
    assert "emergency_reassure" not in heard  # never « les secours arrivent » before an operator answered
    assert "emergency_calling" in heard
    caller.leaves()
    await asyncio.wait_for(task, 5)
    assert caller.hangup_reasons == []


async def test_c_never_told_help_is_coming_while_the_line_is_busy():
    d = Desk()
    caller = d.caller()
    caller.plan = {"PJSIP/emergency-test": ["busy"]}
    d.calls["call-c2"] = caller
    await d.recorder.start("call-c2", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-c2", caller_number=None, situation="x", answers={}))
    await until(lambda: sum(1 for e in d.events if e[0] == "originate") >= 3, timeout=5)
    heard = [e[2] for e in d.events if e[0] == "play" and e[1] == "caller"]
    assert heard and set(heard) == {"emergency_calling"}
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_e_the_desk_stopped_during_the_emergency_leaves_caller_agent_and_operator_together():
    """Issue 11 E: SIGTERM / a cancelled task during *9 destroyed the bridge after 15 s."""
    d = Desk()
    caller, agent, operator = d.caller(), d.leg("agent"), d.leg("operator")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/emergency-test": [operator]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*9")
    await until(lambda: operator.id in d.bridges.bridges.get("callflow-call-1", []), timeout=5)
    task.cancel()  # what SIGTERM or a handler error does to the call's task
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.3)
    assert set(d.bridges.bridges["callflow-call-1"]) == {caller.id, agent.id, operator.id}
    assert not any(op == "destroy" for op, _, _ in d.bridges.log)
    assert caller.up and agent.up and operator.up
    assert caller.hangup_reasons == [] and agent.hangup_reasons == [] and operator.hangup_reasons == []
    assert REGISTRY.get("call-1").emergency


async def test_e_the_desk_stopped_with_an_agent_leaves_them_together():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert d.bridges.bridges["callflow-call-1"] == [caller.id, agent.id]
    assert caller.up and agent.up


async def test_c_after_a_restart_the_thirty_seconds_count_from_the_latch_not_from_the_restart():
    """An unanswered emergency taken back by a restarted controller 29.5 s after it latched: a person comes
    within the half second left, not 30 s later (the caller has been waiting all along)."""
    import time

    d = Desk()
    assert d.emergency.config.person_after == 30  # the seed's figure, unchanged here
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/emergency-test": ["no_answer"] * 40, "PJSIP/2001": [agent]}
    d.calls["call-r"] = caller
    call = REGISTRY.open("call-r")
    call.latch_emergency("cas F, before the restart")
    call.emergency_since = time.time() - 29.5
    await d.recorder.start("call-r", number="+33612345678", started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-r", caller_number="+33612345678", situation="reprise",
                                                   answers={}))
    await until(lambda: d.desk.live.get("call-r") is not None and d.desk.live["call-r"].state == "with_agent", timeout=5)
    caller.leaves()
    await asyncio.wait_for(task, 5)
    REGISTRY.forget("call-r")


async def test_c_a_fresh_emergency_still_waits_for_the_operator_first():
    d = Desk()
    caller = d.caller()
    caller.plan = {"PJSIP/emergency-test": ["no_answer"] * 40}
    d.calls["call-f"] = caller
    await d.recorder.start("call-f", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-f", caller_number=None, situation="x", answers={}))
    await until(lambda: sum(1 for e in d.events if e[0] == "originate") >= 2, timeout=5)
    assert d.desk.live.get("call-f") is None  # nobody else yet: the operator is being called
    assert REGISTRY.open("call-f").emergency_since is not None
    caller.leaves()
    await asyncio.wait_for(task, 5)
    REGISTRY.forget("call-f")
