"""Issue 16, seed 003 on the real PBX: a closed-line caller leaves a message (Asterisk records it) and it is listed."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import numpy as np

import pytest

import caller_audio as audio
from callflow.pbx.sipp import Caller, start_sipp
from cues import PromptWatch, cue_caller
from closed_line import NUMBER, cli, close_the_line, urgent_message_caller


@pytest.fixture
def closed(controller_process):
    close_the_line(controller_process)
    controller_process.start()
    return controller_process


async def test_closed_line_message_confirmed_urgent_listed_played_and_called_back_at_opening(closed, ari, tmp_path, asterisk_log):
    caller = urgent_message_caller(tmp_path)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="closed-message", timeout_s=150)
    assert await run.wait(140) == 0, run.errors()  # the caller hung up itself
    call = (await closed.wait_for_event("call in"))["call"]
    record = await closed.record(call)
    kinds = [a["kind"] for a in record["actions"]]
    details = [(a["kind"], a["detail"]) for a in record["actions"]]
    assert ("prompt", "closed_greeting") in details and ("prompt", "greeting") not in details, details
    assert ("prompt", "to_agent") not in details  # nobody to pass the caller to: a message instead
    assert ("message_confirm", "1") in details and ("message_motive", "urgent (1)") in details, details
    assert kinds.index("message_recorded") < kinds.index("ticket") < kinds.index("callback")
    await asterisk_log.wait_for("Playing 'callflow/fr/closed_greeting")

    listed = cli(closed, "messages", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [ticket] = json.loads(listed.stdout)
    assert ticket["call_id"] == call and ticket["motive"] == "urgent" and ticket["confirmed"] is True
    assert ticket["number"] == "+33612345678" or ticket["number"] == NUMBER
    assert 3 <= ticket["duration"] <= 20, ticket
    assert ticket["callback_id"], ticket  # « rappel à l'ouverture »
    assert {"kind": "ticket", "ref": ticket["id"]}.items() <= next(l for l in record["links"] if l["kind"] == "ticket").items()
    # Asterisk keeps the recording; `messages play` fetches it over ARI
    assert ari.get(f"recordings/stored/{ticket['recording']}")["name"] == ticket["recording"]
    out = tmp_path / "m.wav"
    played = cli(closed, "messages", "play", ticket["id"], "--out", str(out), "--no-speaker")
    assert played.returncode == 0, played.stderr
    assert out.read_bytes()[:4] == b"RIFF" and out.stat().st_size > 8000 * 2 * 3  # ≥ 3 s of 8 kHz 16-bit audio
    # the urgent message's callback is due at the next opening (closed by hand: tomorrow at the earliest)
    with sqlite3.connect(closed.env["CALLFLOW_STORE_DATABASE"]) as db:
        (due_at,) = db.execute("SELECT due_at FROM callbacks WHERE id = ?", (ticket["callback_id"],)).fetchone()
    assert due_at - record_started(record) > 3600
    kpi = cli(closed, "kpi", "--json")  # `callflow kpi` shows seed 003's figures next to seed 000's
    assert kpi.returncode == 0, kpi.stderr
    messages = json.loads(kpi.stdout)["procedures"]["messages"]
    assert messages["messages"] == 1 and messages["urgent"] == 1 and messages["confirmed_pct"] == 100.0
    done = cli(closed, "messages", "done", ticket["id"], "--by", "2001")
    assert done.returncode == 0 and json.loads(cli(closed, "messages", "list", "--json").stdout) == []


def record_started(record: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record["started_at"]).timestamp()


async def test_a_caller_who_hangs_up_after_speaking_keeps_the_message(closed, tmp_path, pbx, ari):
    # a person speaks at once (the closed line invites to a message), then after the beep says 5 s and hangs
    # up: cued by the beep in Asterisk's log (a fixed second would be before the beep on a loaded PBX, seen:
    # 1 s recorded), so the recording holds what the caller said
    first = audio.write_ulaw(tmp_path / "hello.ulaw", np.concatenate([audio.speech(21, 3), audio.digital_silence(120)]))
    message = audio.write_ulaw(tmp_path / "message.ulaw", np.concatenate([audio.speech(22, 5), audio.digital_silence(30)]))
    caller = Caller().audio(first).wait_cue(within=90).pause(0.5).audio(message).pause(6)
    watch = PromptWatch(pbx.log_file)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="closed-hangup", timeout_s=120)
    call = (await closed.wait_for_event("call in"))["call"]
    name = (await asyncio.to_thread(ari.get, f"channels/{call}"))["name"]
    await watch.next("beep", name, timeout=60, prefix="")
    await cue_caller(pbx, ari, call)
    assert await run.wait(60) == 0, run.errors()
    record = await closed.record(call)
    assert "message_kept" in [a["kind"] for a in record["actions"]], record["actions"]
    [ticket] = json.loads(cli(closed, "messages", "list", "--json").stdout)
    assert ticket["call_id"] == call and ticket["confirmed"] is False and ticket["motive"] == "normal"
    assert ticket["duration"] and ticket["duration"] >= 2, ticket


async def test_reopened_by_hand_the_next_call_gets_the_normal_greeting(closed, asterisk_log, tmp_path):
    assert cli(closed, "hours", "auto").returncode == 0
    caller = Caller().audio(audio.write_ulaw(tmp_path / "s.ulaw", audio.digital_silence(8))).pause(6)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="reopened", timeout_s=30)
    assert await run.wait(25) == 0, run.errors()
    call = (await closed.wait_for_event("call in"))["call"]
    record = await closed.record(call)
    prompts = [a["detail"] for a in record["actions"] if a["kind"] == "prompt"]
    assert prompts[0] == "greeting", prompts
