"""[Prendre l'appel] on the console rings the supervisor's own phone for that escalation, at once
(issue 13): the queue's take, and the escalation's own task ringing the taker (fakes, shrunk timers)."""

from __future__ import annotations

import asyncio

from test_agents_fakes import Desk, until

from callflow.agents.escalation import LINE, TAKEN, Briefing, SupervisorQueue


async def test_a_take_rings_the_taker_at_once_even_with_the_line_busy():
    q = SupervisorQueue()
    busy = q.new("c1", Briefing(), "conference", "2001")
    assert await q.wait_turn(busy, 1.0) == LINE  # the supervisors' line is taken by another escalation
    esc = q.new("c2", Briefing(client="Marie"), "conference", "2002")
    waiter = asyncio.ensure_future(q.wait_turn(esc, 5.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # line busy: it waits
    taken = await q.take(esc.id, "PJSIP/2101")
    assert taken["taken_by"] == "PJSIP/2101"
    assert await asyncio.wait_for(waiter, 1.0) == TAKEN
    assert q.active is busy and q.taken == [esc] and q.waiting == []
    assert (await q.take(esc.id, "PJSIP/2102"))["taken_by"] == "PJSIP/2101"  # already taken: unchanged
    assert await q.take("esc-999", "PJSIP/2101") is None
    await q.release(esc, "ended")
    assert q.taken == [] and q.find(esc.id).state == "ended"


async def test_nobody_at_the_supervisors_line_the_escalation_waits_in_the_queue_until_a_supervisor_takes_it():
    d = Desk(online={"PJSIP/2001", "PJSIP/2101"})  # the shared line PJSIP/2100 is not registered
    d.desk.escalation_config.supervisor_answer_timeout = 3.0
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2101": [supervisor]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*1")
    await until(lambda: "escalation_supervisor" in d.kinds(), timeout=2)
    await asyncio.sleep(0.3)
    waiting = d.desk.queue.snapshot()["waiting"]
    assert len(waiting) == 1 and not any(e[:2] == ("originate", "caller") and e[2].startswith("PJSIP/21") for e in d.events)
    await d.desk.queue.take(waiting[0]["id"], "PJSIP/2101")
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=3)
    assert ("originate", "caller", "PJSIP/2101") in d.events and ("originate", "caller", "PJSIP/2100") not in d.events
    whisper = [e[2] for e in d.events if e[1] == "supervisor" and e[0] == "play"]
    assert whisper[0] == "whisper_escalation" and whisper[-1] == "whisper_briefing_on_screen"  # the 001 briefing first
    assert sorted(d.bridges.bridges["callflow-call-1"]) == sorted([caller.id, agent.id, supervisor.id])
    snap = d.desk.queue.snapshot()
    assert snap["taken"][0]["state"] == "connected" and snap["active"] is None
    assert "escalation_taken" in d.kinds()
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_not_taken_within_the_wait_the_agent_takes_the_caller_back():
    d = Desk(online={"PJSIP/2001"})
    d.desk.escalation_config.supervisor_answer_timeout = 1.0
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*1")
    await until(lambda: ("play", "caller", "escalation_no_answer") in d.events, timeout=4)
    assert not any(e[:2] == ("originate", "caller") and e[2].startswith("PJSIP/21") for e in d.events)
    assert d.desk.queue.snapshot()["waiting"] == [] and d.desk.queue.history[0].state == "no_answer"
    caller.leaves()
    await asyncio.wait_for(task, 3)
