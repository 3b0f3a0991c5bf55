"""Seed 003 « en cas de débordement »: an ordered waiting line, position and wait, the overflow offer by key."""

from __future__ import annotations

import asyncio

from test_agents_fakes import Desk, until

from callflow.agents.overflow import WaitingLine, position_prompts, slot_delay
from callflow.core.agents import Diagnosis
from callflow.core.call import Call


def test_urgent_first_then_arrival():
    line = WaitingLine(clock=lambda: 0.0)
    line.join("a", urgent=False, language=None)
    line.join("b", urgent=False, language="en")
    line.join("c", urgent=True, language=None)
    assert [w.call_id for w in line.ordered()] == ["c", "a", "b"]
    assert line.position("b") == 3
    assert line.first_for(("fr",)) == "c"
    line.leave("c")
    line.leave("a")
    assert line.first_for(("fr",)) is None  # b waits for an English speaker
    assert line.first_for(("fr", "en")) == "b"


def test_estimate_from_the_last_calls():
    line = WaitingLine(clock=lambda: 0.0)
    for call in "abc":
        line.join(call, urgent=False, language=None)
    assert line.estimate("c", agents_online=0) == 3 * 300  # nothing known yet: 5 minutes a call
    line.handled(120)
    line.handled(240)
    assert line.estimate("a", agents_online=2) == 180 and line.estimate("c", agents_online=2) == 360
    assert position_prompts(1, 180) == ["queue_position_1", "queue_wait_short"]
    assert position_prompts(7, 1200) == ["queue_position_many", "queue_wait_long"]


def test_slot_delays():
    assert slot_delay("5min", hour_delay=1800, until_next_opening=lambda: 50000) == 300
    assert slot_delay("hour", hour_delay=1800, until_next_opening=lambda: 50000) == 1800
    assert slot_delay("opening", hour_delay=1800, until_next_opening=lambda: 50000) == 50000
    assert slot_delay("opening", hour_delay=1800, until_next_opening=lambda: None) == 86400


async def _start(d: Desk, caller, call_id: str, *, urgent: bool = False):
    d.calls[call_id] = caller
    await d.recorder.start(call_id, number=caller.caller.number, started_at=0.0, flow="test", language="fr")
    ctx = Call(call_id=call_id).attach(caller)
    task = asyncio.ensure_future(d.desk.hand_to_agent(ctx, Diagnosis(summary="parole", urgent=urgent), "fr"))
    await asyncio.sleep(0)
    return task


async def test_overflow_offer_slot_2_schedules_a_callback_within_the_hour():
    d = Desk(online=set(), slot_hour_delay=1500.0)
    d.desk.messages = object()  # the overflow offer replaces the plain callback offer
    caller = d.caller()
    task = await _start(d, caller, "call-1")
    await until(lambda: ("play", "caller", "overflow_offer") in d.events)
    caller.press("2")
    await until(lambda: ("play", "caller", "callback_slot_hour") in d.events)
    plays = [e[2] for e in d.events if e[0] == "play" and e[1] == "caller"]
    assert plays[:3] == ["agents_hold", "queue_position_1", "queue_wait_short"]
    kind, req = d.handoffs.requests[0]
    assert kind == "callback" and req["delay_seconds"] == 1500.0 and "dans l'heure" in req["reason"]
    assert ("overflow_answer", "2") in d.notes("call-1")
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_no_key_keeps_waiting_and_nothing_is_scheduled():
    d = Desk(online=set())
    d.desk.messages = object()
    caller = d.caller()
    task = await _start(d, caller, "call-1")
    await until(lambda: ("overflow_answer", "timeout") in d.notes("call-1"), timeout=5)
    assert d.handoffs.requests == [] and caller.up and caller.hangup_reasons == []
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_the_urgent_caller_who_arrived_second_gets_the_free_agent_first():
    d = Desk(online=set())
    first, second, agent = d.caller(), d.caller(), d.leg("agent2001")
    first.plan = {"PJSIP/2001": [agent]}
    second.plan = {"PJSIP/2001": [agent]}
    t1 = await _start(d, first, "call-1")
    await until(lambda: d.desk.line.position("call-1") == 1)
    t2 = await _start(d, second, "call-2", urgent=True)
    await until(lambda: d.desk.line.position("call-2") == 1 and d.desk.line.position("call-1") == 2)
    d.presence.online.add("PJSIP/2001")  # the agent's phone comes back
    await until(lambda: d.desk.live["call-2"].state == "with_agent")
    assert [e for e in d.events if e[0] == "originate"][0][1] == second.name
    assert d.desk.live["call-1"].state == "holding"
    for leg in (first, second):
        leg.leaves()
    await asyncio.wait_for(asyncio.gather(t1, t2), 3)
