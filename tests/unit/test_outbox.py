"""Durable outbox: idempotency, claims, durable backoff, permanent failures, restarts."""

import asyncio

import pytest

from callflow.handoff import db as handoff_db
from callflow.handoff.config import OutboxConfig
from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError
from callflow.handoff.outbox import DELIVERED, FAILED, QUEUED, SENDING, SENT, Outbox, OutboxWorker


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


CFG = OutboxConfig(max_attempts=3, backoff_initial_seconds=10, backoff_max_seconds=25, sending_lease_seconds=60)


@pytest.fixture
async def conn(store_url):  # once on SQLite, once on PostgreSQL (conftest.store_url)
    c = await handoff_db.connect(store_url)
    yield c
    await c.close()


async def enqueue(outbox, call_id="call-1", key=None):
    return await outbox.enqueue(
        call_id=call_id, kind="sms", destination="+33612345678", payload={"text": "hi"}, key=key or f"{call_id}:sms"
    )


async def test_same_key_writes_one_row(conn):
    outbox = Outbox(conn, CFG)
    first, created1 = await enqueue(outbox)
    second, created2 = await enqueue(outbox)
    assert created1 and not created2
    assert first.id == second.id
    assert [m.id for m in await outbox.list_for_call("call-1")] == [first.id]


async def test_temporary_failure_backs_off_durably_then_succeeds(conn, store_url):
    clock = Clock()
    outbox = Outbox(conn, CFG, clock=clock)
    msg, _ = await enqueue(outbox)
    outcomes = [TemporaryDeliveryError("gateway down"), "ref-1"]

    async def sender(m):
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    worker = OutboxWorker(outbox, {"sms": sender})
    assert await worker.run_once() == 1
    row = await outbox.get(msg.id)
    assert row.status == QUEUED and row.attempts == 1 and "gateway down" in row.last_error
    assert row.next_attempt_at == clock.now + 10  # first backoff step

    # Not due yet: nothing is claimed, even by a fresh worker on a fresh connection (restart).
    conn2 = await handoff_db.connect(store_url)
    try:
        restarted = OutboxWorker(Outbox(conn2, CFG, clock=clock), {"sms": sender})
        assert await restarted.run_once() == 0
        clock.now += 10
        assert await restarted.run_once() == 1
    finally:
        await conn2.close()
    row = await outbox.get(msg.id)
    assert row.status == SENT and row.provider_ref == "ref-1" and row.attempts == 2
    assert [a["outcome"] for a in await outbox.attempts(msg.id)] == ["retry", "sent"]


async def test_backoff_grows_and_is_capped(conn):
    outbox = Outbox(conn, CFG)
    assert [outbox.backoff(n) for n in (1, 2, 3, 4)] == [10, 20, 25, 25]


async def test_attempts_are_bounded(conn):
    clock = Clock()
    outbox = Outbox(conn, CFG, clock=clock)
    msg, _ = await enqueue(outbox)

    async def always_down(m):
        raise TemporaryDeliveryError("down")

    worker = OutboxWorker(outbox, {"sms": always_down})
    for _ in range(CFG.max_attempts):
        assert await worker.run_once() == 1
        clock.now += 100
    row = await outbox.get(msg.id)
    assert row.status == FAILED and row.attempts == CFG.max_attempts
    assert await worker.run_once() == 0


async def test_permanent_failure_is_not_retried_until_an_operator_says_so(conn):
    clock = Clock()
    outbox = Outbox(conn, CFG, clock=clock)
    msg, _ = await enqueue(outbox)
    calls = []

    async def refuse(m):
        calls.append(m.id)
        raise PermanentDeliveryError("HTTP 403: Authorization failed")

    worker = OutboxWorker(outbox, {"sms": refuse})
    await worker.run_once()
    clock.now += 10_000
    await worker.run_once()
    assert calls == [msg.id]
    row = await outbox.get(msg.id)
    assert row.status == FAILED and "403" in row.last_error
    assert await outbox.retry(msg.id)
    assert (await outbox.get(msg.id)).status == QUEUED
    assert not await outbox.retry(msg.id)  # only failed messages can be retried


async def test_two_workers_on_one_file_never_send_the_same_row(store_url):
    conns = [await handoff_db.connect(store_url) for _ in range(2)]
    try:
        outbox = Outbox(conns[0], CFG)
        for i in range(30):
            await enqueue(outbox, call_id=f"call-{i}")
        sent = []

        async def sender(m):
            sent.append(m.id)
            await asyncio.sleep(0)
            return m.id

        workers = [OutboxWorker(Outbox(c, OutboxConfig(batch_size=3)), {"sms": sender}) for c in conns]

        async def drain(w):
            while await w.run_once():
                pass

        await asyncio.gather(*(drain(w) for w in workers))
        assert len(sent) == 30 and len(set(sent)) == 30
    finally:
        for c in conns:
            await c.close()


async def test_row_left_sending_by_a_crash_is_taken_again_after_its_lease(conn):
    clock = Clock()
    outbox = Outbox(conn, CFG, clock=clock)
    msg, _ = await enqueue(outbox)
    claimed = await outbox.claim_due(10)  # a worker claims, then dies before finishing
    assert [m.status for m in claimed] == [SENDING]
    assert await outbox.claim_due(10) == []  # lease still running
    clock.now += CFG.sending_lease_seconds + 1
    again = await outbox.claim_due(10)
    assert [m.id for m in again] == [msg.id] and again[0].attempts == 2
    await outbox.mark_sent(claimed[0], "late")  # the dead worker's stale claim cannot finish the row
    assert (await outbox.get(msg.id)).status == SENDING


async def test_delivery_reports_move_sent_rows_forward_only(conn):
    outbox = Outbox(conn, CFG)
    msg, _ = await enqueue(outbox)
    assert not await outbox.mark_delivered(msg.id, delivered=True)  # still queued: ignored
    [claimed] = await outbox.claim_due(1)
    await outbox.mark_sent(claimed, "ref")
    assert await outbox.mark_delivered(msg.id, delivered=True)
    assert (await outbox.get(msg.id)).status == DELIVERED
    assert not await outbox.mark_delivered(msg.id, delivered=False)


async def test_worker_task_delivers_as_soon_as_notified(conn):
    outbox = Outbox(conn, OutboxConfig(poll_seconds=30))
    sent = asyncio.Event()

    async def sender(m):
        sent.set()
        return "ok"

    worker = OutboxWorker(outbox, {"sms": sender})
    await worker.start()
    try:
        await enqueue(outbox)
        worker.notify()
        await asyncio.wait_for(sent.wait(), 5)
    finally:
        await worker.stop()


async def test_a_stopping_worker_finishes_the_delivery_in_flight_and_hands_the_rest_back(conn):
    """Session 9's full run: a worker stopped (a deploy) while sending left its row 'sending', and the
    next worker could not send it before the lease ran out (2 min). Now the delivery in flight ends
    (sent), the rest of the batch is queued again with its attempt given back, and a new worker sends it
    at once; a delivery that outlasts the grace is cancelled and left to the lease, as after a crash."""
    outbox = Outbox(conn, OutboxConfig(poll_seconds=30, batch_size=5, sending_lease_seconds=120))
    ids = [(await enqueue(outbox, call_id=f"call-{i}"))[0].id for i in range(3)]
    started, go_on = asyncio.Event(), asyncio.Event()

    async def slow_sender(m):
        started.set()
        await go_on.wait()
        return "ref"

    worker = OutboxWorker(outbox, {"sms": slow_sender})
    await worker.start()
    worker.notify()
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # it waits for the delivery in flight
    go_on.set()
    await asyncio.wait_for(stopping, 5)
    rows = [await outbox.get(i) for i in ids]
    assert sorted(r.status for r in rows) == [QUEUED, QUEUED, SENT]
    assert [r.attempts for r in rows if r.status == QUEUED] == [0, 0]
    sent = []

    async def sender(m):
        sent.append(m.id)
        return "ok"

    assert await OutboxWorker(outbox, {"sms": sender}).run_once() == 2  # no lease to wait out
    assert sorted(sent) == sorted(r.id for r in rows if r.status == QUEUED)

    stuck_id = (await enqueue(outbox, call_id="call-stuck"))[0].id
    started.clear()

    async def hung_sender(m):
        started.set()
        await asyncio.Event().wait()

    hung = OutboxWorker(outbox, {"sms": hung_sender})
    await hung.start()
    hung.notify()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(hung.stop(grace=0.1), 5)
    assert (await outbox.get(stuck_id)).status == SENDING  # unknown whether it went: the lease decides
