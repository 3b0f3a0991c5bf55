"""The facade's SMS handoff end to end on the embedded log backend."""

import asyncio
import json
import time

import pytest

from callflow.core.errors import ConfigError
from callflow.core.handoff import Handoffs
from callflow.handoff.config import CallbackConfig, HandoffConfig, OutboxConfig, SmsConfig, SmtpConfig
from callflow.handoff.service import HandoffService


def make_config(tmp_path, **sms):
    return HandoffConfig(
        sms=SmsConfig(log_path=str(tmp_path / "sms-outbox.log"), **sms),
        outbox=OutboxConfig(db_path=str(tmp_path / "callflow.db"), poll_seconds=0.05, backoff_initial_seconds=0.05,
                            backoff_max_seconds=0.2),
    )


@pytest.fixture
async def service(tmp_path):
    svc = HandoffService(make_config(tmp_path))
    await svc.start()
    yield svc
    await svc.stop()


async def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def sms_lines(tmp_path):
    path = tmp_path / "sms-outbox.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_service_implements_the_handoffs_protocol_signatures():
    import inspect

    for name in ("send_sms", "send_email_or_instructions", "schedule_callback", "followup_email"):
        expected = inspect.signature(getattr(Handoffs, name))
        actual = inspect.signature(getattr(HandoffService, name))
        assert list(actual.parameters.items()) == list(expected.parameters.items()), name
        assert inspect.iscoroutinefunction(getattr(HandoffService, name))


async def test_seed_sms_reaches_the_callers_number(service, tmp_path):
    result = await service.send_sms("call-1", "0612345678", agent_name="Jean")
    assert result.accepted and result.message_id

    async def sent():
        return (await service.outbox.get(result.message_id)).status == "sent"

    await wait_for(sent)
    [line] = sms_lines(tmp_path)
    assert line["to"] == "+33612345678" and line["from"] == ""
    assert "C'est Jean de numi." in line["text"] and line["text"].endswith("Jean – numi.support")
    assert line["encoding"] == "ucs2" and len(line["parts"]) == 5
    links = await service.links.list("call-1")
    assert [(link["kind"], link["ref"]) for link in links] == [("sms", result.message_id)]


async def test_asking_twice_in_one_call_sends_once(service, tmp_path):
    a = await service.send_sms("call-1", "+33612345678", agent_name="Jean")
    b = await service.send_sms("call-1", "06 12 34 56 78", agent_name="Jean")
    assert a.message_id == b.message_id
    await wait_for(lambda: _status_is(service, a.message_id, "sent"))
    assert len(sms_lines(tmp_path)) == 1


async def _status_is(service, message_id, status):
    return (await service.outbox.get(message_id)).status == status


@pytest.mark.parametrize(
    "number,reason",
    [(None, "anonymous"), ("anonymous", "anonymous"), ("", "anonymous"), ("0145678901", "landline"),
     ("9" * 64, "invalid_number"), ("{{7*7}}", "invalid_number")],
)
async def test_no_sms_without_a_usable_mobile_number(service, tmp_path, number, reason):
    result = await service.send_sms("call-x", number, agent_name="Jean")
    assert not result.accepted and result.reason == reason and result.message_id is None
    assert await service.outbox.list_for_call("call-x") == []
    await asyncio.sleep(0.1)
    assert sms_lines(tmp_path) == []


async def test_template_characters_in_caller_data_are_sent_verbatim(service, tmp_path):
    result = await service.send_sms("call-t", "0612345678", agent_name="{{ config }}{% raw %}")
    assert result.accepted
    await wait_for(lambda: _status_is(service, result.message_id, "sent"))
    [line] = sms_lines(tmp_path)
    assert "C'est {{ config }}{% raw %} de numi." in line["text"]


async def test_email_choice_without_address_sends_instructions_by_sms(service, tmp_path):
    result = await service.send_email_or_instructions("call-e", "0612345678")
    assert result.accepted
    await wait_for(lambda: _status_is(service, result.message_id, "sent"))
    [line] = sms_lines(tmp_path)
    assert "support@numi.support" in line["text"]


async def test_email_choice_from_landline_without_address_is_refused(service):
    result = await service.send_email_or_instructions("call-e", "0145678901")
    assert not result.accepted and result.reason == "no_email_on_file"


async def test_too_long_message_is_refused_not_truncated(tmp_path):
    svc = HandoffService(make_config(tmp_path, max_parts=2))
    await svc.open()
    try:
        result = await svc.send_sms("call-l", "0612345678", agent_name="Jean")
        assert not result.accepted and result.reason == "message_too_long"
    finally:
        await svc.stop()


@pytest.mark.parametrize(
    "config,key",
    [
        (HandoffConfig(sms=SmsConfig(backend="carrier-pigeon")), "sms.backend"),
        (HandoffConfig(sms=SmsConfig(backend="kannel")), "sms.kannel_url"),
        (HandoffConfig(sms=SmsConfig(backend="kannel", kannel_url="http://k/cgi-bin/sendsms")), "sms.kannel_username"),
        (HandoffConfig(sms=SmsConfig(backend="http", http_url="http://p/send", http_secret="short")), "sms.http_secret"),
        (HandoffConfig(sms=SmsConfig(backend="sip", sip_to_template="{number}")), "sms.sip_to_template"),
        (HandoffConfig(sms=SmsConfig(sender="numi.support")), "sms.sender"),  # 12 > 11 characters
        (HandoffConfig(smtp=SmtpConfig(port=0)), "smtp.port"),
        (HandoffConfig(smtp=SmtpConfig(timezone="Mars/Olympus")), "smtp.timezone"),
        (HandoffConfig(outbox=OutboxConfig(backoff_initial_seconds=10, backoff_max_seconds=1)), "outbox.backoff_max_seconds"),
        (HandoffConfig(callbacks=CallbackConfig(max_attempts=0)), "callbacks.max_attempts"),
    ],
)
def test_config_errors_name_the_key(config, key):
    with pytest.raises(ConfigError) as err:
        config.validate()
    assert err.value.key == key


def test_sip_backend_needs_an_ari_connection(tmp_path):
    svc = HandoffService(HandoffConfig(sms=SmsConfig(backend="sip"), outbox=OutboxConfig(db_path=str(tmp_path / "x.db"))))
    with pytest.raises(ConfigError):
        asyncio.run(svc.open())
