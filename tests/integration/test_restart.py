"""Restart and shutdown take calls back where they were (issue 11): the real `callflow run`, real Asterisk, SIPp.

kill -9 and SIGTERM during the IVR, kill -9 while the emergency line is being dialled. In every
case the caller's own BYE ends the call (any BYE from us fails the SIPp caller's scenario), a
person takes the caller, and the record is closed (« interrupted » for the part the restart cut).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import caller_audio as audio
import pytest
from caller_audio import prompt_seconds
from callflow.pbx.sipp import Caller, start_sipp

NUMBER = "0612345678"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("restart-callers")
    return {
        "breathing": audio.write_ulaw(d / "breathing.ulaw", audio.breathing(21, 150)),
        "sobbing": audio.write_ulaw(d / "sobbing.ulaw", audio.sobbing(26, 150)),
    }


def kinds(record: dict) -> list[str]:
    return [a["kind"] for a in record["actions"]]


async def test_killed_during_the_ivr_the_caller_goes_to_an_agent_urgent_and_the_record_says_interrupted(
        controller, phones, ari, sounds):
    agent = await phones("2001")
    caller = Caller().audio(sounds["breathing"]).pause(60)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="kill-ivr", timeout_s=150)
    call = await controller.wait_for_event("call in", timeout=15)
    await asyncio.sleep(prompt_seconds("greeting") + 4)  # in the IVR: greeting heard, listening
    controller.kill()
    assert call["call"] in ari.app_channels(), "the caller stays parked in the Stasis app"
    controller.start()
    back = await controller.wait_for_event("call taken back after restart", timeout=20, call=call["call"])
    assert back["state"] in ("ivr", "listening", "questionnaire") and back["emergency"] is False
    assert await agent.run.wait(120) == 0, agent.run.errors()  # the desk rang the agent, who got the caller
    assert await run.wait(120) == 0, run.errors()  # no BYE from us
    record = await controller.record(call["call"])
    assert record["hangup_reason"] == "interrupted"
    assert "agent_queue" in kinds(record) and "hangup" not in kinds(record)
    queued = [a["detail"] for a in record["actions"] if a["kind"] == "agent_queue"]
    assert any("urgent" in q and "redémarrage" in q for q in queued), queued


async def test_sigterm_during_the_ivr_hands_the_caller_to_the_agents(controller, phones, ari, sounds):
    agent = await phones("2001")
    caller = Caller().audio(sounds["breathing"]).pause(40)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="sigterm-ivr", timeout_s=120)
    call = await controller.wait_for_event("call in", timeout=15)
    await asyncio.sleep(prompt_seconds("greeting") + 4)
    controller.stop()  # SIGTERM: drain, then exit
    assert controller.proc.returncode is not None
    sent = [e for e in controller.events() if e.get("event") == "call sent to the agents" and e.get("channel") == call["call"]]
    assert sent, controller.output()[-3000:]
    assert await agent.run.wait(90) == 0, agent.run.errors()  # the dialplan's agents took the call
    assert await run.wait(90) == 0, run.errors()  # never a BYE from us
    assert call["call"] not in ari.app_channels()
    record = await controller.record(call["call"])
    assert record["hung_up_by"] != "system" and "interrupted" in (record["hangup_reason"] or "")


async def test_killed_while_the_emergency_line_is_dialled_the_emergency_carries_on_and_a_person_comes(
        controller, phones, ari, sounds, asterisk_log):
    """No emergency line answers (nothing listens on the test line): after the restart the latch holds,
    the caller hears help is being called, and within 30 s a person (agent 2001) takes the caller."""
    agent = await phones("2001")
    asked = prompt_seconds("greeting") + 3 + prompt_seconds("audio_check") + prompt_seconds("language_hint")
    caller = Caller().audio(sounds["sobbing"]).pause(asked + prompt_seconds("q_emergency") + 2).press("1").pause(110)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="kill-emergency", timeout_s=220)
    call = await controller.wait_for_event("call in", timeout=15)
    await asterisk_log.wait_for("Playing 'callflow/fr/emergency_yes", timeout=90)
    for _ in range(300):  # the line is being dialled (the record says so)
        if "emergency_dial" in kinds(await controller.record(call["call"], ended=False)):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the emergency line was never dialled")
    controller.kill()
    controller.start()
    back = await controller.wait_for_event("call taken back after restart", timeout=20, call=call["call"])
    assert back["emergency"] is True  # the latch survived the restart
    assert await agent.run.wait(150) == 0, agent.run.errors()  # a person came while the line was still tried
    assert await run.wait(150) == 0, run.errors()  # never a BYE from us
    log = asterisk_log.text()
    assert "Playing 'callflow/fr/emergency_reassure" not in log  # never « les secours arrivent »
    record = await controller.record(call["call"])
    assert "emergency_no_operator" in kinds(record), kinds(record)
    assert "hangup" not in kinds(record)
