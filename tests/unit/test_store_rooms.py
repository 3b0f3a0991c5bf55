"""Every room that keeps something, through the one store interface, on SQLite and on PostgreSQL.

The call's durable state (call_state), the callers' messages and the line's override, the
console's users / audit log / SMS conversations / cards, contacts and inbound SMS replies.
The outbox, callbacks, records, audit and KPI have their own files, parametrized the same way
(conftest.store_url).
"""

from __future__ import annotations

import pytest

from callflow.console.store import ConsoleStore, UserError
from callflow.core.call import Call, CallState
from callflow.core.recorder import HungUpBy
from callflow.handoff import db as handoff_db
from callflow.handoff.contacts import Contacts
from callflow.handoff.inbound import CallLinks, InboundSms
from callflow.store.db import Database
from callflow.store.messages import Messages
from callflow.store.records import Records


async def test_call_state_is_written_through_and_read_back_after_a_restart(store_url):
    records = await Records.open(store_url)
    try:
        await records.start("c-1", number="+33612345678", started_at=1_700_000_000.0, flow="silent_call", language="fr")
        call = Call.from_snapshot({"call_id": "c-1", "channel_id": "chan-1", "number": "+33612345678"})
        call.sign_of_life(4.5)
        call.move(CallState.WAITING_AGENT, "speaks")
        call.latch_emergency("cas F")
        call.set_bridge("bridge-c-1")
        call.set_leg("emergency", "chan-2")
        await records.save_call_state(call)
        ended = Call.from_snapshot({"call_id": "c-2", "state": "ended"})
        await records.save_call_state(ended)
    finally:
        await records.close()

    again = await Records.open(store_url)  # a restarted controller
    try:
        [live] = await again.live_call_states()
        rebuilt = Call.from_snapshot(live)
        assert (rebuilt.call_id, rebuilt.channel_id, rebuilt.state) == ("c-1", "chan-1", CallState.EMERGENCY)
        assert rebuilt.emergency and rebuilt.first_sign_of_life == 4.5
        assert rebuilt.bridge_id == "bridge-c-1" and rebuilt.legs == {"emergency": "chan-2"}
        assert await again.close_interrupted("c-1")
        assert not await again.close_interrupted("c-1")  # once
        record = await again.get_call("c-1")
        assert record["hangup_reason"] == "interrupted" and record["hung_up_by"] == HungUpBy.AGENT.value
    finally:
        await again.close()


async def test_messages_and_the_line_override(store_url):
    messages = await Messages.open(store_url, clock=lambda: 1_700_000_000.0)
    try:
        normal = await messages.add(call_id="c-1", number="+33612345678", language="fr", source="closed",
                                    motive="normal", recording="rec-1", duration=12.5, confirmed=True)
        urgent = await messages.add(call_id="c-2", number=None, language="fr", source="overflow",
                                    motive="urgent", recording=None, duration=None, confirmed=False)
        await messages.set_callback(urgent.id, "cb-1")
        assert [t.id for t in await messages.list()] == [urgent.id, normal.id]  # urgent first
        assert (await messages.get(urgent.id)).callback_id == "cb-1"
        assert await messages.done(normal.id, by="claire", note="rappelé")
        assert not await messages.done(normal.id)
        assert [t.id for t in await messages.list()] == [urgent.id]
        assert await messages.override() == "auto"
        await messages.set_override("closed", by="claire")
        await messages.set_override("open", by="claire")
        assert await messages.override() == "open"
        with pytest.raises(ValueError):
            await messages.set_override("maybe")
    finally:
        await messages.close()


async def test_console_users_audit_conversations_and_cards(store_url):
    store = await ConsoleStore.open(store_url)
    try:
        await store.add_user("claire", "a long enough one", "supervisor", full_name="Claire M.")
        with pytest.raises(UserError, match="already exists"):
            await store.add_user("claire", "a long enough one", "supervisor")
        assert (await store.check_password("claire", "a long enough one")).is_supervisor
        assert await store.check_password("claire", "wrong password!") is None
        assert await store.set_disabled("claire")
        assert await store.check_password("claire", "a long enough one") is None
        await store.audit(None, "login_failed", "claire", {"why": "disabled"}, "127.0.0.1")
        [entry] = await store.audit_log()
        assert (entry["action"], entry["target"]) == ("login_failed", "claire")
        reply = {"id": "in-1", "number": "+33612345678", "received_at": 1_700_000_000.0, "text": "merci", "call_id": "c-1"}
        assert await store.sync_inbound([reply]) == 1
        assert await store.sync_inbound([reply]) == 0  # seen already (the partial unique index)
        await store.add_answer("+33612345678", "bonjour", "claire", "out-1")
        conversation = await store.conversation("+33612345678")
        assert conversation["call_id"] == "c-1" and [m["direction"] for m in conversation["messages"]] == ["in", "out"]
        assert await store.close_conversation("+33612345678", "claire", "réglé")
        assert await store.conversations(status="open") == []
        await store.save_card("c-1", "documentation", "claire", {"type": "respiration"})
        await store.save_card("c-1", "documentation", "claire", {"type": "muet_complet"})
        assert (await store.cards("c-1"))["documentation"]["type"] == "muet_complet"
    finally:
        await store.close()


async def test_an_sms_reply_is_linked_to_its_call(store_url):
    conn = await handoff_db.connect(store_url)
    records = await Records.open(store_url)
    try:
        contacts = Contacts(conn)
        await contacts.upsert("06 12 34 56 78", email="jean@example.org", name="Jean")
        assert (await contacts.get("+33612345678")).email == "jean@example.org"
        await contacts.note_call("c-1", "+33612345678", at=1_700_000_000.0)
        inbound = InboundSms(conn, contacts, CallLinks(conn, records), window_seconds=3600)
        first = await inbound.receive("+33612345678", "oui merci", source="kannel", gateway_id="g-1",
                                      received_at=1_700_000_100.0)
        again = await inbound.receive("+33612345678", "oui merci", source="kannel", gateway_id="g-1",
                                      received_at=1_700_000_100.0)
        assert first.call_id == "c-1" and again.duplicate and again.id == first.id
        assert [r["text"] for r in await inbound.list_for_call("c-1")] == ["oui merci"]
        assert [(link["kind"], link["ref"]) for link in await CallLinks(conn).list("c-1")] == [("sms_reply", first.id)]
    finally:
        await records.close()
        await conn.close()


async def test_rooms_can_share_one_open_database(store_url):
    """The controller opens the store once; the rooms borrow it and do not close it."""
    db = await Database.open(store_url)
    try:
        records = await Records.open(db)
        messages = await Messages.open(db)
        await records.close()
        await messages.close()
        await records.conn.execute("SELECT 1")  # still open: the owner closes it
        assert (await db.fetchone("SELECT COUNT(*) FROM calls"))[0] == 0
    finally:
        await db.close()


async def test_a_note_for_a_call_whose_start_is_missing_is_kept(store_url):
    """Same on both engines: no foreign key refuses a note (a controller that stopped before `start`)."""
    records = await Records.open(store_url)
    try:
        await records.note("c-orphan", "callback_answer", "1", at=3.0)
        await records.audio("c-orphan", start=0.0, end=2.0, state="breathing")
        rows = await records.conn.fetchall("SELECT kind FROM call_actions WHERE call_id = ?", ("c-orphan",))
        assert [r["kind"] for r in rows] == ["callback_answer"]
    finally:
        await records.close()


async def test_values_are_stored_as_sqlite_would_on_both_engines(store_url):
    """SQLite keeps whatever it is given; PostgreSQL gets each value converted to its column's type."""
    records = await Records.open(store_url)
    try:
        await records.start("c-5", number="+33612345678", started_at=1_700_000_000, flow="silent_call", language="fr")
        await records.note("c-5", "answer", 1, at=2)  # a number where a text goes, an int where a REAL goes
        [row] = await records.conn.fetchall("SELECT detail, at FROM call_actions WHERE call_id = ?", ("c-5",))
        assert (str(row["detail"]), float(row["at"])) == ("1", 2.0)
    finally:
        await records.close()


def test_no_module_opens_a_database_by_itself():
    """Only callflow/store/db.py talks to a database driver: every room goes through it."""
    import ast
    from pathlib import Path

    import callflow

    drivers = {"sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2"}
    root = Path(callflow.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path == root / "store" / "db.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in drivers]
    assert offenders == []
