"""Issue 11 item 6: the fault campaign — each fault at each phase where it can strike, on the real PBX.

Table-driven: a cell is (fault, phase) (fault_campaign.py says how each phase is reached and
watched). For every cell: no caller hung up by us (the caller's own SIPp scenario fails on any
BYE from us), no emergency caller separated from the operator, no channel or bridge left on the
PBX once the caller left, the call's record closed and not premature by the audit.

Faults:
- kill9: `kill -9` of `callflow run`, restarted 2 s later (as systemd would);
- sigterm: a graceful stop, restarted once it exited;
- handler_error: the TEST-ONLY hook (CALLFLOW_FAULT_INJECT, callflow/faults.py) makes the call's
  handler raise at the phase;
- ari_cut: the controller's ARI link (WebSocket and REST) cut for 5 s by a TCP proxy (ari_proxy.py);
- asterisk_restart: this worker's Asterisk stopped and started; every SIP call dies with it (not
  our decision): what is checked is that the controller comes back, takes new calls, and closes the
  lost call's record without counting it as a system hang-up;
- agent_leg_dropped: the agent's channel hung up by Asterisk (`channel request hangup`), as a
  dropped phone or network would.

CI runs DEFAULT_CELLS (the phases where a fault can separate people, chosen to stay within the
suite's time budget); CALLFLOW_FAULTS_FULL=1 runs every meaningful cell (opt-in, 39 cells, about
an hour of worker time), CALLFLOW_FAULT_CELLS="kill9:greeting,…" the cells listed. Each cell writes its row (what the caller got) to $CALLFLOW_FAULT_TABLE (JSON lines).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ari_proxy import AriProxy
from fault_campaign import (
    FAULTS,
    PHASES,
    audit_reasons,
    caller_files,
    caller_xml,
    closed_record,
    leftovers,
    read_calls,
    start_emergency_line,
    tell_caller_to_leave,
    CALLER_FALLBACK,
    wait_trigger,
    watch_caller,
)
from phones import DeskPhoneScript, desk_phones, tone  # noqa: F401  (fixtures)
from callflow.pbx.sipp import Caller, start_sipp

#: Seconds the caller is watched once the fault is over (the controller healthy again, the link back),
#: before they hang up on their own: long enough for every reaction to the fault (reconcile, the hand-off
#: to the agents, the line dialled again) to show; a BYE from us at any time fails the caller's scenario.
WATCH_AFTER = 15.0  # every reaction in docs/faults.md's table shows within 9 s of the fault's end
#: emergency.ring_timeout in the emergency_dialling cells (the config's minimum, 10 s; the default is 30 s)
EMERGENCY_RING = 10.0
#: faults after which the emergency_dialling cell checks the line is still being tried (the caller stays)
KEEPS_DIALLING = {"sigterm", "kill9", "ari_cut"}
#: Seconds an emergency caller may be without the operator right after the fault (a bridge rebuilt).
OPERATOR_GRACE = 8.0

# faults that only make sense once somebody else is on the call
_NEEDS_AGENT = {"agent_leg_dropped"}
_AGENT_PHASES = {"with_agent", "escalation_whisper", "emergency_dialling", "emergency_bridged"}

#: Cells that still fail, with the measured reason (docs/faults.md); none at the moment. They would be
#: left out of CI's set and run with CALLFLOW_FAULT_CELLS="kill9:emergency_bridged,…" or CALLFLOW_FAULTS_FULL=1.
KNOWN_FAILING: dict[tuple[str, str], str] = {}

#: CI's cells: every cell a fix of issue 11 was about, and each fault at the phase where it can do the most
#: harm. Left to CALLFLOW_FAULTS_FULL=1 (issue 10's CI budget): kill9 × greeting (the same take-over as
#: kill9 × questionnaire, which also has a media fork to clean up), handler_error × with_agent and
#: ari_cut × with_agent (the same paths as their emergency_bridged cells, which also keep the operator).
DEFAULT_CELLS = [cell for cell in [
    ("kill9", "questionnaire"), ("kill9", "with_agent"), ("kill9", "emergency_bridged"),
    ("sigterm", "questionnaire"), ("sigterm", "emergency_dialling"), ("sigterm", "emergency_bridged"),
    ("handler_error", "greeting"), ("handler_error", "escalation_whisper"), ("handler_error", "emergency_bridged"),
    ("ari_cut", "greeting"), ("ari_cut", "emergency_dialling"), ("ari_cut", "emergency_bridged"),
    ("agent_leg_dropped", "with_agent"), ("agent_leg_dropped", "emergency_bridged"),
    ("asterisk_restart", "with_agent"),
] if cell not in KNOWN_FAILING]


def all_cells() -> list[tuple[str, str]]:
    return [(f, p) for f in FAULTS for p in PHASES if f not in _NEEDS_AGENT or p in _AGENT_PHASES]


def chosen_cells() -> list[tuple[str, str]]:
    """DEFAULT_CELLS; every cell with CALLFLOW_FAULTS_FULL=1; or CALLFLOW_FAULT_CELLS="kill9:greeting,sigterm:with_agent"."""
    if os.environ.get("CALLFLOW_FAULTS_FULL") == "1":
        return all_cells()
    listed = os.environ.get("CALLFLOW_FAULT_CELLS", "").strip()
    if not listed:
        return DEFAULT_CELLS
    cells = [tuple(item.strip().split(":", 1)) for item in listed.split(",") if item.strip()]
    unknown = [c for c in cells if c not in all_cells()]
    if unknown:
        raise ValueError(f"CALLFLOW_FAULT_CELLS: expected FAULT:PHASE items among {all_cells()} (got {unknown})")
    return cells


CELLS = chosen_cells()


async def healthy(ctl, timeout: float = 120.0) -> None:
    """/health answers 200 (async: the ARI proxy runs in this event loop); bounded, generous: a start takes
    ~3 s here, up to a minute on a machine loaded by parallel test runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ctl.proc is not None and ctl.proc.poll() is not None:
            raise AssertionError(f"controller exited ({ctl.proc.returncode}):\n{ctl.output()[-3000:]}")
        if (await asyncio.to_thread(ctl.health))[0] == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"controller not healthy within {timeout} s:\n{ctl.output()[-3000:]}")


def desk_script(steps: tuple[str, ...], ring: float, audio: str) -> DeskPhoneScript:
    script = DeskPhoneScript(ring_seconds=ring, talk_audio=audio)
    for step in steps:
        what, _, arg = step.partition(":")
        script = script.pause(float(arg)) if what == "pause" else script.press(arg)
    return script


async def strike(fault: str, *, ctl, pbx, ari, proxy: AriProxy | None) -> str:
    """The fault itself; returns a short description for the table."""
    if fault == "kill9":
        await asyncio.to_thread(ctl.kill)
        await asyncio.sleep(2)
        ctl.start(wait=False)
        await healthy(ctl)
        return "kill -9, restarted after 2 s"
    if fault == "sigterm":
        ctl.proc.terminate()
        code = await asyncio.to_thread(ctl.proc.wait, 60)
        ctl.start(wait=False)
        await healthy(ctl)
        return f"SIGTERM (exit {code}), restarted"
    if fault == "ari_cut":
        assert proxy is not None
        proxy.cut(5.0)
        return "ARI cut for 5 s"
    if fault == "asterisk_restart":
        await asyncio.to_thread(pbx.down)
        await asyncio.to_thread(pbx.up)
        await healthy(ctl, timeout=120)
        return "Asterisk stopped and started"
    if fault == "agent_leg_dropped":
        agents = [c["name"] for c in await asyncio.to_thread(ari.channels) if c["name"].startswith("PJSIP/2001")]
        assert agents, "no agent channel to drop"
        await asyncio.to_thread(pbx.cli, f"channel request hangup {agents[0]}")
        return f"{agents[0].split('-')[0]} hung up by Asterisk"
    if fault == "handler_error":
        return "handler raised (CALLFLOW_FAULT_INJECT)"
    raise ValueError(fault)


def ari_delete(ari, path: str) -> None:
    req = urllib.request.Request(f"{ari.url}/{path}", method="DELETE")
    req.add_header("Authorization", "Basic " + ari.token)
    try:
        urllib.request.urlopen(req, timeout=5).close()
    except urllib.error.HTTPError:
        pass  # already gone


def write_row(row: dict, tmp_path: Path) -> None:
    path = Path(os.environ.get("CALLFLOW_FAULT_TABLE") or tmp_path / "fault_table.jsonl")
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")


async def line_tried_again(db: Path, call_id: str, before_fault: int, caller, *, timeout: float) -> None:
    """Wait until, after the fault, an emergency attempt ended and another was dialled; fail at once if the
    record says the caller left while the caller's SIPp is still on the line (never told to leave yet)."""
    deadline = time.monotonic() + timeout
    after: list[dict] = []
    while time.monotonic() < deadline:
        record = next((c for c in await read_calls(db) if c["call_id"] == call_id), None) or {"actions": []}
        after = record["actions"][before_fault:]
        kinds = [a["kind"] for a in after]
        assert "emergency_caller_left" not in kinds or caller.proc.returncode is not None, \
            f"the emergency line given up while the caller is on the line: {_story(after)}"
        ended = kinds.index("emergency_result") if "emergency_result" in kinds else None
        if ended is not None and "emergency_dial" in kinds[ended + 1:]:
            return
        assert caller.proc.returncode is None, f"the caller's call ended before the line was tried again: {_story(after)}"
        await asyncio.sleep(0.5)
    raise AssertionError(f"the emergency line not tried again within {timeout:.0f} s of the fault: {_story(after)}")


def _story(actions: list[dict]) -> list[tuple]:
    return [(round(a["at"], 1), a["kind"], a["detail"][:50]) for a in actions]


@pytest.mark.parametrize("fault,phase_name", CELLS, ids=[f"{f}-{p}" for f, p in CELLS])
async def test_fault(fault, phase_name, pbx, ari, controller_process, desk_phones, records_db, tmp_path,
                     audio_dir):
    phase = PHASES[phase_name]
    ctl = controller_process
    t_test = time.monotonic()
    marks: dict[str, float] = {}  # where a cell's time goes (seconds since the test began)

    def mark(what: str) -> None:
        marks[what] = round(time.monotonic() - t_test, 1)
    for bridge in await asyncio.to_thread(ari.bridges):  # a clean slate: nothing left by an earlier test
        await asyncio.to_thread(ari_delete, ari, f"bridges/{bridge['id']}")
    ctl.env["CALLFLOW_LOG_LEVEL"] = "INFO"
    proxy = None
    if fault == "handler_error":
        ctl.env["CALLFLOW_FAULT_INJECT"] = f"{phase.trigger}@{phase.delay}"
    if fault == "ari_cut":
        proxy = await AriProxy(pbx.instance.address).start()
        ctl.env["CALLFLOW_ARI_URL"] = proxy.url
    if phase_name == "emergency_dialling":
        # the config's shortest ring (10 s): the leg placed before the fault rings out, and an attempt placed
        # after it ends, while the caller is still there and watched (the line must be tried again after both)
        ctl.env["CALLFLOW_EMERGENCY_RING_TIMEOUT"] = str(int(EMERGENCY_RING))
    ctl.start(wait=False)
    try:
        await healthy(ctl)
        mark("controller_up")
        files = caller_files(audio_dir)
        talk = str(tone(audio_dir / "tone.ulaw"))
        if phase.agent is not None:
            await desk_phones("2001", desk_script(phase.agent, phase.agent_ring, talk))
        if phase.supervisor:
            await desk_phones("2100", DeskPhoneScript(ring_seconds=1.0, talk_audio=talk))
        line = await start_emergency_line(ctl.emergency_port, phase.emergency, talk_audio=talk) if phase.emergency else None
        caller = await start_sipp(caller_xml(phase, files), name=f"{fault}-{phase_name}",
                                  timeout_s=int(phase.stay + CALLER_FALLBACK) + 90)

        t_call = time.monotonic()
        mark("caller_started")
        call, _ = await wait_trigger(records_db, phase.trigger, timeout=phase.stay + 30)  # a loaded machine is slow
        if fault != "handler_error":
            await asyncio.sleep(phase.delay)
        t_fault = time.monotonic()
        mark("phase_reached")
        bridged = phase_name == "emergency_bridged"
        watching = asyncio.ensure_future(watch_caller(ari, t_fault, caller, must_stay_with_operator=bridged,
                                                      grace=OPERATOR_GRACE))
        before_fault = len(next((c for c in await read_calls(records_db) if c["call_id"] == call["call_id"]),
                                call)["actions"])
        what = await strike(fault, ctl=ctl, pbx=pbx, ari=ari, proxy=proxy)
        mark("fault_over")
        if phase_name == "emergency_dialling" and fault in KEEPS_DIALLING:
            # issue 11: « the line keeps being tried » until the caller hangs up, across the fault: an attempt
            # that ended after the fault is followed by another, and nothing says the caller left meanwhile
            await line_tried_again(records_db, call["call_id"], before_fault, caller,
                                   timeout=2 * EMERGENCY_RING + 30)
            mark("line_tried_again")
        # the controller is back (or the link, or the fault was in-process): what the caller gets from
        # here is watched for WATCH_AFTER seconds (past the operator's grace), then the caller leaves
        # on their own — told by the test, not after a fixed worst-case time (issue 10's CI budget)
        watch_until = max(time.monotonic(), t_fault + (OPERATOR_GRACE if bridged else 0)) + WATCH_AFTER
        if "line_tried_again" in marks:  # the reactions to the fault showed long ago; the caller stays a little more
            watch_until = max(t_test + marks["fault_over"] + WATCH_AFTER, time.monotonic() + 5)
        while caller.proc.returncode is None and time.monotonic() < watch_until:
            await asyncio.sleep(0.5)
        t_leave = time.monotonic()
        mark("caller_told_to_leave")
        if fault != "asterisk_restart":
            await tell_caller_to_leave(ari, pbx)
        watch = await watching
        code = await caller.wait(phase.stay + CALLER_FALLBACK + 60)
        mark("caller_gone")
        channels, bridges = await leftovers(ari)
        mark("pbx_checked")
        record = await closed_record(records_db, call["call_id"])
        mark("record_checked")
        reasons = audit_reasons(record)
        after = None
        if fault == "asterisk_restart":  # the controller takes a new call on the restarted PBX
            again = await start_sipp(Caller().audio(files["silent"]).pause(8).xml(answer_within=15), name="after-restart",
                                     timeout_s=60)
            after = await again.wait(40)
            new_calls = [c for c in await read_calls(records_db) if c["call_id"] != call["call_id"]]
        row = {
            "fault": fault, "phase": phase_name, "what": what, "caller_sipp_exit": code,
            "caller_got": watch.story(), "separated_from_operator": watch.separated_from_operator,
            "left_channels": channels, "left_bridges": bridges,
            "record_ended": bool(record.get("ended_at")), "hung_up_by": record.get("hung_up_by"),
            "hangup_reason": record.get("hangup_reason"), "audit": reasons,
            "emergency_line_exit": None if line is None else line.proc.returncode, "timing": marks,
        }
        write_row(row, tmp_path)
        print(json.dumps(row, indent=1))

        if fault == "asterisk_restart":
            # the SIP call died with Asterisk (not our decision); the controller must be back for new calls
            assert after == 0, again.errors()
            assert any(a["kind"] == "prompt" for c in new_calls for a in c["actions"]), new_calls
            assert record.get("hung_up_by") != "system", record
        else:
            assert code == 0, f"the caller was hung up by us or lost: {watch.story()}\n{caller.errors()[-1500:]}"
        assert watch.separated_from_operator is None, f"emergency caller separated from the operator: {watch.story()}"
        assert not channels and not bridges, f"left on the PBX: channels {channels}, bridges {bridges}"
        assert record.get("ended_at") and record.get("hung_up_by"), f"record not closed: {record}"
        if fault != "asterisk_restart" and record.get("hung_up_by") == "caller":
            # the caller hangs up at the end of their script: a record that says so earlier is false (issue 11 H)
            assert record["duration"] >= t_leave - t_call - 5, \
                f"the record says the caller hung up at {record['duration']:.0f} s (they left at {t_leave - t_call:.0f} s)"
        assert not reasons, reasons
    finally:
        if proxy is not None:
            await proxy.close()
        ctl.stop()
