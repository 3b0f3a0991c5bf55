"""A callback answered rings an agent through the desk with the original call's card (issue 13):
the callback leg's flow on the desk's fakes, and the agent's console while their phone rings."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))

from test_agents_fakes import Desk, until  # noqa: E402

from callflow.agents.callback_leg import (  # noqa: E402
    CallbackOf,
    args_for,
    callback_to_agent,
    diagnosis_for,
    original_card,
    whisper_for,
)
from callflow.core.call import Call  # noqa: E402
from callflow.store.records import Records  # noqa: E402

ORIGINAL = {"call_id": "orig-1", "number": "+33612345678", "started_at": "2026-11-29T10:00:00+00:00", "language": "fr",
            "call_type": "silent", "cause": "",
            "actions": [{"kind": "answer", "detail": "hear=oui"}, {"kind": "answer", "detail": "preference=aidant"},
                        {"kind": "handoff", "detail": "caregiver +33698765432"}]}


def test_the_callback_route_carries_whose_call_to_whom_and_the_card_reads_the_original_record():
    of = CallbackOf.from_args(args_for("orig-1", "caregiver", "+33698765432"))
    assert of == CallbackOf("orig-1", "caregiver", "+33698765432") and of.who == "proche / aidant"
    assert CallbackOf.from_args(["inbound"]) is None and CallbackOf.from_args([]) is None
    assert whisper_for(args_for("orig-1", "caregiver", "x")) == ["agent_whisper_callback_caregiver"]
    assert whisper_for(args_for("orig-1", "agents", "x")) == ["agent_whisper_callback"]
    assert whisper_for(["inbound"]) == []
    card = original_card(ORIGINAL)
    assert card["answers"] == {"hear": "oui", "preference": "aidant"} and card["diagnosis"] == "caregiver +33698765432"
    assert original_card(None) == {"found": False}
    diagnosis = diagnosis_for(of, card)
    assert diagnosis.summary.startswith("rappel proche / aidant (caregiver)") and diagnosis.answers["preference"] == "aidant"


async def test_an_answered_callback_leg_greets_the_person_rings_an_agent_who_hears_the_whisper_first(tmp_path):
    records = await Records.open(str(tmp_path / "r.db"))
    try:
        await records.start("orig-1", number="+33612345678", started_at=time.time() - 300, flow="silent_call",
                            language="fr")
        await records.note("orig-1", "answer", "preference=aidant", at=40.0)
        d = Desk()
        callee, agent = d.caller(number="0100000000"), d.leg("agent")
        callee.plan = {"PJSIP/2001": [agent]}
        ctx = Call(call_id="cb-1").attach(callee, args=args_for("orig-1", "caregiver", "+33698765432"))
        task = asyncio.ensure_future(callback_to_agent(ctx, agents=d.desk, records=records))
        await until(lambda: "cb-1" in d.desk.live and d.desk.live["cb-1"].state == "with_agent", timeout=3)
        plays = [(who, what) for kind, who, what in d.events if kind == "play"]
        assert plays[0] == ("caller", "callback_hello_caregiver")  # who is calling and why, first
        assert [what for who, what in plays if who == "agent"][0] == "agent_whisper_callback_caregiver"
        # the whisper ends before the person is taken off hold and bridged with the agent (desk._join)
        i_whisper = d.events.index(("play", "agent", "agent_whisper_callback_caregiver"))
        assert ("moh", "caller", "stop") in d.events[i_whisper:]
        assert sorted(d.bridges.bridges["callflow-cb-1"]) == sorted([callee.id, agent.id])
        live = d.desk.live["cb-1"]
        assert live.diagnosis.answers == {"preference": "aidant"} and "proche" in live.diagnosis.summary
        assert callee.caller.number == "+33698765432"  # the person called back, not our own caller id
        callee.leaves()
        await asyncio.wait_for(task, 3)
        leg = await records.get_call("cb-1")
        assert leg["flow"] == "callback" and leg["number"] == "+33698765432" and leg["ended_at"]
        assert {(link["kind"], link["ref"]) for link in leg["links"]} == {("callback_of", "orig-1")}
        original = await records.get_call("orig-1")
        assert ("callback_leg", "cb-1") in {(link["kind"], link["ref"]) for link in original["links"]}
    finally:
        await records.close()


async def test_the_agents_console_shows_the_original_calls_card_while_their_phone_rings(tmp_path):
    from test_console import Browser  # noqa: F401  (the logged-in test client)
    from aiohttp.test_utils import TestClient, TestServer
    from console_fakes import build

    app, console, desk, controller, stack = await build(tmp_path)
    try:
        await console.store.add_user("ag1", "agent one pass", "agent", extension="2001")
        await console.records.start("orig-1", number="+33612345678", started_at=time.time() - 300, flow="silent_call",
                                    language="fr")
        await console.records.note("orig-1", "answer", "preference=aidant", at=40.0)
        await console.records.note("orig-1", "handoff", "caregiver +33698765432", at=60.0)
        desk.add_call("cb-1", state="holding", summary="rappel proche / aidant (caregiver)")
        desk.live["cb-1"] = SimpleNamespace(agent=None, call=SimpleNamespace(args=args_for("orig-1", "caregiver", "+33698765432")))
        assert desk.pool.claim(desk.pool.get("2001"), "cb-1")  # 2001's phone rings for the callback leg
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            b = Browser(client)
            await b.login("ag1", "agent one pass")
            await console.hub.tick()
            resp, text = await b.get("/console/agent")
            assert "Votre poste sonne" in text and "rappel proche / aidant" in text
            assert 'data-state="ringing"' in text and 'data-origin="orig-1"' in text
            assert "preference = aidant" in text and "caregiver +33698765432" in text and "+33612345678" in text
            assert "Clôture ferme" not in text  # nothing to act on before answering
            # live: the section pushed to the agent over SSE says the same
            user = await console.store.check_password("ag1", "agent one pass")
            pushed = await console.section_html(user, "calls", console.hub.current["calls"])
            assert pushed["section"] == "mycall" and 'data-origin="orig-1"' in pushed["html"]
            # another agent's phone is not ringing: they see nothing of it
            await console.store.add_user("ag2", "agent two pass", "agent", extension="2002")
            other = await console.store.check_password("ag2", "agent two pass")
            pushed = await console.section_html(other, "calls", console.hub.current["calls"])
            assert "orig-1" not in pushed["html"]
        finally:
            await client.close()
    finally:
        await stack.aclose()


def test_a_callback_leg_is_not_an_inbound_caller_in_the_queue_kpis():
    from callflow.console import kpi

    def call(cid, flow):
        return {"call_id": cid, "flow": flow, "started_at": "2026-11-29T10:00:00+00:00", "duration": 100.0,
                "ended_at": "2026-11-29T10:01:40+00:00", "hung_up_by": "caller", "call_type": None,
                "actions": [{"kind": "agent_queue", "at": 5.0, "detail": "fr"},
                            {"kind": "agent_connected", "at": 50.0, "detail": "2001"}], "audio": [], "links": []}

    def centre(calls):
        return {k["id"]: k["value"] for k in kpi.compute(calls)["centre"]}

    inbound = centre([call("a", "silent_call")])
    both = centre([call("a", "silent_call"), dict(call("cb-1", "callback"), actions=[
        {"kind": "agent_queue", "at": 5.0, "detail": "fr"}])])  # a callback leg nobody answered
    assert both == inbound and inbound["service_level"] == 0.0
