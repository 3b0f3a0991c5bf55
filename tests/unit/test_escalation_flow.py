"""Seed 001 escalation on fakes: whisper before the bridge, conference / transfer, no answer → callback, queue order."""

from __future__ import annotations

import asyncio

import pytest
from test_agents_fakes import Desk, until

from callflow.agents.escalation import Briefing, SupervisorQueue, whisper_prompts


async def connected_call(d: Desk, call_id: str = "call-1"):
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller, call_id)
    await until(lambda: d.desk.live[call_id].state == "with_agent")
    return caller, agent, supervisor, task


async def test_escalation_code_conference_whisper_first_then_all_three_in_one_bridge():
    d = Desk()
    caller, agent, supervisor, task = await connected_call(d)
    agent.press("*1")
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=3)
    bridge = d.bridges.bridges["callflow-call-1"]
    assert sorted(bridge) == sorted([caller.id, agent.id, supervisor.id])
    # caller: out of the bridge, « petite attente, 30 secondes maximum », music; then back
    i_wait = d.events.index(("play", "caller", "escalation_wait"))
    assert d.events[i_wait + 1] == ("moh", "caller", "start")
    whisper = [e[2] for e in d.events if e[1] == "supervisor" and e[0] == "play"]
    assert whisper[0] == "whisper_escalation" and whisper[-1] == "whisper_briefing_on_screen"
    add = ("add", "callflow-call-1", (caller.id, supervisor.id))
    assert add in d.bridges.log
    # the whisper ends before the supervisor joins anyone
    assert d.events.index(("play", "supervisor", "whisper_briefing_on_screen")) < d.events.index(("moh", "caller", "stop"), i_wait)
    snap = d.desk.queue.snapshot()
    assert snap["active"]["state"] == "connected" and snap["active"]["mode"] == "conference"
    supervisor.leaves()
    await until(lambda: d.desk.queue.active is None)
    assert d.desk.live["call-1"].state == "with_agent" and caller.up
    caller.leaves()
    await asyncio.wait_for(task, 3)
    kinds = d.kinds()
    assert kinds.index("escalation") < kinds.index("escalation_connected")


async def test_transfer_the_supervisor_takes_the_caller_alone():
    d = Desk()
    caller, agent, supervisor, task = await connected_call(d)
    agent.press("*2")
    await until(lambda: d.desk.live["call-1"].state == "with_supervisor", timeout=3)
    assert d.bridges.bridges["callflow-call-1"] == [caller.id, supervisor.id]
    assert not agent.up and d.pool.get("2001").call_id is None
    assert "whisper_transfer" in [e[2] for e in d.events if e[1] == "supervisor"]
    supervisor.leaves()  # the supervisor's leg ends without the closing code (issue 11 F)
    await until(lambda: d.desk.live["call-1"].state == "holding", timeout=3)  # back in the queue, not hung up
    assert "agent_leg_dropped" in d.kinds()
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert caller.hangup_reasons == []


async def test_no_supervisor_within_the_wait_the_agent_takes_the_caller_back_and_a_callback_is_scheduled():
    d = Desk()
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": ["no_answer"]}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    agent.press("*1")
    await until(lambda: ("play", "caller", "escalation_no_answer") in d.events, timeout=3)
    await until(lambda: d.handoffs.requests, timeout=3)
    kind, req = d.handoffs.requests[0]
    assert kind == "callback" and req["target"] == "supervisor"
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    assert ("add", "callflow-call-1", (caller.id,)) in d.bridges.log
    assert sorted(d.bridges.bridges["callflow-call-1"]) == sorted([caller.id, agent.id])
    assert caller.up and caller.hangup_reasons == []
    assert d.desk.queue.snapshot()["history"][0]["state"] == "no_answer"
    assert d.desk.notifications[0]["kind"] == "escalation_missed"
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_the_seeds_30_s_bound_the_wait_even_when_the_pbx_never_reports_the_ring_or_the_prompt(monkeypatch):
    """Seed 001 « 30 secondes maximum »: the caller goes back to the agent when the wait is over, by our
    own clock — not when Asterisk gets round to reporting the ring's end (a loaded PBX, a lost event)."""
    from callflow.agents import escalation

    monkeypatch.setattr(escalation, "RING_GRACE", 0.2)
    monkeypatch.setattr(escalation, "EXPLANATION_BOUND", 0.5)
    d = Desk()  # supervisor_answer_timeout = 1.0 s
    caller, agent = d.caller(), d.leg("agent")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": ["never"]}
    caller.stuck_prompts = {"escalation_no_answer"}
    task = await d.start(caller)
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    loop = asyncio.get_running_loop()
    agent.press("*1")
    await until(lambda: "escalation" in d.kinds(), timeout=3)
    started = loop.time()
    await until(lambda: "escalation_back_to_agent" in d.kinds(), timeout=5, what="the caller back with the agent")
    assert loop.time() - started <= 1.0 + 0.2 + 0.5 + 0.5
    assert "escalation_explanation_cut" in d.kinds()
    assert sorted(d.bridges.bridges["callflow-call-1"]) == sorted([caller.id, agent.id])
    await until(lambda: d.handoffs.requests, timeout=3)
    assert d.handoffs.requests[0][1]["target"] == "supervisor"
    assert caller.up and caller.hangup_reasons == []
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_supervisor_not_registered_is_not_rung():
    d = Desk(online={"PJSIP/2001"})
    caller, agent, supervisor, task = await connected_call(d)
    loop = asyncio.get_running_loop()
    agent.press("*1")
    await until(lambda: "escalation" in d.kinds(), timeout=3)
    started = loop.time()
    await until(lambda: ("play", "caller", "escalation_no_answer") in d.events, timeout=3)
    # it waited in « ESCALADES EN ATTENTE » for a console take, no longer than the seed's wait (1 s here)
    assert 1.0 - 0.1 <= loop.time() - started <= 1.0 + 0.5
    assert ("originate", "caller", "PJSIP/2100") not in d.events
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_api_briefing_reaches_the_whisper_and_the_queue():
    d = Desk()
    caller, agent, supervisor, task = await connected_call(d)
    briefing = Briefing.from_json({"client": "Marie Dupuis CLT-00245", "probleme": "atelier manqué",
                                   "demande": "remboursement", "raison": "Demande exception/compensation",
                                   "sensibilite": "Frustration 2/5, risque churn modéré", "urgent": True})
    assert d.desk.submit("call-1", "escalate", {"briefing": briefing, "mode": "conference"})
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=3)
    whisper = [e[2] for e in d.events if e[1] == "supervisor"]
    assert "whisper_urgent" in whisper and "whisper_reason_exception" in whisper
    assert "Marie Dupuis" in d.desk.queue.snapshot()["active"]["briefing"]["client"]
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_queue_urgent_first_then_oldest():
    q = SupervisorQueue()
    a = q.new("c1", Briefing(), "conference", "2001")
    b = q.new("c2", Briefing(urgent=True), "conference", "2002")
    c = q.new("c3", Briefing(), "conference", "2003")
    d = q.new("c4", Briefing(urgent=True), "conference", "2001")
    assert [e.call_id for e in q.ordered()] == ["c2", "c4", "c1", "c3"]
    order = []

    async def take(esc):
        assert await q.wait_turn(esc, 2.0)
        order.append(esc.call_id)
        await asyncio.sleep(0.01)
        await q.release(esc, "ended")

    await asyncio.gather(*(take(e) for e in (a, b, c, d)))
    assert order == ["c2", "c4", "c1", "c3"]
    assert [e.call_id for e in q.history] == order


async def test_queue_wait_is_bounded():
    q = SupervisorQueue()
    first = q.new("c1", Briefing(), "conference", None)
    assert await q.wait_turn(first, 1.0)
    late = q.new("c2", Briefing(urgent=True), "conference", None)
    assert not await q.wait_turn(late, 0.2)
    assert q.ordered() == []


def test_whisper_summarises_the_card():
    b = Briefing(raison="Litige client/numi", sensibilite="agressivité forte, risque churn élevé")
    assert whisper_prompts(b, "transfer") == ["whisper_escalation", "whisper_normal", "whisper_reason_dispute",
                                             "whisper_aggressive", "whisper_churn", "whisper_transfer",
                                             "whisper_briefing_on_screen"]


@pytest.mark.parametrize("bad", [{"probleme": 3}, {"options": "x"}, {"urgent": "yes"}, {"nope": ""}, ["x"]])
def test_briefing_refuses_bad_cards(bad):
    with pytest.raises(ValueError):
        Briefing.from_json(bad)


def test_minimal_briefing_from_the_keypad():
    b = Briefing.minimal(hotliner="2001", summary="parole entendue")
    assert b.hotliner == "2001" and "parole entendue" in b.summary()


async def test_whisper_carries_the_cards_own_words_with_runtime_speech(tmp_path):
    from callflow.agents.speech import RuntimeSpeech

    d = Desk()
    d.desk.speech = RuntimeSpeech(tmp_path)
    caller, agent, supervisor, task = await connected_call(d)
    d.desk.submit("call-1", "escalate", {"briefing": Briefing(client="Marie Dupuis", probleme="atelier manqué")})
    await until(lambda: d.desk.live["call-1"].state == "conference", timeout=10)
    whisper = [e[2] for e in d.events if e[1] == "supervisor"]
    dyn = [p for p in whisper if p.startswith("dyn/")]
    assert len(dyn) == 1 and whisper.index(dyn[0]) < whisper.index("whisper_conference")
    caller.leaves()
    await asyncio.wait_for(task, 3)
