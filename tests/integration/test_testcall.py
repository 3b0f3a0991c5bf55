"""`callflow test-call` against the sandbox PBX, and README's raw SIPp caller (one press counted once)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from callflow.pbx.sipp import pbx_instance
from polling import never

REPO = Path(__file__).resolve().parents[2]
#: one press reported twice within this is Asterisk's own doing under load (its DTMF timeout ends a
#: late press, then the press's END packet ends it again); the flows swallow such bursts
BURST = 0.3


def presses(events: list[dict]) -> tuple[list[str], int]:
    """(the keys pressed, bursts collapsed; how many reports Asterisk made)."""
    from datetime import datetime

    reports = [(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp(), e["digit"])
               for e in events if e.get("event") == "digit received"]
    keys: list[str] = []
    last: tuple[float, str] | None = None
    for at, digit in reports:
        if last is None or digit != last[1] or at - last[0] > BURST:
            keys.append(digit)
        last = (at, digit)
    return keys, len(reports)




async def run_test_call(*args: str, timeout: float = 240) -> dict:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callflow.cli", "test-call", "--json", *args,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert out, err.decode()
    result = json.loads(out)
    result["exit"] = proc.returncode
    return result


async def test_the_language_scenario_reports_answer_prompts_and_who_hung_up(controller, asterisk_log):
    result = await run_test_call("--scenario", "language")
    assert result["exit"] == 0, result
    assert result["target"] == pbx_instance().sip_target  # the sandbox instance by default
    (call,) = result["calls"]
    assert 0 < call["answered_after"] < 5
    assert call["hung_up_by"] == "caller"
    assert call["heard"], "the caller heard the greeting's RTP"
    first_start, first_end = call["heard"][0]
    assert first_start < 2 and first_end - first_start > 1  # the greeting, from the start
    await asterisk_log.wait_for("Playing 'callflow/fr/q_language")
    await asterisk_log.wait_for("Playing 'callflow/en/")
    keys, reports = presses(controller.events())
    assert keys == ["9", "1"], keys
    assert reports <= 3, reports  # at most one duplicate in all (the stock capture gave eight per press)


async def test_a_load_profile_through_fastagi_gives_a_summary(controller):
    result = await run_test_call("--scenario", "speech", "--number", "agi", "--calls", "4", "--concurrent", "2",
                             "--rate", "2", timeout=300)
    summary = result["summary"]
    assert summary["calls"] == 4 and summary["answered"] == 4 and summary["failed"] == 0, result
    assert summary["hung_up_by_caller"] == 4 and summary["hung_up_by_pbx"] == 0
    assert summary["heard_audio"] == 4
    assert result["exit"] == 0, result
    ins = [e for e in controller.events() if e.get("event") == "call in" and e.get("via") == "fastagi"]
    assert len(ins) == 4


async def test_the_dead_line_scenario_sees_the_pbx_hang_up_after_the_seeds_wait(controller):
    result = await run_test_call("--scenario", "dead-line", timeout=300)
    (call,) = result["calls"]
    assert call["hung_up_by"] == "pbx" and call["duration"] >= 30, result
    assert result["exit"] == 0, result


async def test_readmes_raw_sipp_caller_presses_1_once(controller, tmp_path):
    text = (REPO / "README.md").read_text()
    block = re.search(r"The raw SIPp scenario.*?```sh\n(.*?)```", text, flags=re.S).group(1)
    sox_line, sipp_line = [re.sub(r"\s+#.*$", "", line).strip() for line in block.strip().splitlines()]
    address = pbx_instance().address  # README's 127.0.0.1 is instance 0; the tests use their own
    sipp_argv = [a.replace("127.0.0.1", address) for a in shlex.split(sipp_line)]
    subprocess.run(shlex.split(sox_line), check=True)
    done = await asyncio.create_subprocess_exec(*sipp_argv, "-nostdin", cwd=REPO, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
    assert await asyncio.wait_for(done.wait(), 60) == 0
    call = await controller.wait_for_event("call in")
    await controller.wait_for_event("digit received", call=call["call"])
    # the stock capture replayed as is made Asterisk report this one press eight times
    await never(lambda: presses(controller.events())[0][1:] or presses(controller.events())[1] > 2,
                "the one press of 1 reported as another press, or as a burst", within=2.0)
    assert presses(controller.events())[0] == ["1"]
    assert os.path.exists("/tmp/silence.ulaw")
