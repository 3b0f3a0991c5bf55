"""Seed 000 « Appel muet » end to end: real Asterisk, SIPp callers with real RTP audio and RFC 2833 keys.

The callers follow the script's timing: the flow's prompts are real sound
files, so the moments to answer are computed from their lengths and the
flow's default timers (greeting, 3 s listening, audio check, 10 s listening).
A caller who answers a bit early is fine: a key cuts the current prompt and is
kept for the next question.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import caller_audio as audio
import pytest
from callflow.pbx.sipp import Caller, start_sipp

from caller_audio import diagnosis_at, keypad_caller, prompt_seconds

NUMBER = "0612345678"


SEED_EXAMPLE = [("m_entendez_vous", "oui"), ("probleme_technique", "non"), ("difficulte_a_parler", "oui"),
                ("preference", "sms"), ("confirmation_sms", "oui")]


def answers(record: dict) -> list[str]:
    return [a["detail"] for a in record["actions"] if a["kind"] == "answer"]


def actions(record: dict, kind: str) -> list[dict]:
    return [a for a in record["actions"] if a["kind"] == kind]


async def played(controller, asterisk_log, sound: str, timeout: float = 10.0) -> str:
    """A prompt reached the caller: Asterisk played it (ARI playback), or the controller sent it
    as frames on the caller's AudioSocket. Returns the log line."""
    import json
    import time

    deadline = time.monotonic() + timeout
    while True:
        for line in asterisk_log.text().splitlines():
            if f"Playing '{sound}" in line:
                return line
        for event in controller.events():
            if event.get("event") == "prompt on the audiosocket" and str(event.get("sound", "")).startswith(sound):
                return json.dumps(event)
        if time.monotonic() > deadline:
            raise AssertionError(f"{sound!r} was neither played by Asterisk nor sent on the AudioSocket")
        await asyncio.sleep(0.1)


@pytest.fixture(autouse=True)
def media_path(request, monkeypatch) -> str:
    """The media path a test's controller listens through: snoop + externalMedia (the default), or
    AudioSocket for the tests marked `BOTH_PATHS` (issue 15)."""
    path = getattr(request, "param", "snoop")
    monkeypatch.setenv("CALLFLOW_MEDIA_PATH", path)
    return path


#: The tests that also run on the AudioSocket path: the ones where that path has code of its own —
#: a dead line is "no frame for 2 s" there and digital silence arrives as frames; keys arrive as DTMF
#: frames and taps cut prompts played as frames; a speaker leaves the socket for an agent's bridge; a
#: caller in distress leaves it for the emergency question. The others (the seed's example by keys,
#: background noise, the breathing caller never hung up) feed the same CallAudio through either
#: path, so running them twice cost the suite ~270 worker-seconds for no code of their own (issue 10).
BOTH_PATHS = pytest.mark.parametrize("media_path", ["snoop", "audiosocket"], indirect=True)


@pytest.fixture(autouse=True)
def kpis_show_no_premature_hang_up_and_every_call_documented(records_db: Path):
    """After each test of this module, `callflow kpi` over the calls it made: no premature hang-up,
    every call documented. Per test (each test has its own database), so the check holds whichever
    pytest-xdist worker runs which test."""
    yield
    import json
    import subprocess
    import sys

    assert records_db.exists(), "every test of this module runs calls through the controller"
    out = subprocess.run([sys.executable, "-m", "callflow.cli", "kpi", "--db", str(records_db), "--json"],
                         capture_output=True, text=True, check=True).stdout
    kpi = json.loads(out)
    assert kpi["calls"] >= 1, kpi
    assert kpi["premature_hangups"] == 0, kpi["premature_call_ids"]
    if kpi["silent_calls"]:  # a caller who speaks makes no silent call: nothing to document as one
        assert kpi["documented_pct"] == 100.0, kpi["undocumented_call_ids"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("callers")
    first = diagnosis_at() + 3  # during « Je vous entends respirer… »
    tap_groups = [(first + 13 * i, count) for i, count in enumerate((1, 2, 1, 1, 1))]
    return {
        "breathing": audio.write_ulaw(d / "breathing.ulaw", audio.breathing(11, 150)),
        "breathing_taps": audio.write_ulaw(d / "taps.ulaw", audio.with_taps(audio.breathing(12, 150), 13, tap_groups)),
        "silence": audio.write_ulaw(d / "digital-silence.ulaw", audio.digital_silence(90)),
        "noise": audio.write_ulaw(d / "noise.ulaw", audio.street_noise(14, 90)),
        "speech": audio.write_ulaw(d / "speech.ulaw", audio.speech(15, 40)),
        "sobbing": audio.write_ulaw(d / "sobbing.ulaw", audio.sobbing(16, 120)),
    }


@BOTH_PATHS
async def test_dead_line_without_any_rtp_is_hung_up_only_after_the_seeds_wait(controller, asterisk_log):
    caller = Caller()  # answers, then sends nothing at all and waits for our BYE
    run = await start_sipp(caller.xml(caller_number=NUMBER, hang_up=False), name="dead-no-rtp", timeout_s=150)
    assert await run.wait(120) == 0, run.errors()  # the caller got our BYE (and never hung up itself)
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert record["call_type"] == "muet_complet"
    assert record["hung_up_by"] == "system"
    assert record["duration"] >= 30
    prompts = {a["detail"]: a["at"] for a in actions(record, "prompt")}
    # « attend 20–30 secondes au total », speaks 2–3 times, final warning, counts to 10
    assert prompts["audio_check"] < prompts["dead_line_final"]
    assert prompts["dead_line_final"] >= 20
    hangup = actions(record, "hangup")[-1]["at"]
    assert hangup >= prompts["dead_line_final"] + 10
    await played(controller, asterisk_log, "callflow/fr/dead_line_final")


@BOTH_PATHS
async def test_dead_line_of_digital_silence_is_a_dead_line_too(controller, files):
    caller = Caller().audio(files["silence"])
    run = await start_sipp(caller.xml(caller_number=NUMBER, hang_up=False), name="dead-silence", timeout_s=150)
    assert await run.wait(120) == 0, run.errors()
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert record["call_type"] == "muet_complet"
    assert record["hung_up_by"] == "system"
    assert record["duration"] >= 30


async def _seed_example(controller, caller: Caller, name: str) -> dict:
    run = await start_sipp(caller.xml(caller_number=NUMBER), name=name, timeout_s=200)
    assert await run.wait(180) == 0, run.errors()  # the caller hung up itself: never a BYE from us
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert answers(record)[:5] == [f"{q}={a}" for q, a in SEED_EXAMPLE], record["actions"]
    assert record["call_type"] == "respiration"
    assert record["hung_up_by"] == "caller"
    sms = [m for m in controller.sms_sent() if m["to"] == "+33612345678"]
    assert len(sms) == 1, controller.sms_sent()
    assert "Répondez à ce SMS" in sms[0]["text"]
    assert "numi.support" in sms[0]["text"]
    assert any(link["kind"] == "outbox" for link in record["links"]) or actions(record, "handoff")
    assert record["audio"], "the audio timeline is on the record"
    return record


async def test_the_seeds_full_example_answered_with_keys(controller, files):
    caller = keypad_caller(Caller().audio(files["breathing"]), "12111", then=12)
    await _seed_example(controller, caller, "seed-keys")


@BOTH_PATHS
async def test_the_seeds_full_example_answered_with_taps(controller, files):
    first = diagnosis_at() + 3
    caller = Caller().audio(files["breathing_taps"]).pause(first + 13 * 4 + 12)
    record = await _seed_example(controller, caller, "seed-taps")
    assert not [a for a in record["actions"] if a["kind"] == "answer" and "key" in a["detail"]]


async def test_background_noise_gets_cas_a(controller, files, asterisk_log):
    caller = Caller().audio(files["noise"]).pause(diagnosis_at() + 12)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="noise", timeout_s=120)
    assert await run.wait(100) == 0, run.errors()
    await played(controller, asterisk_log, "callflow/fr/cas_a_noise")
    call = await controller.wait_for_event("call in")
    assert (await controller.record(call["call"]))["call_type"] == "bruit_de_fond"


@BOTH_PATHS
async def test_a_caller_who_speaks_reaches_an_agent_phone(controller, phones, files):
    agent = await phones("2001")
    caller = Caller().audio(files["speech"]).pause(25)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="speech", timeout_s=60)
    assert await run.wait(50) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()  # rang, answered, got the BYE
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert record["call_type"] == "parole"
    # the caller talks from the first second: the fork starts on TALK_DETECT and we stop greeting them
    assert "greeting: speech" in [a["detail"] for a in actions(record, "barge_in")], [(a["at"], a["kind"], a["detail"]) for a in record["actions"]]


@BOTH_PATHS
async def test_cas_e_key_1_switches_to_english(controller, files, asterisk_log):
    # 9 while the flow listens after the greeting opens the language menu; 1 = English
    caller = Caller().audio(files["silence"]).pause(prompt_seconds("greeting") + 1).press("9").pause(4).press("1").pause(15)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="english", timeout_s=60)
    assert await run.wait(50) == 0, run.errors()
    await played(controller, asterisk_log, "callflow/fr/q_language")
    await played(controller, asterisk_log, "callflow/en/")
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert record["language"] == "en" or any("en" in a["detail"] for a in actions(record, "language"))


@BOTH_PATHS
async def test_distress_asks_the_emergency_question_first_and_1_never_hangs_up(controller, files, asterisk_log):
    # distress is acted on at the first listening after the sobs start (after the audio check)
    asked = prompt_seconds("greeting") + 3 + prompt_seconds("audio_check") + prompt_seconds("language_hint")
    caller = Caller().audio(files["sobbing"]).pause(asked + prompt_seconds("q_emergency") + 2).press("1").pause(25)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="distress", timeout_s=120)
    assert await run.wait(110) == 0, run.errors()  # no BYE from us, for the whole call
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    line = await played(controller, asterisk_log, "callflow/fr/q_emergency", timeout=1)
    assert record["call_type"] == "urgence", (record["actions"], record["audio"])
    assert record["hung_up_by"] != "system"  # handed to the emergency line; the caller's own BYE ended the call
    assert "urgence_medicale=oui" in answers(record), record["actions"]
    assert actions(record, "emergency"), record["actions"]
    assert actions(record, "hangup") == []
    assert line


async def test_a_breathing_caller_who_never_presses_is_never_hung_up(controller_process, files):
    # the shortest questionnaire the config allows (1 re-prompt, 5 s per question): timers the seed
    # does not fix (« Répéter si besoin », no figure for the answer time); the caller outlasts it and
    # the call goes on with a person, never a BYE from us
    controller = controller_process
    controller.env.update({"CALLFLOW_SILENT_CALL_REPROMPTS": "1", "CALLFLOW_SILENT_CALL_QUESTION_TIMEOUT": "5"})
    controller.start()
    caller = Caller().audio(files["breathing"]).pause(100)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="breathing-only", timeout_s=200)
    assert await run.wait(180) == 0, run.errors()  # the caller's BYE ends it, never ours
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    assert record["hung_up_by"] != "system"  # the caller, or a person after the questionnaire
    assert actions(record, "hangup") == []  # the system never even tried
