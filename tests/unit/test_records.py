"""Call records in SQLite: the seed's documentation card, written as the call goes."""

from __future__ import annotations

import argparse
import csv
import io
import re
import sqlite3

import pytest

from callflow.core.channel import AudioState as S
from callflow.core.recorder import CallType, Cause, HungUpBy, MemoryRecorder
from callflow.store.cli import register_cli
from callflow.store.records import Records
from callflow.store.schema import SCHEMA, statements
from callflow.telephony.fake import SEED_EPOCH, CallerScript, FakeCall, Sound, press


@pytest.fixture
async def records(store_url):  # once on SQLite, once on PostgreSQL (conftest.store_url)
    store = await Records.open(store_url)
    yield store
    await store.close()


async def write_call(store, call_id="c-1", number="+33612345678"):
    await store.start(call_id, number=number, started_at=SEED_EPOCH, flow="silent_call", language="fr")
    await store.note(call_id, "prompt", "greeting", at=0.0)
    await store.audio(call_id, start=0.5, end=30.0, state="silence")
    await store.set_type(call_id, CallType.MUET_COMPLET)
    await store.set_cause(call_id, Cause.TECHNIQUE)
    await store.note(call_id, "hangup", "ligne morte", at=45.0)
    await store.ended(call_id, at=45.0, hung_up_by=HungUpBy.SYSTEM, reason="ligne morte")


async def test_the_documentation_card_fields(records):
    await write_call(records)
    c = await records.get_call("c-1")
    assert c["started_at"] == "2025-12-19T13:45:00+00:00"  # 14:45 Paris, the seed's card
    assert c["number"] == "+33612345678"  # full in the record
    assert c["duration"] == 45.0
    assert (c["call_type"], c["cause"]) == ("muet_complet", "technique")
    assert (c["hung_up_by"], c["hangup_reason"]) == ("system", "ligne morte")
    assert [(a["kind"], a["detail"]) for a in c["actions"]] == [("prompt", "greeting"), ("hangup", "ligne morte")]
    assert c["audio"][0]["state"] == "silence"


async def test_a_crash_mid_call_still_leaves_the_record(tmp_path):
    path = tmp_path / "crash.db"
    store = await Records.open(path)
    await store.start("c-9", number=None, started_at=SEED_EPOCH, flow="silent_call", language="fr")
    await store.note("c-9", "prompt", "greeting", at=0.0)
    await store.set_type("c-9", CallType.RESPIRATION)
    # no ended(), no close(): the process dies. Another process reads the file.
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT call_type, duration FROM calls WHERE call_id = 'c-9'").fetchone()
        actions = db.execute("SELECT kind, detail FROM call_actions WHERE call_id = 'c-9'").fetchall()
    assert row == ("respiration", None)
    assert actions == [("prompt", "greeting")]
    await store.close()
    # a new writer continues the numbering instead of failing on the primary key
    again = await Records.open(path)
    await again.note("c-9", "error", "restarted", at=5.0)
    assert [a["seq"] for a in (await again.get_call("c-9"))["actions"]] == [1, 2]
    await again.close()


async def test_add_link_for_the_outbox_is_idempotent(records):
    await write_call(records)
    await records.add_link("c-1", "sms_reply", "in-42", SEED_EPOCH + 120)
    await records.add_link("c-1", "sms_reply", "in-42", SEED_EPOCH + 130)
    await records.add_link("c-1", "ticket", "T-1", "2025-12-19T14:00:00+00:00")
    links = (await records.get_call("c-1"))["links"]
    assert [(link["kind"], link["ref"]) for link in links] == [("sms_reply", "in-42"), ("ticket", "T-1")]
    assert links[0]["at"] == "2025-12-19T13:47:00+00:00"


async def test_find_recent_call_for_linking_a_reply(records):
    await write_call(records)
    assert await records.find_recent_call("+33612345678", SEED_EPOCH - 60) == "c-1"
    assert await records.find_recent_call("+33612345678", SEED_EPOCH + 60) is None


async def test_list_between_dates(records):
    await write_call(records, "c-1")
    await records.start("c-2", number=None, started_at=SEED_EPOCH + 86400, flow="silent_call", language="fr")
    assert [c["call_id"] for c in await records.list_calls(since="2025-12-20")] == ["c-2"]
    assert [c["call_id"] for c in await records.list_calls(until="2025-12-20")] == ["c-1"]


async def test_csv_export_one_line_per_call(records):
    await write_call(records)
    out = io.StringIO()
    assert await records.export_csv(out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["type"] == "Appel muet complet" and rows[0]["cause_probable"] == "Technique"
    assert rows[0]["numero"] == "+33612345678" and rows[0]["duree_s"] == "45.0"


async def test_a_whole_flow_written_to_sqlite(records):
    replies = {"q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
               "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_sms_received": [press("1")]}
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(12, S.BREATHING)], replies=replies, hangs_up_at=120)
    fake = FakeCall(script, call_id="seed-10")
    fake.deps.recorder = records
    await fake.run()
    c = await records.get_call("seed-10")
    assert (c["call_type"], c["cause"], c["hung_up_by"]) == ("respiration", "handicap", "caller")
    kinds = [a["kind"] for a in c["actions"]]
    assert kinds.count("answer") == 6 and "handoff" in kinds
    assert [s["state"] for s in c["audio"]] == ["silence", "breathing"]
    assert [(link["kind"], link["ref"]) for link in c["links"]] == [("outbox", "msg-1")]
    assert c["links"][0]["at"] > c["started_at"]


async def test_number_is_masked_in_logs(records, caplog):
    caplog.set_level("INFO")
    await write_call(records)
    assert "+33612345678" not in caplog.text and "0612345678" not in caplog.text
    assert "33*******78" in caplog.text


def test_schema_is_portable_sql():
    sql = SCHEMA.upper()
    for forbidden in ("AUTOINCREMENT", "DATETIME", "BOOLEAN", "BLOB", "WITHOUT ROWID", "STRICT", "SERIAL"):
        assert forbidden not in sql
    columns = re.findall(r"^\s+([a-z_]+)\s+([A-Z]+)\b", SCHEMA, re.M)
    assert len(columns) >= 20
    assert {t for _, t in columns} <= {"TEXT", "INTEGER", "REAL"}
    assert len(statements()) == 7  # 4 record tables + call_state, 2 indexes
    assert not re.search(r"\bEND\b\s+REAL", sql)  # reserved in PostgreSQL


async def test_memory_recorder_keeps_the_same_card():
    recorder = MemoryRecorder()
    await write_call(recorder)
    c = recorder.calls["c-1"]
    assert (c.call_type, c.cause, c.duration, c.hung_up_by) == (CallType.MUET_COMPLET, Cause.TECHNIQUE, 45.0, HungUpBy.SYSTEM)
    assert c.kinds("hangup") == ["ligne morte"]


# -- the CLI ---------------------------------------------------------------------------------
def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def db_file(tmp_path):
    import asyncio

    path = tmp_path / "cli.db"

    async def fill():
        store = await Records.open(path)
        await write_call(store)
        await store.close()

    asyncio.run(fill())
    return str(path)


def test_cli_list_masks_numbers(db_file, capsys):
    assert run_cli("records", "list", "--db", db_file) == 0
    out = capsys.readouterr().out
    assert "c-1" in out and "33*******78" in out and "+33612345678" not in out


def test_cli_show_prints_the_card(db_file, capsys):
    assert run_cli("records", "show", "c-1", "--db", db_file) == 0
    out = capsys.readouterr().out
    assert "TYPE           : Appel muet complet" in out and "ligne morte" in out
    assert run_cli("records", "show", "nope", "--db", db_file) == 1


def test_cli_export_csv(db_file, tmp_path):
    target = tmp_path / "out.csv"
    assert run_cli("records", "export", "--csv", "--out", str(target), "--db", db_file) == 0
    assert "Appel muet complet" in target.read_text()


def test_cli_kpi(db_file, capsys):
    assert run_cli("kpi", "--db", db_file, "--since", "2025-12-01", "--json") == 0
    assert '"documented_pct": 100.0' in capsys.readouterr().out


def test_cli_db_defaults_to_the_controllers_database():
    from callflow.config import StoreConfig
    from callflow.paths import DEFAULT_DB

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["kpi"]).db == DEFAULT_DB == StoreConfig().database
    assert parser.parse_args(["records", "list"]).db == DEFAULT_DB


async def test_many_calls_at_once_each_get_a_complete_record(records):
    import asyncio

    fakes = []
    for i in range(20):
        fake = FakeCall(CallerScript(hangs_up_at=10 + i), call_id=f"p-{i}")
        fake.deps.recorder = records
        fakes.append(fake)
    await asyncio.gather(*(f.run() for f in fakes))
    calls = await records.calls_with_details()
    assert len(calls) == 20
    for c in calls:
        assert c["duration"] is not None and c["call_type"] and c["cause"]
        assert [a["seq"] for a in c["actions"]] == list(range(1, len(c["actions"]) + 1))
