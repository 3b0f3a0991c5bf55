"""SMS backends: request shape, and temporary vs permanent failures."""

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from callflow.handoff.config import SmsConfig
from callflow.handoff.errors import PermanentDeliveryError, TemporaryDeliveryError
from callflow.handoff.sms import build_backend
from callflow.handoff.sms.base import SmsMessage
from callflow.handoff.sms.http import HttpSmsBackend, sign, verify
from callflow.handoff.sms.kannel import KannelSmsBackend
from callflow.handoff.sms.log import LogSmsBackend
from callflow.handoff.sms.sip import SipSmsBackend

MSG = SmsMessage("0123456789abcdef0123456789abcdef", "+33612345678", "Bonjour – numi", "38100")
SECRET = "s3cret-s3cret-s3cret"


async def serve(handler):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_log_backend_appends_one_json_line_per_sms(tmp_path):
    path = tmp_path / "var" / "sms-outbox.log"
    backend = LogSmsBackend(str(path))
    assert await backend.send(MSG) == MSG.message_id
    await backend.send(MSG)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["to"] == "+33612345678" and lines[0]["text"] == "Bonjour – numi"
    assert lines[0]["encoding"] == "ucs2" and lines[0]["parts"] == [{"udh": "", "text": "Bonjour – numi"}]


def test_kannel_request_carries_coding_and_our_id_in_the_dlr_url():
    cfg = SmsConfig(backend="kannel", kannel_url="http://127.0.0.1:13013/cgi-bin/sendsms", kannel_username="u",
                    kannel_password="p", kannel_dlr_url="http://127.0.0.1:8090/sms/kannel/dlr")
    params = KannelSmsBackend(cfg).params(MSG)
    assert params["coding"] == "2" and params["charset"] == "UTF-8"
    assert params["to"] == "+33612345678" and params["from"] == "38100"
    assert "from" not in KannelSmsBackend(cfg).params(SmsMessage("ab", "+33612345678", "x", ""))  # gateway default
    assert params["dlr-url"] == f"http://127.0.0.1:8090/sms/kannel/dlr?id={MSG.message_id}&type=%d&answer=%A"
    assert params["dlr-mask"] == "27"
    assert KannelSmsBackend(cfg).params(SmsMessage("ab", "+33612345678", "plain", "x"))["coding"] == "0"


@pytest.mark.parametrize(
    "status,body,error",
    [
        (202, "0: Accepted for delivery", None),
        (202, "3: Queued for later delivery", None),
        (503, "Temporal failure, try again later.", TemporaryDeliveryError),
        (403, "Authorization failed for sendsms", PermanentDeliveryError),
        (400, "Missing receiver number", PermanentDeliveryError),
    ],
)
async def test_kannel_answers_are_classified(status, body, error):
    seen = {}

    async def handler(request):
        seen.update(request.query)
        return web.Response(status=status, text=body)

    server = await serve(handler)
    cfg = SmsConfig(backend="kannel", kannel_url=str(server.make_url("/cgi-bin/sendsms")), kannel_username="u")
    backend = KannelSmsBackend(cfg)
    try:
        if error:
            with pytest.raises(error):
                await backend.send(MSG)
        else:
            assert await backend.send(MSG) == MSG.message_id
        assert seen["text"] == "Bonjour – numi"
    finally:
        await backend.close()
        await server.close()


async def test_gateway_down_is_temporary():
    cfg = SmsConfig(backend="kannel", kannel_url="http://127.0.0.1:9/cgi-bin/sendsms", kannel_username="u", timeout_seconds=2)
    backend = KannelSmsBackend(cfg)
    try:
        with pytest.raises(TemporaryDeliveryError):
            await backend.send(MSG)
    finally:
        await backend.close()


async def test_http_backend_signs_its_body():
    received = {}

    async def handler(request):
        received["body"] = await request.read()
        received["headers"] = dict(request.headers)
        return web.json_response({"id": "prov-42"}, status=201)

    server = await serve(handler)
    cfg = SmsConfig(backend="http", http_url=str(server.make_url("/send")), http_secret=SECRET)
    backend = HttpSmsBackend(cfg)
    try:
        assert await backend.send(MSG) == "prov-42"
    finally:
        await backend.close()
        await server.close()
    headers, body = received["headers"], received["body"]
    assert json.loads(body)["to"] == "+33612345678"
    assert headers["Idempotency-Key"] == MSG.message_id
    ts = headers["X-Callflow-Timestamp"]
    assert headers["X-Callflow-Signature"] == sign(SECRET, ts, body)
    assert verify(SECRET, ts, body, headers["X-Callflow-Signature"], max_skew=300)
    assert not verify(SECRET, ts, body + b" ", headers["X-Callflow-Signature"], max_skew=300)
    assert not verify(SECRET, str(float(ts) - 3600), body, sign(SECRET, str(float(ts) - 3600), body), max_skew=300)


@pytest.mark.parametrize("status,error", [(500, TemporaryDeliveryError), (429, TemporaryDeliveryError), (422, PermanentDeliveryError)])
async def test_http_backend_failures(status, error):
    async def handler(request):
        return web.Response(status=status, text="nope")

    server = await serve(handler)
    backend = HttpSmsBackend(SmsConfig(backend="http", http_url=str(server.make_url("/send")), http_secret=SECRET))
    try:
        with pytest.raises(error):
            await backend.send(MSG)
    finally:
        await backend.close()
        await server.close()


async def test_sip_backend_posts_send_message_through_ari():
    calls = []

    async def ari_post(path, params):
        calls.append((path, params))
        return 202

    cfg = SmsConfig(backend="sip", sip_to_template="pjsip:{number}@sms-trunk", sip_from="sip:numi@pbx")
    backend = build_backend(cfg, ari_post=ari_post)
    assert isinstance(backend, SipSmsBackend)
    await backend.send(MSG)
    assert calls == [("/endpoints/sendMessage", {"to": "pjsip:+33612345678@sms-trunk", "from": "sip:numi@pbx", "body": "Bonjour – numi"})]


async def test_sip_backend_failures():
    class AriError(Exception):
        def __init__(self, status):
            self.status = status

    async def unknown_endpoint(path, params):
        raise AriError(404)

    async def ari_down(path, params):
        raise ConnectionRefusedError()

    async def busy(path, params):
        return 503

    cfg = SmsConfig(backend="sip")
    with pytest.raises(PermanentDeliveryError):
        await SipSmsBackend(cfg, unknown_endpoint).send(MSG)
    with pytest.raises(TemporaryDeliveryError):
        await SipSmsBackend(cfg, ari_down).send(MSG)
    with pytest.raises(TemporaryDeliveryError):
        await SipSmsBackend(cfg, busy).send(MSG)


def test_default_backend_is_the_log_file():
    assert isinstance(build_backend(SmsConfig()), LogSmsBackend)
