"""Seed 000 through FastAGI: `AGI(agi://…/silent_call)` in a classic dialplan (dialplans/agi.conf).

Same callers as test_silent_call.py (real Asterisk, SIPp with real RTP audio and
RFC 2833 keys, `callflow run` as a real process), but the call enters through the
number "agi", whose dialplan runs the flow over FastAGI instead of Stasis.
"""

from __future__ import annotations

from pathlib import Path

import caller_audio as audio
import pytest
from callflow.pbx.sipp import Caller, start_sipp

from caller_audio import keypad_caller, prompt_seconds
from callflow.agents.emergency import announcement
from phones import emergency_line

NUMBER = "0612345678"
#: The sobbing caller answers cas F's question with 1. When the question comes depends on what the line
#: sounded like (this session's call records: distress heard in the greeting's listening, the question at
#: 7.6 s; or after the audio check began, at 16.8 s; a « tap » first puts « m'entendez-vous » before it), and
#: each asking waits ~15 s (prompt + timers.question_timeout) and is asked twice. A caller pressing once at a
#: fixed time hit one of these windows only by luck (the old key time only ever landed in the second asking's
#: last 5 s: a loaded machine missed it, « attempt 1 » never came). So they press 1 every 10 s from 2 s after
#: the earliest question: one press falls in whichever window comes. A 1 elsewhere derails nothing: distress
#: comes before keys in every listening (flows/session.py), and after the answer it is not read any more.
def emergency_key_at() -> float:
    # A function, not a module constant: a clean clone renders the prompts after collection.
    return prompt_seconds("greeting") + 3 + prompt_seconds("q_emergency") + 2


def emergency_caller(files, *, stay: float) -> Caller:
    """The sobbing caller: 1 at emergency_key_at(), +10 s, +20 s, then on the line `stay` more seconds."""
    return (Caller().audio(files["sobbing"]).pause(emergency_key_at()).press("1").pause(10).press("1").pause(10)
            .press("1").pause(stay))


AGI = "agi"  # the trunk's number that enters through FastAGI
SEED_EXAMPLE = ["m_entendez_vous=oui", "probleme_technique=non", "difficulte_a_parler=oui", "preference=sms",
                "confirmation_sms=oui"]


def actions(record: dict, kind: str) -> list[dict]:
    return [a for a in record["actions"] if a["kind"] == kind]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("agi-callers")
    return {
        "breathing": audio.write_ulaw(d / "breathing.ulaw", audio.breathing(11, 150)),
        "speech": audio.write_ulaw(d / "speech.ulaw", audio.speech(15, 40)),
        "sobbing": audio.write_ulaw(d / "sobbing.ulaw", audio.sobbing(16, 120)),
        "tone": audio.write_ulaw(d / "tone.ulaw", 0.2 * __import__("numpy").sin(
            2 * 3.14159 * 440 * __import__("numpy").arange(8000 * 60) / 8000)),
    }


async def test_dead_line_through_fastagi_is_hung_up_only_after_the_seeds_wait(controller, asterisk_log):
    caller = Caller()  # answers, then sends nothing at all and waits for our BYE
    run = await start_sipp(caller.xml(caller_number=NUMBER, hang_up=False), name="agi-dead", service=AGI, timeout_s=150)
    assert await run.wait(120) == 0, run.errors()
    call = await controller.wait_for_event("call in", via="fastagi")
    record = await controller.record(call["call"])
    assert record["call_type"] == "muet_complet"
    assert record["hung_up_by"] == "system"
    assert record["duration"] >= 30
    prompts = {a["detail"]: a["at"] for a in actions(record, "prompt")}
    assert prompts["audio_check"] < prompts["dead_line_final"]
    assert actions(record, "hangup")[-1]["at"] >= prompts["dead_line_final"] + 10
    line = await asterisk_log.wait_for("Playing 'callflow/fr/dead_line_final")
    assert "escape_digits" in line  # played by STREAM FILE over FastAGI, not by an ARI playback


async def test_the_seeds_full_example_through_fastagi(controller, files):
    caller = keypad_caller(Caller().audio(files["breathing"]), "12111", then=12)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="agi-seed", service=AGI, timeout_s=200)
    assert await run.wait(180) == 0, run.errors()  # the caller hung up itself: never a BYE from us
    call = await controller.wait_for_event("call in", via="fastagi")
    record = await controller.record(call["call"])
    answers = [a["detail"] for a in actions(record, "answer")]
    assert answers[:5] == SEED_EXAMPLE, record["actions"]
    assert record["call_type"] == "respiration"  # the ARI snoop of the AGI channel heard the breathing
    assert record["hung_up_by"] == "caller"
    sms = [m for m in controller.sms_sent() if m["to"] == "+33612345678"]
    assert len(sms) == 1, controller.sms_sent()
    assert record["audio"], "the audio timeline is on the record"


async def test_a_caller_who_speaks_through_fastagi_reaches_an_agent_phone(controller, phones, files):
    agent = await phones("2001")
    caller = Caller().audio(files["speech"]).pause(25)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="agi-speech", service=AGI, timeout_s=60)
    assert await run.wait(50) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()  # rang, answered, got the BYE
    call = await controller.wait_for_event("call in", via="fastagi")
    record = await controller.record(call["call"])
    assert record["call_type"] == "parole"
    barge = [a["detail"] for a in actions(record, "barge_in")]
    assert any(d.endswith(": speech") for d in barge), record["actions"]  # TALK_DETECT → fork → prompt cut
    await controller.wait_for_event("call continues in the dialplan", context="hotline-agents")


async def test_controller_down_the_fastagi_call_reaches_an_agent_within_5_s(pbx, phones, audio_dir, asterisk_log):
    agent = await phones("2001")
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(2)
    run = await start_sipp(caller.xml(answer_within=5.0), name="agi-failsafe", service=AGI)
    assert await run.wait(30) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()
    await asterisk_log.wait_for("callflow FastAGI ended without sending the call on (AGISTATUS=FAILURE)")


async def test_controller_killed_mid_fastagi_call_the_caller_reaches_an_agent(controller, phones, audio_dir, asterisk_log):
    agent = await phones("2001")
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(12)
    run = await start_sipp(caller.xml(answer_within=5.0), name="agi-killed", service=AGI)
    await controller.wait_for_event("call in", via="fastagi", timeout=10)
    controller.kill()  # the socket closes: AGI() returns and the next line sends the caller on
    assert await run.wait(40) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()
    await asterisk_log.wait_for("callflow FastAGI ended without sending the call on")


async def test_distress_through_fastagi_places_the_emergency_line_and_never_hangs_up(controller, files, asterisk_log):
    operator = await emergency_line(controller.emergency_port, talk_audio=str(files["tone"]))
    caller = emergency_caller(files, stay=10)  # leaves ~45 s in: during the operator's briefing, whichever path
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="agi-distress", service=AGI, timeout_s=120)
    assert await run.wait(110) == 0, run.errors()  # no BYE from us, for the whole call
    # The caller leaves ~45 s in, during the operator's briefing (31 s, from ~9.5 s after the answered key:
    # [24, 55] s or [34, 65] s by the path): the operator hears it to its end (the number and the address are
    # for them), then that the caller left, then our BYE. So the bound is the briefing's own length, not a fixed 20 s (a
    # loaded PBX stretched its playback by half in the final run: the BYE came 26 s after the caller left).
    briefing = sum(prompt_seconds(p) for p in announcement(NUMBER, address_known=False, answers={"urgence_medicale": "oui"},
                                                           situation="", by_agent=False))
    assert await operator.wait(briefing + prompt_seconds("emergency_caller_left") + 20) == 0, operator.errors()
    call = await controller.wait_for_event("call in", via="fastagi")
    record = await controller.record(call["call"])
    assert record["call_type"] == "urgence", record["actions"]
    assert "urgence_medicale=oui" in [a["detail"] for a in actions(record, "answer")]
    kinds = [a["kind"] for a in record["actions"]]
    assert "emergency_latched" in kinds and "emergency_dial" in kinds, kinds
    assert actions(record, "hangup") == []
    intro = await asterisk_log.wait_for("Playing 'callflow/fr/emergency_announce_intro", timeout=5)
    assert "PJSIP/emergency-test-" in intro  # the briefing is played to the emergency line, before the bridge
    for digit in "0612345678":
        assert f"Playing 'callflow/fr/em_digit_{digit}" in asterisk_log.text()
    # the caller left before the bridge (the dialplan logs it): the operator is told so, not just hung up on
    if "left before the operator" in asterisk_log.text():
        told = await asterisk_log.wait_for("Playing 'callflow/fr/emergency_caller_left", timeout=5)
        assert "PJSIP/emergency-test-" in told


def bridges_joined(log_text: str) -> dict[str, set[str]]:
    """Asterisk's « Channel X joined '…' basic-bridge <id> » lines: bridge id → the channels that joined it."""
    import re

    found: dict[str, set[str]] = {}
    for name, bridge in re.findall(r"Channel (\S+) joined '[^']*' \S+ <([^>]+)>", log_text):
        found.setdefault(bridge, set()).add(name.rsplit("-", 1)[0])
    return found


async def test_emergency_through_fastagi_unanswered_a_person_takes_the_caller_and_the_line_keeps_being_tried(
        controller_process, phones, files, asterisk_log):
    """Issue 11's rule C on the FastAGI path (dialplans/agi.conf): until an operator answers the caller
    hears « J'appelle les secours… », never « Les secours arrivent »; after 30 s without an operator a
    person takes the caller while the line keeps being tried; the operator who answers then is briefed
    and joins the caller and the person; nothing hangs the caller up."""
    controller_process.env["CALLFLOW_EMERGENCY_RING_TIMEOUT"] = "10"  # attempts every ~13 s (the seed gives no figure)
    controller_process.start()  # waits up to a minute for /health (conftest)
    busy = await emergency_line(controller_process.emergency_port, reject_with=486)  # busy once, then nobody answers
    agent = await phones("2001")
    caller = emergency_caller(files, stay=90)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="agi-unanswered", service=AGI, timeout_s=200)
    await asterisk_log.wait_for("callflow emergency line attempt 1 ", timeout=60)
    assert await busy.wait(15) == 0, busy.errors()
    person = await asterisk_log.wait_for("callflow emergency: no operator within 30 s", timeout=60)
    # the agent's desk phone answers the caller (agents and supervisor ring at once)
    with_agent = await _wait_until(lambda: any({"PJSIP/trunk", "PJSIP/2001"} <= chans
                                               for chans in bridges_joined(asterisk_log.text()).values()), 40)
    assert with_agent, "no agent took the emergency caller after 30 s"
    # the line answers at last; it starts while an attempt rings on its port, whose CANCEL may come first
    # (SIPp then aborts that call: the final3 run's failure), so it takes up to three calls like a real line
    operator = await emergency_line(controller_process.emergency_port, talk_audio=str(files["tone"]), calls=3)
    assert await _wait_until(lambda: any({"PJSIP/trunk", "PJSIP/2001", "PJSIP/emergency-test"} <= chans
                                         for chans in bridges_joined(asterisk_log.text()).values()), 60), \
        "the operator did not join the caller and the agent"
    text = asterisk_log.text()
    # the line was still being tried once the agent had the caller: the operator joined them afterwards
    assert text.index("Channel PJSIP/2001-") < text.index("Channel PJSIP/emergency-test-", text.index("Channel PJSIP/2001-"))
    assert text.count("callflow emergency line attempt ") >= 3 * 2  # « attempt N for … » and its outcome, each time
    assert await run.wait(150) == 0, run.errors()  # the caller hung up itself: never a BYE from us
    operator.kill()
    text = asterisk_log.text()
    assert "Playing 'callflow/fr/emergency_calling" in text
    assert "Playing 'callflow/fr/emergency_reassure" not in text  # never « les secours arrivent » before an operator
    intro = await asterisk_log.wait_for("Playing 'callflow/fr/emergency_announce_intro", timeout=5)
    assert "PJSIP/emergency-test-" in intro  # the operator was briefed before joining
    call = await controller_process.wait_for_event("call in", via="fastagi")
    record = await controller_process.record(call["call"])
    assert actions(record, "hangup") == [] and "emergency_latched" in [a["kind"] for a in record["actions"]]
    assert person  # the person came only after the 30 s without an operator
    agent.run.kill()


async def _wait_until(predicate, timeout: float) -> bool:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.3)
    return predicate()


async def test_closed_line_through_fastagi_takes_a_message_instead_of_ringing_the_agents(
        controller_process, ari, tmp_path, asterisk_log):
    """Seed 003 honoured on the FastAGI path as on the ARI path: the closed line's message, then the
    message desk (Asterisk records over AGI; ARI's stored recordings and `callflow messages` list it)."""
    import json

    from closed_line import cli, close_the_line, urgent_message_caller

    close_the_line(controller_process)
    controller_process.start()  # waits up to a minute for /health (conftest)
    run = await start_sipp(urgent_message_caller(tmp_path).xml(caller_number=NUMBER), name="agi-closed", service=AGI,
                           timeout_s=150)
    assert await run.wait(140) == 0, run.errors()  # the caller hung up itself
    call = (await controller_process.wait_for_event("call in", via="fastagi"))["call"]
    record = await controller_process.record(call)
    details = [(a["kind"], a["detail"]) for a in record["actions"]]
    assert ("prompt", "closed_greeting") in details and ("prompt", "greeting") not in details, details
    assert ("prompt", "to_agent") not in details  # nobody to ring: a message instead
    assert ("message_confirm", "1") in details and ("message_motive", "urgent (1)") in details, details
    line = await asterisk_log.wait_for("Playing 'callflow/fr/closed_greeting")
    assert "escape_digits" in line  # played over FastAGI (STREAM FILE), not by an ARI playback
    tickets = json.loads(cli(controller_process, "messages", "list", "--json").stdout)
    assert len(tickets) == 1, (tickets, details)  # one message left, one ticket
    [ticket] = tickets
    assert ticket["call_id"] == call and ticket["motive"] == "urgent" and ticket["confirmed"] is True
    assert 3 <= ticket["duration"] <= 20, ticket
    assert ticket["callback_id"], ticket  # « rappel à l'ouverture »
    assert ari.get(f"recordings/stored/{ticket['recording']}")["name"] == ticket["recording"]
    assert "hotline-agents" not in controller_process.output()  # never sent to the ring group of a closed line
