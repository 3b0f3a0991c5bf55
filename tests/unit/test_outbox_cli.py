"""`callflow outbox list|retry` and `callflow contacts import` as register_cli adds them."""

import argparse
import asyncio

from callflow.handoff import db as handoff_db
from callflow.handoff.contacts import Contacts
from callflow.handoff.outbox import Outbox


def cli(*argv):
    parser = argparse.ArgumentParser(prog="callflow")
    from callflow.handoff.cli import register_cli

    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


async def _failed_message(db):
    conn = await handoff_db.connect(db)
    try:
        outbox = Outbox(conn)
        msg, _ = await outbox.enqueue(call_id="call-1", kind="sms", destination="+33612345678", payload={}, key="k1")
        [claimed] = await outbox.claim_due(1)
        await outbox.mark_failed(claimed, "HTTP 403: Authorization failed")
        return msg.id
    finally:
        await conn.close()


async def _status(db, message_id):
    conn = await handoff_db.connect(db)
    try:
        return (await Outbox(conn).get(message_id)).status
    finally:
        await conn.close()


def test_list_shows_status_per_call_and_retry_requeues(tmp_path, capsys):
    db = str(tmp_path / "callflow.db")
    message_id = asyncio.run(_failed_message(db))
    assert cli("outbox", "list", "--db", db, "--call", "call-1") == 0
    out = capsys.readouterr().out
    assert message_id in out and "failed_permanently" in out and "403" in out
    assert "+33612345678" not in out  # numbers are masked on the terminal
    assert cli("outbox", "retry", message_id, "--db", db) == 0
    assert asyncio.run(_status(db, message_id)) == "queued"
    assert cli("outbox", "retry", message_id, "--db", db) == 1  # no longer failed
    assert cli("outbox", "retry", "no-such-id", "--db", db) == 2


def test_contacts_import(tmp_path, capsys):
    db = str(tmp_path / "callflow.db")
    csv = tmp_path / "c.csv"
    csv.write_text("number,email,name,address\n06 12 34 56 78,marie@example.org,Marie,Paris\n", encoding="utf-8")
    assert cli("contacts", "import", str(csv), "--db", db) == 0

    async def lookup():
        conn = await handoff_db.connect(db)
        try:
            return await Contacts(conn).get("+33612345678")
        finally:
            await conn.close()

    contact = asyncio.run(lookup())
    assert (contact.email, contact.name, contact.address) == ("marie@example.org", "Marie", "Paris")
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,mail\n1,2\n", encoding="utf-8")
    assert cli("contacts", "import", str(bad), "--db", db) == 2


def test_retry_a_failed_callback(tmp_path, capsys):
    from callflow.handoff.callbacks import CallbackScheduler
    from callflow.handoff.config import CallbackConfig

    db = str(tmp_path / "callflow.db")

    async def failed_callback():
        conn = await handoff_db.connect(db)
        try:
            async def busy(number, call_id, target):
                return "busy"

            scheduler = CallbackScheduler(conn, CallbackConfig(max_attempts=1), busy)
            cb, _ = await scheduler.schedule(call_id="call-2", number="+33612345678", due_at=0, reason="r")
            await scheduler.run_once()
            return cb.id, (await scheduler.get(cb.id)).status
        finally:
            await conn.close()

    callback_id, status = asyncio.run(failed_callback())
    assert status == "failed"
    assert cli("outbox", "list", "--db", db, "--call", "call-2") == 0
    assert callback_id in capsys.readouterr().out
    assert cli("outbox", "retry", callback_id, "--db", db) == 0
    assert cli("outbox", "retry", callback_id, "--db", db) == 1
