"""Issue 16, seed 003 « débordement » on the real PBX (`callflow run` wiring): nobody free within the wait →
the caller hears their position and wait, picks a callback slot by key, and is called back through Asterisk."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np

import caller_audio as audio
from caller_audio import prompt_seconds
from callflow.pbx.sipp import Caller, answering_phone_xml, start_sipp
from conftest import called_back_phone
from polling import poll

NUMBER = "0612345678"


def offer_window() -> tuple[float, float]:
    """When the overflow offer can start: speech → « je vous passe un conseiller » → holding words, position,
    wait → agents.hold_max_wait (30 s) → the offer, give or take a retry interval and a loaded machine."""
    earliest = 1 + prompt_seconds("to_agent") + prompt_seconds("agents_hold") + prompt_seconds("queue_position_1") \
        + prompt_seconds("queue_wait_short") + 30
    return earliest, earliest + 12


def keep_pressing(caller: Caller, key: str, start: float, end: float, every: float = 4.0) -> float:
    """SIPp cannot hear the offer: the key is pressed every few seconds across its window. A press before the
    offer is flushed when it starts; the first one during it answers; none reaches the next offer (≥ 30 s on)."""
    caller.pause(start)
    t = start
    while t < end:
        caller.press(key, gap=0.2).pause(every - 0.2)
        t += every
    return t


def talks_then_quiet(d, total: float):
    x = np.zeros(int(total * audio.SR))
    x[: 3 * audio.SR] = audio.speech(31, 3)
    return audio.write_ulaw(d / "overflow-caller.ulaw", x)


async def test_overflow_caller_picks_dans_l_heure_and_is_called_back(controller_process, tmp_path, asterisk_log, pbx):
    # agents.hold_max_wait = 30 s (the smallest allowed); « dans l'heure » due after 15 s: a timer the seed does
    # not fix (any delay within the hour keeps the promise), shortened so the test sees the callback
    controller_process.env.update({"CALLFLOW_AGENTS_HOLD_MAX_WAIT": "30", "CALLFLOW_AGENTS_SLOT_HOUR_DELAY": "15"})
    port, controller_process.env["CALLFLOW_ROUTING_CALLBACK_DIAL"] = called_back_phone(pbx)
    controller_process.start()
    phone = await start_sipp(answering_phone_xml(), name="called-back", sip_port=port, uas=True, timeout_s=200,
                             extra=["-trace_msg"])
    try:
        await _overflow_slot_2(controller_process, phone, tmp_path, asterisk_log)
    finally:
        phone.kill()


async def _overflow_slot_2(controller_process, phone, tmp_path, asterisk_log):
    earliest, latest = offer_window()
    caller = Caller().audio(talks_then_quiet(tmp_path, 140))
    keep_pressing(caller, "2", earliest + 1, latest + prompt_seconds("overflow_offer") + 6)
    caller.pause(prompt_seconds("callback_slot_hour") + 2)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="overflow-caller", timeout_s=180)
    call = (await controller_process.wait_for_event("call in", timeout=20))["call"]
    assert await run.wait(170) == 0, run.errors()  # the caller hung up itself, never us
    record = await controller_process.record(call)
    details = [(a["kind"], a["detail"]) for a in record["actions"]]
    kinds = [k for k, _ in details]
    assert ("overflow_answer", "2") in details, details
    assert kinds.index("hold") < kinds.index("queue_position") < kinds.index("overflow_offer") < kinds.index("callback")
    assert any(k == "queue_position" and d.startswith("1,") for k, d in details)
    log = asterisk_log.text()
    assert log.index("callflow/fr/queue_position_1") < log.index("callflow/fr/overflow_offer") \
        < log.index("callflow/fr/callback_slot_hour")

    def phone_messages() -> str:
        return "".join(p.read_text(errors="replace") for p in phone.workdir.glob("*messages.log"))

    # Asterisk rings the caller's number on the callbacks line and the phone answers
    await poll(lambda: "INVITE sip:+33612345678@" in phone_messages() and "ACK sip:" in phone_messages(),
               "the called-back phone to ring and answer", timeout=60)
    with sqlite3.connect(controller_process.env["CALLFLOW_STORE_DATABASE"]) as db:
        reasons = [r[0] for r in db.execute("SELECT reason FROM callbacks WHERE call_id = ?", (call,))]
    assert reasons and "dans l'heure" in reasons[0], reasons
    kpi = subprocess.run([sys.executable, "-m", "callflow.cli", "kpi", "--json", "--db",
                          controller_process.env["CALLFLOW_STORE_DATABASE"]], env=controller_process.env,
                         capture_output=True, text=True, timeout=60)
    overflow = json.loads(kpi.stdout)["procedures"]["messages"]
    # the offer comes back after each further 30 s on hold while the caller stays on the line
    assert overflow["overflow_offers"] >= 1 and overflow["callback_slots"] >= 1, overflow


async def test_overflow_caller_leaves_a_message_instead_and_it_is_listed(controller_process, tmp_path):
    controller_process.env.update({"CALLFLOW_AGENTS_HOLD_MAX_WAIT": "30"})
    controller_process.start()
    earliest, latest = offer_window()
    # talks from the offer on (into the recording, whenever it starts), keys 4 across the offer's window
    end = latest + prompt_seconds("overflow_offer") + 6
    x = np.zeros(int((end + 60) * audio.SR))
    x[: 3 * audio.SR] = audio.speech(32, 3)
    x[int(earliest * audio.SR): int((end + 40) * audio.SR)] = audio.speech(33, end + 40 - earliest)
    caller = Caller().audio(audio.write_ulaw(tmp_path / "overflow-message.ulaw", x))
    keep_pressing(caller, "4", earliest + 1, end)
    caller.pause(prompt_seconds("message_invite") + 12)  # then hangs up, the message recorded
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="overflow-message", timeout_s=180)
    call = (await controller_process.wait_for_event("call in", timeout=20))["call"]
    assert await run.wait(170) == 0, run.errors()
    record = await controller_process.record(call)
    assert ("overflow_answer", "4") in [(a["kind"], a["detail"]) for a in record["actions"]]
    listed = subprocess.run([sys.executable, "-m", "callflow.cli", "messages", "list", "--json", "--db",
                             controller_process.env["CALLFLOW_STORE_DATABASE"]], env=controller_process.env,
                            capture_output=True, text=True, timeout=30)
    [ticket] = json.loads(listed.stdout)
    assert ticket["call_id"] == call and ticket["source"] == "overflow" and ticket["duration"] >= 2
