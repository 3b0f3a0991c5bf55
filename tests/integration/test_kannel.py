"""SMS handoff through a real Kannel (bearerbox + smsbox + fake SMSC), MO replies back to our endpoint."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from polling import never, poll
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from kannel_fixture import KannelGateway, free_port, missing_reason  # noqa: E402

from callflow.handoff import templates  # noqa: E402
from callflow.handoff.config import HandoffConfig, OutboxConfig, SmsConfig  # noqa: E402
from callflow.handoff.service import HandoffService  # noqa: E402
from callflow.handoff.web import add_routes  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or ""),
]

SHORT_NUMBER = "38100"  # what the caller's phone shows as our SMS sender / replies to


@pytest.fixture(scope="module")
def http_port():
    return free_port()


@pytest.fixture(scope="module")
def kannel(tmp_path_factory, http_port):
    gateway = KannelGateway(tmp_path_factory.mktemp("kannel"), f"http://127.0.0.1:{http_port}/sms/kannel")
    gateway.start()
    yield gateway
    gateway.stop()


def kannel_config(tmp_path, kannel, http_port) -> HandoffConfig:
    return HandoffConfig(
        sms=SmsConfig(
            backend="kannel",
            sender=SHORT_NUMBER,
            kannel_url=kannel.sendsms_url,
            kannel_username=kannel.username,
            kannel_password=kannel.password,
            kannel_dlr_url=f"http://127.0.0.1:{http_port}/sms/kannel/dlr",
            timeout_seconds=3,
        ),
        outbox=OutboxConfig(
            db_path=str(tmp_path / "callflow.db"), poll_seconds=0.05,
            backoff_initial_seconds=0.1, backoff_max_seconds=0.4, max_attempts=50,
        ),
    )


@pytest.fixture
async def web_server(http_port):
    """Our loopback HTTP server; tests attach the service they run."""
    holder: dict = {}
    app = web.Application()

    class Deps:  # resolves to whichever service the test is running now
        def __getattr__(self, name):
            return getattr(holder["service"], name)

    add_routes(app, Deps())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", http_port)
    await site.start()
    yield holder
    await runner.cleanup()




def received_for(kannel, number):
    return [m for m in kannel.received() if m.receiver == number]


async def test_sms_reaches_the_fake_smsc_and_the_reply_is_linked_to_the_call(tmp_path, kannel, http_port, web_server):
    service = HandoffService(kannel_config(tmp_path, kannel, http_port))
    web_server["service"] = service
    await service.start()
    try:
        number = "+33611111111"
        before = len(received_for(kannel, number))
        result = await service.send_sms("call-k1", "06 11 11 11 11", agent_name="Jean")
        assert result.accepted

        messages = await poll(lambda: received_for(kannel, number)[before:], "the SMS at the fake SMSC")
        [sms] = messages
        assert sms.text == templates.sms_callback_by_text("Jean")
        assert sms.sender == SHORT_NUMBER and sms.parts == 5  # UCS-2 (« – »), 67 units per part

        async def is_delivered():
            # The fake SMSC acknowledges delivery: Kannel calls our dlr-url with type 1.
            return (await service.outbox.get(result.message_id)).status == "delivered"

        await poll(is_delivered, "the delivery report")

        reply = "Bonjour, c'est Marie Dupuis (CLT-00245). J'ai une laryngite, je ne peux pas parler."
        await asyncio.to_thread(kannel.inject_mo, number, SHORT_NUMBER, reply)

        async def linked():
            return [link for link in await service.links.list("call-k1") if link["kind"] == "sms_reply"]

        [link] = await poll(linked, "the reply to be linked to the call")
        [inbound] = await service.inbound.list_for_call("call-k1")
        assert inbound["id"] == link["ref"] and inbound["text"] == reply and inbound["number"] == number
    finally:
        await service.stop()


async def test_gateway_down_then_worker_restarted_delivers_each_message_once(tmp_path, kannel, http_port, web_server):
    numbers = ["+33622222201", "+33622222202", "+33622222203"]
    before = Counter(m.receiver for m in kannel.received())
    config = kannel_config(tmp_path, kannel, http_port)

    await asyncio.to_thread(kannel.stop)
    try:
        first = HandoffService(config)
        web_server["service"] = first
        await first.start()
        ids = []
        for i, number in enumerate(numbers):
            result = await first.send_sms(f"call-down-{i}", number, agent_name="Jean")
            assert result.accepted
            ids.append(result.message_id)

        async def all_failed_once():
            rows = [await first.outbox.get(i) for i in ids]
            return all(r.attempts >= 2 and r.status in ("queued", "sending") for r in rows)

        await poll(all_failed_once, "retries while the gateway is down")
        rows = [await first.outbox.get(i) for i in ids]
        assert all("unreachable" in r.last_error for r in rows if r.status == "queued")
        await first.stop()  # the controller stops (crash or deploy) while the gateway is down
    finally:
        await asyncio.to_thread(kannel.start)

    second = HandoffService(config)  # new worker instance, same DB
    web_server["service"] = second
    await second.start()
    try:
        async def all_sent():
            return all(row.status in ("sent", "delivered") for row in [await second.outbox.get(i) for i in ids])

        await poll(all_sent, "every message sent after recovery")
        await poll(lambda: all(received_for(kannel, n) for n in numbers), "every message at the fake SMSC")
        await asyncio.sleep(0.5)  # let any duplicate show up before counting
        after = Counter(m.receiver for m in kannel.received())
        assert {n: after[n] - before[n] for n in numbers} == {n: 1 for n in numbers}
        for i in ids:
            outcomes = [a["outcome"] for a in await second.outbox.attempts(i)]
            assert outcomes.count("sent") == 1 and outcomes[-1] == "sent"
    finally:
        await second.stop()


async def test_anonymous_caller_gets_no_sms(tmp_path, kannel, http_port, web_server):
    service = HandoffService(kannel_config(tmp_path, kannel, http_port))
    web_server["service"] = service
    await service.start()
    try:
        count = len(kannel.received())
        result = await service.send_sms("call-anon", "anonymous", agent_name="Jean")
        assert (result.accepted, result.reason) == (False, "anonymous")
        assert await service.outbox.list_for_call("call-anon") == []
        # nothing queued, so nothing may reach the gateway during 20 outbox polls (0.05 s each here)
        await never(lambda: kannel.received()[count:], "an anonymous caller's SMS reached the gateway", within=1.0)
    finally:
        await service.stop()
