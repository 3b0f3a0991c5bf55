"""Issue 11: the desk stopped from outside (SIGTERM, a handler error) at any step keeps people together.

The fault campaign's handler_error × escalation_whisper sent the caller (waiting on music outside
the bridge) to the ring group while the agent and the supervisor stayed in the call's bridge.
"""

from __future__ import annotations

import asyncio

from test_agents_fakes import Desk, until


async def test_the_desk_stopped_during_the_whisper_keeps_caller_agent_and_supervisor_together():
    d = Desk()
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    supervisor.prompt_seconds = 5.0  # the whisper is still playing when the stop comes
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*1")
    await until(lambda: ("play", "supervisor", "whisper_escalation") in d.events, timeout=3)
    assert caller.id not in d.bridges.bridges["callflow-call-1"]  # the caller waits on music meanwhile
    task.cancel()  # what SIGTERM or a handler error does to the call's task
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(d.bridges.bridges["callflow-call-1"]) == sorted([caller.id, agent.id, supervisor.id])
    assert not any(op == "destroy" for op, _, _ in d.bridges.log)
    assert caller.up and agent.up and supervisor.up
    assert caller.hangup_reasons == [] and agent.hangup_reasons == [] and supervisor.hangup_reasons == []
    assert ("moh", "caller", "stop") in d.events
    assert "escalation_interrupted" in d.kinds()


async def test_the_desk_stopped_while_the_supervisor_rings_puts_the_caller_back_with_the_agent():
    d = Desk()
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    caller.ring_seconds = 5.0  # the supervisor's phone is still ringing when the stop comes
    agent.press("*1")
    await until(lambda: "escalation_ringing" in d.kinds(), timeout=3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(d.bridges.bridges["callflow-call-1"]) == sorted([caller.id, agent.id])
    assert caller.up and agent.up and caller.hangup_reasons == []
