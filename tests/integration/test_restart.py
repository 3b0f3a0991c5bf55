"""Restart and shutdown take calls back where they were (issue 11): the real `callflow run`, real Asterisk, SIPp.

kill -9 and SIGTERM during the IVR; kill -9 while the emergency line rings and once it is bridged. In every
case the caller's own BYE ends the call (any BYE from us fails the SIPp caller's scenario), a
person takes the caller, and the record is closed (« interrupted » for the part the restart cut).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import caller_audio as audio
import pytest
from caller_audio import prompt_seconds
from phones import DeskPhoneScript, desk_phones, emergency_line, tone  # noqa: F401  (fixtures)
from callflow.pbx.sipp import Caller, start_sipp

NUMBER = "0612345678"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("restart-callers")
    return {
        "breathing": audio.write_ulaw(d / "breathing.ulaw", audio.breathing(21, 150)),
        "speech": audio.write_ulaw(d / "speech.ulaw", audio.speech(15, 40)),
    }


def started(controller_process):
    """`callflow run`, given a minute to come up (the test machines are shared and often loaded)."""
    controller_process.start(wait=False)
    controller_process.wait_healthy(timeout=60)
    return controller_process


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


async def test_killed_while_the_agents_emergency_line_rings_the_line_that_answers_joins_caller_and_agent(
        controller_process, desk_phones, ari, sounds, audio_dir):
    """Issue 11 D on the real PBX: the agent's *9, kill -9 while the emergency line rings, restart: the
    latch is kept, the caller stays with the agent, and the emergency line that answers after the
    restart joins them (it was hung up on main)."""
    controller = started(controller_process)
    talk = str(tone(audio_dir / "tone.ulaw"))
    agent = await desk_phones("2001", DeskPhoneScript(talk_audio=talk).pause(3).press("*9"))
    line = await emergency_line(controller_process.emergency_port, ring_seconds=12, talk_audio=talk)
    caller = Caller().audio(sounds["speech"]).pause(90)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="kill-star9", timeout_s=200)
    call = await controller.wait_for_event("call in", timeout=30)
    for _ in range(900):  # the agent keyed *9: the emergency line is being dialled (the record says so)
        if "emergency_dial" in kinds(await controller.record(call["call"], ended=False)):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the emergency line was never dialled")
    controller.kill()
    controller.start(wait=False)
    controller.wait_healthy(timeout=60)
    bridge = f"callflow-{call['call']}"
    for _ in range(600):
        members = {b["id"]: b for b in ari.bridges()}.get(bridge, {}).get("channels", [])
        if len(members) == 3:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the emergency line never joined the caller and the agent: {ari.bridges()}")
    names = {ari.get(f"channels/{cid}")["name"].split("-")[0] for cid in members}
    assert names == {"PJSIP/trunk", "PJSIP/2001", "PJSIP/emergency"}, names
    assert await run.wait(150) == 0, run.errors()  # the caller's own BYE, never ours
    assert line.proc.returncode is None or await line.wait(5) == 0  # the line was never hung up on


async def test_killed_while_bridged_with_the_agent_and_the_line_everybody_stays_together(
        controller_process, desk_phones, ari, sounds, audio_dir):
    controller = started(controller_process)
    talk = str(tone(audio_dir / "tone.ulaw"))
    agent = await desk_phones("2001", DeskPhoneScript(talk_audio=talk).pause(3).press("*9"))
    line = await emergency_line(controller_process.emergency_port, ring_seconds=1, talk_audio=talk)
    caller = Caller().audio(sounds["speech"]).pause(80)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="kill-bridged", timeout_s=200)
    call = await controller.wait_for_event("call in", timeout=30)
    bridge = f"callflow-{call['call']}"
    for _ in range(1200):
        if len({b["id"]: b for b in ari.bridges()}.get(bridge, {}).get("channels", [])) == 3:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"never bridged with the emergency line: {ari.bridges()}")
    controller.kill()
    controller.start(wait=False)
    controller.wait_healthy(timeout=60)
    await asyncio.sleep(5)  # the restarted controller has looked at everything (reconcile)
    members = {b["id"]: b for b in ari.bridges()}[bridge]["channels"]
    assert call["call"] in members and len(members) == 3, members  # nobody separated by the restart
    assert await run.wait(150) == 0, run.errors()  # the caller's own BYE, never ours
