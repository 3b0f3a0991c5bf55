"""Callback scheduler: due-time origination, bounded retries on busy, restarts."""

import asyncio

import pytest

from callflow.core.channel import OriginateResult
from callflow.handoff import db as handoff_db
from callflow.handoff.callbacks import CALLING, DONE, FAILED, SCHEDULED, CallbackScheduler
from callflow.handoff.config import CallbackConfig, HandoffConfig, OutboxConfig, SmsConfig
from callflow.handoff.service import HandoffService

CFG = CallbackConfig(max_attempts=3, retry_spacing_seconds=60, calling_lease_seconds=120)


class Clock:
    def __init__(self, now=2_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeOriginate:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    async def __call__(self, number, call_id, target):
        self.calls.append((number, call_id, target))
        return self.outcomes.pop(0) if self.outcomes else "answered"


@pytest.fixture
def db_path(store_url):  # once on SQLite, once on PostgreSQL (conftest.store_url)
    return store_url


async def test_nothing_happens_before_the_due_time(db_path):
    clock = Clock()
    conn = await handoff_db.connect(db_path)
    try:
        originate = FakeOriginate("answered")
        scheduler = CallbackScheduler(conn, CFG, originate, clock=clock)
        cb, created = await scheduler.schedule(call_id="c1", number="+33612345678", due_at=clock.now + 300, reason="cas_d")
        assert created
        assert await scheduler.run_once() == 0 and originate.calls == []
        clock.now += 300
        assert await scheduler.run_once() == 1
        assert originate.calls == [("+33612345678", "c1", "agents")]
        row = await scheduler.get(cb.id)
        assert row.status == DONE and row.attempts == 1
        assert [a["outcome"] for a in await scheduler.attempts(cb.id)] == ["answered"]
    finally:
        await conn.close()


async def test_busy_is_retried_up_to_the_bound_with_spacing(db_path):
    clock = Clock()
    conn = await handoff_db.connect(db_path)
    try:
        originate = FakeOriginate("busy", OriginateResult(False, "no_answer"), "busy", "answered")
        scheduler = CallbackScheduler(conn, CFG, originate, clock=clock)
        cb, _ = await scheduler.schedule(call_id="c1", number="+33612345678", due_at=clock.now, reason="r")
        assert await scheduler.run_once() == 1
        row = await scheduler.get(cb.id)
        assert row.status == SCHEDULED and row.due_at == clock.now + 60 and row.last_outcome == "busy"
        assert await scheduler.run_once() == 0  # spacing respected
        for _ in range(5):
            clock.now += 60
            await scheduler.run_once()
        row = await scheduler.get(cb.id)
        assert row.status == FAILED and row.attempts == 3  # never a 4th call, even though it would answer
        assert len(originate.calls) == 3
        assert [a["outcome"] for a in await scheduler.attempts(cb.id)] == ["busy", "no_answer", "busy"]
    finally:
        await conn.close()


async def test_originate_errors_count_as_attempts(db_path):
    clock = Clock()
    conn = await handoff_db.connect(db_path)

    async def ari_down(number, call_id, target):
        raise ConnectionRefusedError("ARI down")

    try:
        scheduler = CallbackScheduler(conn, CFG, ari_down, clock=clock)
        cb, _ = await scheduler.schedule(call_id="c1", number="+33612345678", due_at=clock.now, reason="r")
        await scheduler.run_once()
        row = await scheduler.get(cb.id)
        assert row.status == SCHEDULED and row.last_outcome == "error"
    finally:
        await conn.close()


async def test_schedule_survives_a_restart_and_a_crash_mid_call(db_path):
    clock = Clock()
    conn = await handoff_db.connect(db_path)
    scheduler = CallbackScheduler(conn, CFG, FakeOriginate(), clock=clock)
    cb, _ = await scheduler.schedule(call_id="c1", number="+33612345678", due_at=clock.now + 10, reason="r")
    again, created = await scheduler.schedule(call_id="c1", number="+33612345678", due_at=clock.now + 10, reason="r")
    assert not created and again.id == cb.id
    await conn.close()  # controller stops before the due time

    clock.now += 10
    conn = await handoff_db.connect(db_path)
    crashed = CallbackScheduler(conn, CFG, None, clock=clock)
    [claimed] = await crashed.claim_due()  # a scheduler claims it, then the process dies mid-call
    assert claimed.status == CALLING
    await conn.close()

    conn = await handoff_db.connect(db_path)
    try:
        originate = FakeOriginate("answered")
        restarted = CallbackScheduler(conn, CFG, originate, clock=clock)
        assert await restarted.run_once() == 0  # the lease of the dead call is still running
        clock.now += CFG.calling_lease_seconds + 1
        assert await restarted.run_once() == 1
        row = await restarted.get(cb.id)
        assert row.status == DONE and row.attempts == 2 and len(originate.calls) == 1
    finally:
        await conn.close()


async def test_service_schedules_and_its_worker_originates(tmp_path):
    called = asyncio.Event()
    calls = []

    async def originate(number, call_id, target):
        calls.append((number, call_id, target))
        called.set()
        return OriginateResult(True, "answered")

    config = HandoffConfig(
        sms=SmsConfig(log_path=str(tmp_path / "sms.log")),
        outbox=OutboxConfig(db_path=str(tmp_path / "callflow.db")),
        callbacks=CallbackConfig(poll_seconds=0.05),
    )
    service = HandoffService(config, originate=originate)
    await service.start()
    try:
        result = await service.schedule_callback("call-9", "01 45 67 89 01", delay_seconds=0, reason="cas_d", target="agents")
        assert result.accepted  # a landline can be called back
        await asyncio.wait_for(called.wait(), 5)
        assert calls == [("+33145678901", "call-9", "agents")]
        refused = await service.schedule_callback("call-9", None, delay_seconds=300, reason="cas_d")
        assert (refused.accepted, refused.reason) == (False, "anonymous")
        bad_delay = await service.schedule_callback("call-9", "0612345678", delay_seconds=-1, reason="x")
        assert (bad_delay.accepted, bad_delay.reason) == (False, "invalid_delay")
        followups = await service.schedule_followups("call-9", "0612345678")
        assert [r.accepted for r in followups] == [True, True]
        rows = await service.callbacks.list_for_call("call-9")
        due = sorted(r.due_at - r.created_at for r in rows if r.reason.startswith("followup"))
        assert due == pytest.approx([86400, 3 * 86400], abs=5)
    finally:
        await service.stop()
