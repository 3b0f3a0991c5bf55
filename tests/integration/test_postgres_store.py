"""`callflow run` on PostgreSQL (store.database = "postgresql://…"): a real SIPp call, its record and the KPIs.

The same wiring as every other integration test, with the controller's store on a real PostgreSQL
started by the tests (conftest.postgres_server) instead of the SQLite file: the record, the call's
durable state, the SMS promised through the outbox, the desk's agents and `callflow kpi` all go
through the one store interface (callflow/store/db.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import asyncpg
import caller_audio as audio
import pytest
from callflow.pbx.sipp import Caller, start_sipp

from caller_audio import keypad_caller

NUMBER = "0612345678"
SEED_EXAMPLE = ["m_entendez_vous=oui", "probleme_technique=non", "difficulte_a_parler=oui", "preference=sms",
                "confirmation_sms=oui"]


@pytest.fixture
def records_db(postgres_server) -> str:
    """The controller's store for this test: a fresh PostgreSQL database (controller_process reads this)."""
    return postgres_server.new_database()


async def test_the_seeds_example_on_a_postgresql_store(controller, records_db, tmp_path):
    assert controller.env["CALLFLOW_STORE_DATABASE"].startswith("postgresql://")
    breathing = audio.write_ulaw(tmp_path / "breathing.ulaw", audio.breathing(11, 150))
    caller = keypad_caller(Caller().audio(breathing), "12111", then=12)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="pg-seed-keys", timeout_s=200)
    assert await run.wait(180) == 0, run.errors()  # the caller hung up itself: never a BYE from us
    call_id = (await controller.wait_for_event("call in"))["call"]

    record = await controller.record(call_id)  # read back from PostgreSQL
    assert [a["detail"] for a in record["actions"] if a["kind"] == "answer"][:5] == SEED_EXAMPLE, record["actions"]
    assert record["call_type"] == "respiration" and record["hung_up_by"] == "caller"
    assert record["audio"], "the audio timeline is on the record"

    # the SMS went through the outbox on PostgreSQL (taken with FOR UPDATE SKIP LOCKED) to the log gateway
    async def sms_sent() -> list:
        return [m for m in controller.sms_sent() if m["to"] == "+33612345678"]

    for _ in range(100):
        if await sms_sent():
            break
        await asyncio.sleep(0.1)
    assert len(await sms_sent()) == 1, controller.sms_sent()

    db = await asyncpg.connect(records_db)
    try:
        outbox = await db.fetch("SELECT status, kind FROM outbox WHERE call_id = $1", call_id)
        assert [(r["kind"], r["status"]) for r in outbox] == [("sms", "sent")]
        state = await db.fetchrow("SELECT state FROM call_state WHERE call_id = $1", call_id)
        assert state is not None and state["state"] == "ended"  # the call's one state, written through
        agents = {r["extension"] for r in await db.fetch("SELECT extension FROM desk_agents")}
        assert {"2001", "2002", "2003"} <= agents  # the desk's agents are kept in the same store
    finally:
        await db.close()

    out = subprocess.run([sys.executable, "-m", "callflow.cli", "kpi", "--db", records_db, "--json"],
                         capture_output=True, text=True, check=True, env=controller.env).stdout
    kpi = json.loads(out)
    assert kpi["calls"] == 1 and kpi["silent_calls"] == 1, kpi
    assert kpi["premature_hangups"] == 0, kpi["premature_call_ids"]
    assert kpi["documented_pct"] == 100.0, kpi["undocumented_call_ids"]
