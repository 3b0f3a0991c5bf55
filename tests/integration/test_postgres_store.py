"""`callflow run` on PostgreSQL (store.database = "postgresql://…"): a real SIPp call, its record and the KPIs.

The same wiring as every other integration test, with the controller's store on a real PostgreSQL
started by the tests (conftest.postgres_server) instead of the SQLite file: the record, the call's
durable state, the desk's agents and `callflow kpi` all go through the one store interface
(callflow/store/db.py). The outbox on PostgreSQL (FOR UPDATE SKIP LOCKED, two controllers) is
proved in tests/unit/test_store_postgres.py against the same kind of server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request

import asyncpg
import caller_audio as audio
import pytest
from callflow.pbx.sipp import Caller, start_sipp


NUMBER = "0612345678"


@pytest.fixture
def records_db(postgres_server) -> str:
    """The controller's store for this test: a fresh PostgreSQL database (controller_process reads this)."""
    return postgres_server.new_database()


async def test_a_dead_line_documented_on_a_postgresql_store(controller, records_db, tmp_path):
    """Seed 000 cas C (a line of digital silence), chosen because it does not hang on the caller's timing:
    the record, the caller's SMS reply linked to it, the call's state, the desk and `callflow kpi`, all
    read back from PostgreSQL."""
    assert controller.env["CALLFLOW_STORE_DATABASE"].startswith("postgresql://")
    silence = audio.write_ulaw(tmp_path / "digital-silence.ulaw", audio.digital_silence(90))
    run = await start_sipp(Caller().audio(silence).xml(caller_number=NUMBER, hang_up=False), name="pg-dead-line",
                           timeout_s=150)
    assert await run.wait(120) == 0, run.errors()
    call_id = (await controller.wait_for_event("call in"))["call"]

    record = await controller.record(call_id)  # read back from PostgreSQL
    assert record["call_type"] == "muet_complet" and record["hung_up_by"] == "system"
    assert record["duration"] >= 30  # the seed's minimum wait before a dead line is hung up
    prompts = {a["detail"]: a["at"] for a in record["actions"] if a["kind"] == "prompt"}
    assert "dead_line_final" in prompts, record["actions"]  # the final warning was spoken first
    assert record["audio"], "the audio timeline is on the record"

    # the caller writes afterwards (« Si client écrit : lier à cet appel »): Kannel's MO into the running
    # controller, stored in sms_inbound and linked to the call, on PostgreSQL
    query = urllib.parse.urlencode({"from": "+33612345678", "text": "c'était moi, merci", "id": "mo-pg-1"})
    with urllib.request.urlopen(f"http://127.0.0.1:{controller.http_port}/sms/kannel?{query}", timeout=10) as resp:
        assert resp.status == 200
    record = await controller.record(call_id)
    assert [link["kind"] for link in record["links"]].count("sms_reply") == 1, record["links"]

    db = await asyncpg.connect(records_db)
    try:
        state = await db.fetchrow("SELECT state, first_sign_of_life FROM call_state WHERE call_id = $1", call_id)
        assert state is not None and state["state"] == "ended" and state["first_sign_of_life"] is None
        reply = await db.fetchrow("SELECT call_id, text FROM sms_inbound WHERE dedup_key LIKE 'kannel:%'")
        assert (reply["call_id"], reply["text"]) == (call_id, "c'était moi, merci")
        agents = {r["extension"] for r in await db.fetch("SELECT extension FROM desk_agents")}
        assert {"2001", "2002", "2003"} <= agents  # the desk's agents are kept in the same store
        types = {r["data_type"] for r in await db.fetch(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'calls' AND column_name = 'started_epoch'")}
        assert types == {"double precision"}  # REAL became DOUBLE PRECISION: the epoch keeps its seconds
    finally:
        await db.close()

    out = subprocess.run([sys.executable, "-m", "callflow.cli", "kpi", "--db", records_db, "--json"],
                         capture_output=True, text=True, check=True, env=controller.env).stdout
    kpi = json.loads(out)
    assert kpi["calls"] == 1 and kpi["silent_calls"] == 1, kpi
    assert kpi["premature_hangups"] == 0, kpi["premature_call_ids"]
    assert kpi["documented_pct"] == 100.0, kpi["undocumented_call_ids"]
