"""The desk's state survives a restart: agents' states and pauses, escalations, notifications.

A restart here is what the controller does after one: new objects (pool, queue, desk) on the same
store, `desk_state.attach` before the desk runs. Once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from callflow.agents.config import AgentsConfig
from callflow.agents.escalation import CONNECTED, NO_ANSWER, WAITING, Briefing, SupervisorQueue
from callflow.agents.pool import AgentPool, AgentState
from callflow.store.desk_state import INTERRUPTED, DeskState, attach


class Clock:  # the pool's monotonic clock, which a restart does not keep
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def desk_on(state: DeskState, clock: Clock) -> SimpleNamespace:
    """What the wiring builds: the pool, the durable supervisor queue, the notifications list."""
    config = AgentsConfig(extensions=["2001", "2002", "2003"], wrap_up_seconds=30, aggressive_pause=300)
    return SimpleNamespace(pool=AgentPool(config, clock=clock), queue=state.supervisor_queue(), notifications=[])


async def restarted(store_url: str, clock: Clock, live_call_ids=()) -> tuple[DeskState, SimpleNamespace]:
    state = await DeskState.open(store_url)
    desk = desk_on(state, clock)
    await attach(desk, state, live_call_ids)
    return state, desk


async def test_agents_pauses_escalations_and_notifications_come_back_after_a_restart(store_url):
    clock = Clock(1000.0)
    state, desk = await restarted(store_url, clock)
    pool = desk.pool
    a1, a2, a3 = (pool.get(ext) for ext in ("2001", "2002", "2003"))
    # 2001 takes two calls, the second aggressive: a long wrap-up (seed 004 §4.1)
    for call in ("c-1", "c-2"):
        assert pool.claim(a1, call)
        pool.answered(a1, call)
        clock.now += 60
        pool.call_ended(a1, aggressive=call == "c-2")
        if call == "c-1":
            clock.now += 31  # the ordinary wrap-up is over
    pool.flag_aggressive(a1)
    # 2002 on a pause with a reason; 2003 on a call that will still be live after the restart
    pool.pause(a2, "formation")
    paused_since = a2.since
    assert pool.claim(a3, "c-3")
    pool.answered(a3, "c-3")
    # the supervisor's queue: one escalation answered and over, one still waiting when the controller stops
    done = desk.queue.new("c-1", Briefing.minimal(hotliner="2001", summary="litige"), "conference", "2001")
    assert await desk.queue.wait_turn(done, 1.0)
    done.state, done.answered_at = CONNECTED, time.time()
    await desk.queue.release(done, NO_ANSWER, "fin")
    waiting = desk.queue.new("c-3", Briefing.minimal(hotliner="2003", summary="client agressif", urgent=True),
                             "transfer", "2003")
    desk.notifications.append({"kind": "churn_red", "call_id": "c-2", "detail": "risque élevé", "at": time.time()})
    await state.close()

    # the controller restarts: new objects on the same store; its monotonic clock starts elsewhere
    clock2 = Clock(5.0)
    state2, desk2 = await restarted(store_url, clock2, live_call_ids=["c-3"])
    try:
        b1, b2, b3 = (desk2.pool.get(ext) for ext in ("2001", "2002", "2003"))
        assert b1.state is AgentState.WRAP_UP and b1.calls_taken == 2 and b1.aggressive_calls == 1
        assert 290 <= b1.wrap_up_until - clock2.now <= 300  # the aggressive call's pause goes on, not afresh
        assert (b2.state, b2.pause_reason, b2.since) == (AgentState.PAUSED, "formation", paused_since)
        # on a call when the controller stopped: free again (the desk that would free them is gone), count kept
        assert b3.state is AgentState.AVAILABLE and b3.call_id is None and b3.calls_taken == 1
        shown = {a["extension"]: a for a in desk2.pool.snapshot()}
        assert shown["2002"]["since"] == paused_since and shown["2001"]["calls_taken"] == 2  # what the console shows
        assert [a.extension for a in await desk2.pool.candidates()] == ["2003"]  # not the paused, not in wrap-up

        history = {e.id: e for e in desk2.queue.history}
        assert history[done.id].state == NO_ANSWER and history[done.id].briefing.probleme == "litige"
        assert history[waiting.id].state == INTERRUPTED and history[waiting.id].briefing.urgent
        assert desk2.queue.find(waiting.id) is not None  # the supervisor can still record its outcome
        newer = desk2.queue.new("c-9", Briefing.minimal(hotliner="2001"), "conference", "2001")
        assert newer.id not in history  # numbering goes on after a restart
        assert [n["kind"] for n in desk2.notifications] == ["churn_red"]

        # and it keeps being written through: a resume, a decision, a notification
        desk2.pool.resume(b2)
        history[done.id].decision = {"decision": "approuvee"}
        desk2.notifications.append({"kind": "escalation_missed", "call_id": "c-9", "detail": "", "at": time.time()})
        await state2.flush()
    finally:
        await state2.close()

    state3, desk3 = await restarted(store_url, Clock(1.0), live_call_ids=[])
    try:
        c2 = desk3.pool.get("2002")
        assert c2.state is AgentState.AVAILABLE and c2.pause_reason == ""  # the resume was written through
        assert {e.id: e for e in desk3.queue.history}[done.id].decision == {"decision": "approuvee"}
        assert [n["kind"] for n in desk3.notifications] == ["churn_red", "escalation_missed"]
    finally:
        await state3.close()


async def test_an_agent_being_rung_when_the_controller_stopped_is_free_again(store_url):
    """The offer died with the process: the agent can be rung for the next call."""
    clock = Clock(100.0)
    state, desk = await restarted(store_url, clock)
    agent = desk.pool.get("2001")
    assert desk.pool.claim(agent, "c-1")  # ringing: the offer dies with the process
    await state.close()
    state2, desk2 = await restarted(store_url, Clock(3.0), live_call_ids=["c-1"])
    try:
        assert desk2.pool.get("2001").state is AgentState.AVAILABLE
        assert "2001" in [a.extension for a in await desk2.pool.candidates()]  # rung again for the next call
    finally:
        await state2.close()


def test_the_plain_queue_is_unchanged():
    """Without a store the desk works as before (unit tests, tools)."""
    queue = SupervisorQueue()
    esc = queue.new("c-1", Briefing(), "conference", None)
    assert esc.state == WAITING and esc.id == "esc-1"

