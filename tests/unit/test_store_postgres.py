"""The store on PostgreSQL: the dialect layer, and queues taken with FOR UPDATE SKIP LOCKED.

Against a real PostgreSQL started by the tests (conftest.postgres_server: Debian's binaries,
`initdb` in a temporary folder). Two controllers are two event loops in two threads, each
with its own connection pool: they really run side by side on the server.
"""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from callflow.config import load
from callflow.core.errors import ConfigError
from callflow.handoff import db as handoff_db
from callflow.handoff.callbacks import CALLING, SCHEDULED, CallbackScheduler
from callflow.handoff.config import CallbackConfig, OutboxConfig
from callflow.handoff.outbox import QUEUED, SENDING, SENT, Outbox, OutboxWorker
from callflow.store.db import Database, StoreError, mask_url, parse_target, postgres_ddl, to_numbered


# -- the dialect layer ---------------------------------------------------------------------------
def test_placeholders_are_numbered_outside_quotes_and_comments():
    sql = "SELECT '?', \"a?\" FROM t WHERE a = ? AND b = 'it''s ?' -- why?\n AND c IN (?, ?)"
    assert to_numbered(sql) == "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b = 'it''s ?' -- why?\n AND c IN ($2, $3)"


def test_schemas_get_double_precision_and_lose_pragmas():
    assert postgres_ddl("CREATE TABLE t (at REAL NOT NULL, real_name TEXT)") == \
        "CREATE TABLE t (at DOUBLE PRECISION NOT NULL, real_name TEXT)"
    assert postgres_ddl("PRAGMA journal_mode = WAL") is None


def test_targets_are_a_file_or_a_postgresql_url():
    assert parse_target("/var/lib/callflow/callflow.db") == ("sqlite", "/var/lib/callflow/callflow.db")
    assert parse_target("sqlite:///var/lib/callflow/callflow.db") == ("sqlite", "/var/lib/callflow/callflow.db")
    assert parse_target("postgresql://callflow@db.example/callflow")[0] == "postgresql"
    assert parse_target("postgresql://callflow@/callflow?host=/run/postgresql")[0] == "postgresql"
    for bad in ("mysql://x@h/db", "postgresql://callflow@db.example/", ""):
        with pytest.raises(StoreError, match="store.database"):
            parse_target(bad)
    assert mask_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"


def test_bad_store_setting_names_the_key_and_hides_the_password():
    with pytest.raises(ConfigError) as err:
        load(env={"CALLFLOW_STORE_DATABASE": "mysql://u:s3cret@h/db", "CALLFLOW_ARI_USER": "u",
                  "CALLFLOW_ARI_PASSWORD": "p"})
    assert "store.database" in str(err.value) and "postgresql://" in str(err.value)
    assert "s3cret" not in str(err.value)


async def test_a_wrong_server_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        await Database.open(f"postgresql://nobody@/none?host={tmp_path}&port=1")


# -- queues: two controllers never take one job twice -------------------------------------------------
def _controller(url: str, sent: list, lock: threading.Lock, errors: list) -> None:
    """One controller: its own event loop, its own pool, draining the outbox in small batches."""

    async def run() -> None:
        conn = await handoff_db.connect(url)
        try:
            async def sender(message):
                with lock:
                    sent.append(message.id)
                await asyncio.sleep(0.001)  # a gateway takes a moment: the other controller runs meanwhile
                return f"ref-{message.id}"

            worker = OutboxWorker(Outbox(conn, OutboxConfig(batch_size=4)), {"sms": sender})
            while await worker.run_once():
                pass
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


async def test_two_controllers_never_send_one_message_twice(postgres_server):
    url = postgres_server.new_database()
    conn = await handoff_db.connect(url)
    try:
        outbox = Outbox(conn)
        for i in range(120):
            await outbox.enqueue(call_id=f"call-{i}", kind="sms", destination="+33612345678",
                                 payload={"text": "bonjour"}, key=f"call-{i}:sms")
        sent: list[str] = []
        lock, errors = threading.Lock(), []
        threads = [threading.Thread(target=_controller, args=(url, sent, lock, errors)) for _ in range(2)]
        await asyncio.to_thread(lambda: ([t.start() for t in threads], [t.join(120) for t in threads]))
        assert not errors, errors
        assert len(sent) == 120 and len(set(sent)) == 120  # every message once, none twice
        statuses = {m.status for m in await outbox.list(limit=500)}
        assert statuses == {SENT}
    finally:
        await conn.close()


async def test_a_message_another_controller_is_taking_is_skipped_not_waited_for(postgres_server):
    url = postgres_server.new_database()
    conn = await handoff_db.connect(url)
    other = await asyncpg.connect(url)  # the other controller, in the middle of its take
    try:
        outbox = Outbox(conn)
        for i in range(6):
            await outbox.enqueue(call_id=f"c{i}", kind="sms", destination="+33612345678", payload={}, key=f"k{i}")
        async with other.transaction():
            locked = {r["id"] for r in await other.fetch(
                "SELECT id FROM outbox ORDER BY next_attempt_at LIMIT 2 FOR UPDATE")}
            # without SKIP LOCKED this take would wait for the other transaction to end
            taken = await asyncio.wait_for(outbox.claim_due(10), 5)
            assert len(taken) == 4 and not locked & {m.id for m in taken}
        rest = await outbox.claim_due(10)  # the other controller let go without taking them
        assert {m.id for m in rest} == locked and {m.status for m in rest} == {SENDING}
    finally:
        await other.close()
        await conn.close()


async def test_a_callback_another_controller_is_taking_is_skipped(postgres_server):
    url = postgres_server.new_database()
    conn = await handoff_db.connect(url)
    other = await asyncpg.connect(url)
    try:
        scheduler = CallbackScheduler(conn, CallbackConfig())
        for i in range(4):
            await scheduler.schedule(call_id=f"c{i}", number="+33612345678", due_at=0.0, reason="cas_d")
        async with other.transaction():
            [locked] = [r["id"] for r in await other.fetch("SELECT id FROM callbacks LIMIT 1 FOR UPDATE")]
            taken = await asyncio.wait_for(scheduler.claim_due(10), 5)
            assert len(taken) == 3 and locked not in {c.id for c in taken}
            assert {c.status for c in taken} == {CALLING}
        assert (await scheduler.get(locked)).status == SCHEDULED
    finally:
        await other.close()
        await conn.close()


async def test_sqlite_takes_are_exclusive_too(tmp_path):
    """SQLite's equivalent: one UPDATE … RETURNING under the file's write lock."""
    path = str(tmp_path / "callflow.db")
    conns = [await handoff_db.connect(path) for _ in range(2)]
    try:
        outbox = Outbox(conns[0])
        for i in range(10):
            await outbox.enqueue(call_id=f"c{i}", kind="sms", destination="+33612345678", payload={}, key=f"k{i}")
        a, b = await asyncio.gather(Outbox(conns[0]).claim_due(10), Outbox(conns[1]).claim_due(10))
        ids = [m.id for m in a + b]
        assert len(ids) == 10 and len(set(ids)) == 10
        assert {m.status for m in await outbox.list(status=QUEUED)} == set()
    finally:
        for c in conns:
            await c.close()
