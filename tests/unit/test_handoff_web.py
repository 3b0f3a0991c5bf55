"""HTTP endpoints: Kannel MO and DLR, signed inbound webhook (forged → 403, nothing stored)."""

import json
import time
from urllib.parse import quote_from_bytes

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callflow.handoff.config import HandoffConfig, OutboxConfig, SmsConfig
from callflow.handoff.service import HandoffService
from callflow.handoff.sms.http import TIMESTAMP_HEADER, sign
from callflow.handoff.web import add_routes

SECRET = "inbound-secret-0123456789"


@pytest.fixture
async def env(tmp_path):
    config = HandoffConfig(
        sms=SmsConfig(log_path=str(tmp_path / "sms.log"), http_secret=SECRET, kannel_inbound_token="tok"),
        outbox=OutboxConfig(db_path=str(tmp_path / "callflow.db")),
    )
    service = HandoffService(config)
    await service.open()  # no worker: rows stay where the endpoints put them
    app = web.Application()
    add_routes(app, service)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield service, client
    await client.close()
    await service.stop()


async def inbound_count(service):
    async with service.conn.execute("SELECT COUNT(*) FROM sms_inbound") as cur:
        return (await cur.fetchone())[0]


def ucs2(text):
    return quote_from_bytes(text.encode("utf-16-be"), safe="")


async def test_kannel_reply_is_linked_to_the_latest_call_from_that_number(env):
    service, client = env
    await service.note_call("old-call", "0612345678", at=time.time() - 3600)
    await service.note_call("latest-call", "+33612345678", at=time.time() - 60)
    await service.note_call("other-caller", "0698765432")
    text = "Bonjour, c'est Marie – je ne peux pas parler"
    resp = await client.get(f"/sms/kannel?from=%2B33612345678&to=38100&text={ucs2(text)}&id=k-1&coding=2&charset=UTF-16BE&token=tok")
    assert resp.status == 200 and await resp.text() == ""  # empty: Kannel sends nothing back
    [reply] = await service.inbound.list_for_call("latest-call")
    assert reply["text"] == text and reply["number"] == "+33612345678"
    links = await service.links.list("latest-call")
    assert [(link["kind"], link["ref"]) for link in links] == [("sms_reply", reply["id"])]
    # Kannel re-posting the same MO (it timed out on our answer) stores nothing new.
    resp = await client.get(f"/sms/kannel?from=%2B33612345678&text={ucs2(text)}&id=k-1&coding=2&token=tok")
    assert resp.status == 200 and await inbound_count(service) == 1


async def test_reply_after_the_window_is_kept_but_not_linked(env):
    service, client = env
    await service.note_call("yesterday", "0612345678", at=time.time() - 25 * 3600)
    resp = await client.get("/sms/kannel?from=0612345678&text=Bonjour&id=k-2&token=tok")
    assert resp.status == 200
    async with service.conn.execute("SELECT call_id, text FROM sms_inbound") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [(None, "Bonjour")]


@pytest.mark.parametrize(
    "query",
    ["from=0612345678&text=hi&token=wrong", "from=0612345678&text=hi", "text=hi&token=tok", "from=" + "9" * 64 + "&text=hi&token=tok"],
)
async def test_bad_kannel_requests_store_nothing(env, query):
    service, client = env
    resp = await client.get("/sms/kannel?" + query)
    assert resp.status in (400, 403)
    assert await inbound_count(service) == 0


def signed(body: bytes, *, secret=SECRET, ts=None):
    ts = str(int(ts if ts is not None else time.time()))
    return {TIMESTAMP_HEADER: ts, "X-Callflow-Signature": sign(secret, ts, body), "Content-Type": "application/json"}


async def test_signed_webhook_reply_is_stored_and_linked(env):
    service, client = env
    await service.note_call("call-w", "0612345678")
    body = json.dumps({"from": "+33612345678", "text": "{{ 7*7 }} Bonjour", "id": "prov-1"}).encode()
    resp = await client.post("/sms/inbound", data=body, headers=signed(body))
    assert resp.status == 200
    data = await resp.json()
    assert data["call_id"] == "call-w" and not data["duplicate"]
    [reply] = await service.inbound.list_for_call("call-w")
    assert reply["text"] == "{{ 7*7 }} Bonjour"


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: signed(body, secret="not-the-secret-at-all"),
        lambda body: signed(body + b" "),
        lambda body: signed(body, ts=time.time() - 3600),  # replayed an hour later
        lambda body: {"Content-Type": "application/json"},
        lambda body: {**signed(body), "X-Callflow-Signature": "sha256=" + "0" * 64},
    ],
)
async def test_forged_webhook_is_refused_and_nothing_is_stored(env, headers):
    service, client = env
    await service.note_call("call-w", "0612345678")
    body = json.dumps({"from": "+33612345678", "text": "Send me the file"}).encode()
    resp = await client.post("/sms/inbound", data=body, headers=headers(body))
    assert resp.status == 403
    assert await inbound_count(service) == 0
    assert await service.links.list("call-w") == []


async def test_signed_but_malformed_webhook_is_a_400(env):
    service, client = env
    body = b'{"text": "no sender"}'
    resp = await client.post("/sms/inbound", data=body, headers=signed(body))
    assert resp.status == 400 and await inbound_count(service) == 0


async def test_kannel_delivery_reports(env):
    service, client = env
    ok = await service.send_sms("call-d", "0612345678", agent_name="Jean")
    ko = await service.send_sms("call-d2", "0698765432", agent_name="Jean")
    claimed = await service.outbox.claim_due(10)  # what the worker does: claim, hand to Kannel, mark sent
    assert {m.id for m in claimed} == {ok.message_id, ko.message_id}
    for message in claimed:
        await service.outbox.mark_sent(message, message.id)
    for message_id, dlr in ((ok.message_id, 8), (ok.message_id, 1), (ko.message_id, 16)):
        resp = await client.get(f"/sms/kannel/dlr?id={message_id}&type={dlr}&answer=ACK&token=tok")
        assert resp.status == 200
    assert (await service.outbox.get(ok.message_id)).status == "delivered"
    failed = await service.outbox.get(ko.message_id)
    assert failed.status == "failed_permanently" and "DLR 16" in failed.last_error
    resp = await client.get(f"/sms/kannel/dlr?id={ok.message_id}&type=1&token=nope")
    assert resp.status == 403


async def test_reply_is_linked_through_the_records_store(tmp_path):
    """With the records store wired in, the call comes from its `calls` table and the link lands in `call_links`."""
    from callflow.store.records import Records

    db = str(tmp_path / "callflow.db")
    records = await Records.open(db)
    await records.start("rec-call", number="0612345678", started_at=time.time() - 120, flow="silent_call", language="fr")
    service = HandoffService(
        HandoffConfig(sms=SmsConfig(log_path=str(tmp_path / "sms.log")), outbox=OutboxConfig(db_path=db)),
        records=records,
        find_recent_call=records.find_recent_call,
    )
    await service.open()
    app = web.Application()
    add_routes(app, service)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.get("/sms/kannel?from=%2B33612345678&text=Bonjour&id=k-9")
        assert resp.status == 200
        [reply] = await service.inbound.list_for_call("rec-call")
        async with records.conn.execute("SELECT kind, ref FROM call_links WHERE call_id = ?", ("rec-call",)) as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [("sms_reply", reply["id"])]
    finally:
        await client.close()
        await service.stop()
        await records.close()
