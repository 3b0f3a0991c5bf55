"""The agents' local HTTP API on the aiohttp test client."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from test_agents_fakes import Desk, until

from callflow.web.agents_api import add_routes


async def client_for(d: Desk) -> TestClient:
    app = web.Application()
    add_routes(app, d.desk)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_api_drives_a_live_call():
    d = Desk()
    caller, agent, supervisor = d.caller(), d.leg("agent"), d.leg("supervisor")
    caller.plan = {"PJSIP/2001": [agent], "PJSIP/2100": [supervisor]}
    task = await d.start(caller, "api-1")
    await until(lambda: d.desk.live["api-1"].state == "with_agent")
    client = await client_for(d)
    try:
        agents = await (await client.get("/api/agents")).json()
        assert {a["extension"]: a["state"] for a in agents["agents"]}["2001"] == "on_call"
        calls = await (await client.get("/api/calls")).json()
        assert calls["calls"][0]["call_id"] == "api-1" and calls["calls"][0]["agent"] == "2001"
        resp = await client.post("/api/calls/api-1/escalate", json={
            "client": "Marie Dupuis (CLT-00245)", "probleme": "atelier manqué", "demande": "remboursement",
            "raison": "Demande exception/compensation", "avis": "légitime", "sensibilite": "2/5",
            "options": ["crédit", "atelier gratuit"], "urgent": True})
        assert resp.status == 202
        await until(lambda: d.desk.live["api-1"].state == "conference", timeout=3)
        esc = await (await client.get("/api/escalations")).json()
        assert esc["active"]["priority"] == "urgent" and esc["active"]["briefing"]["options"] == ["crédit", "atelier gratuit"]
        resp = await client.post("/api/calls/api-1/flag", json={"churn": "red", "detail": "menace de résilier"})
        assert resp.status == 202
        await until(lambda: d.desk.notifications)
        notes = await (await client.get("/api/notifications")).json()
        assert notes["notifications"][0]["kind"] == "churn_red"
        assert (await client.post("/api/calls/api-1/close")).status == 202
        await asyncio.wait_for(task, 3)
        assert ("play", "caller", "closing_step_3") in d.events
    finally:
        await client.close()
        caller.up = False
        await asyncio.gather(task, return_exceptions=True)


async def test_api_refuses_what_it_cannot_do():
    d = Desk()
    client = await client_for(d)
    try:
        assert (await client.post("/api/calls/nope/escalate", json={})).status == 404
        assert (await client.post("/api/calls/nope/escalate", data="not json")).status == 400
        assert (await client.post("/api/calls/nope/escalate", json={"probleme": 5})).status == 400
        assert (await client.post("/api/calls/nope/escalate", json={"mode": "shout"})).status == 400
        assert (await client.post("/api/calls/nope/flag", json={})).status == 400
        assert (await client.post("/api/agents/9999/pause", json={})).status == 404
        resp = await client.post("/api/agents/2002/pause", json={"reason": "formation"})
        assert (await resp.json())["state"] == "paused"
        resp = await client.post("/api/agents/2002/resume")
        assert (await resp.json())["state"] == "available"
    finally:
        await client.close()
