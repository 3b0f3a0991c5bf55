"""Seed 000 cas F on fakes: latch, retries while busy, announcement then bridge, never a hang-up of the caller."""

from __future__ import annotations

import asyncio

import pytest
from test_agents_fakes import Desk, until

from callflow.agents import latch
from callflow.agents.config import EmergencyConfig
from callflow.core.errors import ConfigError
from callflow.agents.emergency import announcement, national


async def test_ivr_cas_f_busy_then_answered_announcement_then_bridge_then_an_agent():
    d = Desk()
    caller, operator, agent = d.caller(), d.leg("operator"), d.leg("agent")
    caller.plan = {"PJSIP/emergency-test": ["busy", "no_answer", operator], "PJSIP/2001": [agent]}
    d.calls["call-f"] = caller
    await d.recorder.start("call-f", number="+33612345678", started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-f", caller_number="+33612345678",
                                                   situation="Appel muet, personne en détresse",
                                                   answers={"urgence_medicale": "oui"}))
    await until(lambda: d.bridges.bridges.get("callflow-call-f") == [caller.id, operator.id], timeout=5)
    assert latch.is_latched("call-f")
    attempts = [e for e in d.events if e == ("originate", "caller", "PJSIP/emergency-test")]
    assert len(attempts) == 3
    assert [e[2] for e in d.events if e[1] == "caller" and e[0] == "play"] == ["emergency_calling"] * 2  # help is being called, not coming (issue 11 C)
    heard = [e[2] for e in d.events if e[1] == "operator"]
    assert heard[:3] == ["emergency_announce_intro", "emergency_situation_silent", "emergency_answer_medical"]
    spoken = [p.removeprefix("em_digit_") for p in heard if p.startswith("em_digit_")]
    assert "".join(spoken) == "0612345678"  # read digit by digit
    assert heard[-1] == "emergency_connecting"
    operator.leaves()  # the emergency line hangs up; the caller is still there: an agent takes over
    await until(lambda: d.desk.live.get("call-f") and d.desk.live["call-f"].state == "with_agent", timeout=3)
    assert d.desk.live["call-f"].diagnosis.urgent
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert caller.hangup_reasons == []
    kinds = [k for _, k, _ in d.recorder.calls["call-f"].actions]
    for step in ("emergency_latched", "emergency_dial", "emergency_result", "emergency_announce", "emergency_bridged",
                 "emergency_line_ended", "emergency_to_agent"):
        assert step in kinds
    times = [at for at, _, _ in d.recorder.calls["call-f"].actions]
    assert times == sorted(times)


async def test_caller_hangs_up_while_the_line_is_busy_the_retries_stop():
    d = Desk()
    caller = d.caller()
    caller.plan = {"PJSIP/emergency-test": ["busy"]}
    d.calls["call-g"] = caller
    await d.recorder.start("call-g", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-g", caller_number=None, situation="x", answers={}))
    await until(lambda: sum(1 for e in d.events if e[0] == "originate") >= 3, timeout=5)
    caller.leaves()
    await asyncio.wait_for(task, 3)
    n = sum(1 for e in d.events if e[0] == "originate")
    await asyncio.sleep(0.3)
    assert sum(1 for e in d.events if e[0] == "originate") == n
    assert "emergency_caller_left" in [k for _, k, _ in d.recorder.calls["call-g"].actions]


async def test_operator_told_when_the_caller_hangs_up_after_the_bridge():
    d = Desk()
    caller, operator = d.caller(), d.leg("operator")
    caller.plan = {"PJSIP/emergency-test": [operator]}
    d.calls["call-h"] = caller
    await d.recorder.start("call-h", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-h", caller_number=None, situation="x", answers={}))
    await until(lambda: "callflow-call-h" in d.bridges.bridges, timeout=3)
    assert "emergency_number_unknown" in [e[2] for e in d.events if e[1] == "operator"]
    caller.leaves()
    await asyncio.wait_for(task, 3)
    assert ("play", "operator", "emergency_caller_left") in d.events and not operator.up


@pytest.mark.parametrize("destination", ["PJSIP/112@trunk", "PJSIP/trunk/sip:15@operator", "Local/17@out", "SIP/18",
                                         "PJSIP/+112@x", "PJSIP/0112@x"])
def test_test_mode_refuses_real_emergency_numbers(destination):
    with pytest.raises(ConfigError) as err:
        EmergencyConfig(test_mode=True, destination=destination).validate()
    assert err.value.key == "emergency.destination"


def test_test_line_and_production_mode():
    EmergencyConfig().validate()
    EmergencyConfig(test_mode=False, destination="PJSIP/15@samu-trunk").validate()
    with pytest.raises(ConfigError):
        EmergencyConfig(retry_spacing=10, retry_spacing_max=5).validate()


async def test_a_refused_destination_is_recorded_and_never_dialled():
    d = Desk()
    d.emergency.config = EmergencyConfig.__new__(EmergencyConfig)
    d.emergency.config.__dict__.update(EmergencyConfig().__dict__, destination="PJSIP/112@trunk")
    caller = d.caller()
    caller.plan = {"PJSIP/2001": [d.leg("agent")]}
    d.calls["call-r"] = caller
    await d.recorder.start("call-r", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-r", caller_number=None, situation="x", answers={}))
    # never left alone: a person takes the caller at once (issue 11 C), the refusal is recorded
    await until(lambda: d.desk.live.get("call-r") is not None and d.desk.live["call-r"].state == "with_agent", timeout=5)
    caller.leaves()
    with pytest.raises(ConfigError):
        await asyncio.wait_for(task, 5)
    assert not [e for e in d.events if e[0] == "originate" and e[2] == "PJSIP/112@trunk"]
    assert "emergency_refused" in [k for _, k, _ in d.recorder.calls["call-r"].actions]


def test_numbers_read_the_national_way():
    assert national("+33 6 12 34 56 78") == "0612345678"
    assert national("0033612345678") == "0612345678"
    assert national(None) == ""
    prompts = announcement("+41791234567", address_known=True, answers={}, situation="", by_agent=True)
    assert prompts[1] == "emergency_situation_agent" and "em_digit_plus" in prompts
    assert "emergency_address_on_file" in prompts


async def test_address_on_file_is_read_with_runtime_speech(tmp_path):
    from callflow.agents.speech import RuntimeSpeech

    d = Desk()
    caller, operator = d.caller(), d.leg("operator")
    caller.plan = {"PJSIP/emergency-test": [operator]}
    d.calls["call-a"] = caller
    d.emergency.speech = RuntimeSpeech(tmp_path)

    async def address_for(number):
        return "12 rue des Lilas, Lyon"

    d.emergency.address_for = address_for
    await d.recorder.start("call-a", number=None, started_at=0, flow="test", language="fr")
    task = asyncio.ensure_future(d.emergency.start("call-a", caller_number="0612345678", situation="x", answers={}))
    await until(lambda: "callflow-call-a" in d.bridges.bridges, timeout=10)
    heard = [e[2] for e in d.events if e[1] == "operator"]
    spoken = [p for p in heard if p.startswith("dyn/")]
    assert len(spoken) == 1 and "emergency_address_on_file" not in heard
    assert (tmp_path / "fr" / f"{spoken[0]}.ulaw").stat().st_size > 8000  # a real rendered sound
    caller.leaves()
    await asyncio.wait_for(task, 5)
