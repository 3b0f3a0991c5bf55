"""The fault campaign's machinery (issue 11, item 6): phases, faults, what the caller got.

A cell is (fault, phase). Its caller is a real SIPp call to `callflow run` (a real process)
on this worker's sandbox Asterisk, with desk phones and the emergency test line as SIPp
answering parties. The caller always hangs up on their own at the end of their script, so a
BYE from us at any moment fails their SIPp scenario: « no caller hung up by us » is checked
by SIPp itself. The phase is reached for real (the call's record says so), then the fault
strikes, then the caller's line is watched until they leave:

- what the caller got, from Asterisk's own view (ARI) every 0.5 s: who they share a bridge
  with, or which dialplan application holds them (the ring group, music on hold…);
- an emergency caller bridged with the operator must stay bridged with the operator;
- once the caller left: no channel and no bridge left on the PBX, and the call's record
  closed (ended, who hung up) and not premature by the audit (callflow/store/audit.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import caller_audio
from callflow.pbx.sipp import OK_TO_LAST_REQUEST, Caller, SippRun, emergency_line_xml, next_ports, start_sipp
from callflow.store.audit import audit_call
from callflow.store.records import Records


FAULTS = ("kill9", "sigterm", "handler_error", "ari_cut", "asterisk_restart", "agent_leg_dropped")


@dataclass(frozen=True)
class Phase:
    """How a caller reaches the phase, and the record action that says it is there."""

    name: str
    caller: str  # "silent", "breathing", "speaks"
    trigger: str  # KIND[:DETAIL_PREFIX] of the call record's action
    delay: float  # seconds after the trigger the fault strikes
    stay: float  # seconds the caller stays on the line in all (then hangs up)
    agent: tuple[str, ...] | None = None  # what the agent's desk phone (2001) does once it answered
    agent_ring: float = 0.5
    supervisor: bool = False
    emergency: str | None = None  # the emergency test line's behaviour


PHASES = {p.name: p for p in (
    Phase("greeting", "silent", "prompt:greeting", 1.0, 50),
    Phase("questionnaire", "breathing", "question", 1.0, 100),
    Phase("agent_ringing", "speaks", "agent_ring", 2.0, 60, agent=(), agent_ring=12),
    Phase("with_agent", "speaks", "agent_connected", 2.0, 60, agent=()),
    Phase("escalation_whisper", "speaks", "escalation_supervisor", 0.5, 75, agent=("pause:2", "press:*1"),
          supervisor=True),
    Phase("emergency_dialling", "speaks", "emergency_dial", 2.0, 90, agent=("pause:2", "press:*9"),
          emergency="never_answers"),
    Phase("emergency_bridged", "speaks", "emergency_bridged", 2.0, 110, agent=("pause:2", "press:*9"),
          emergency="answers"),
)}


def caller_files(workdir: Path) -> dict[str, Path]:
    """The callers' audio, made once: a silent line, a breather, a speaker (4 s of talk, then quiet)."""
    files = {"silent": workdir / "silent.ulaw", "breathing": workdir / "breathing.ulaw", "speaks": workdir / "speaks.ulaw"}
    if not all(f.exists() for f in files.values()):
        caller_audio.write_ulaw(files["silent"], caller_audio.digital_silence(130.0))
        caller_audio.write_ulaw(files["breathing"], caller_audio.breathing(11, 130.0))
        talk = np.concatenate([caller_audio.digital_silence(0.5), caller_audio.speech(12, 4.0),
                               caller_audio.digital_silence(125.0)])
        caller_audio.write_ulaw(files["speaks"], talk)
    return files


# The caller stays on the line until the test tells it to leave (an in-dialog NOTIFY, see
# `tell_caller_to_leave`), or at worst `stay` seconds. It always hangs up itself (its own BYE):
# any BYE from us meanwhile is an unexpected message that fails its scenario, as before.
_WAIT_FOR_END = '\n  <recv request="NOTIFY" timeout="@STAY_MS@" ontimeout="9"/>' + OK_TO_LAST_REQUEST + '  <label id="9"/>\n'


#: Seconds past `stay` the caller waits to be told before leaving anyway: only a test that broke down ever
#: gets there (a loaded machine can take 90 s to reach emergency_bridged; waiting costs nothing, the caller
#: leaves when told).
CALLER_FALLBACK = 120.0


def caller_xml(phase: Phase, files: dict[str, Path]) -> str:
    """The phase's caller: its audio, then on the line until told to leave (at most stay + CALLER_FALLBACK s)."""
    xml = Caller().audio(files[phase.caller]).xml(answer_within=15)
    bye = xml.rindex('  <send retrans="500">')
    stay_ms = int((phase.stay + CALLER_FALLBACK) * 1000)
    return xml[:bye] + _WAIT_FOR_END.replace("@STAY_MS@", str(stay_ms)).lstrip("\n") + xml[bye:]


async def tell_caller_to_leave(ari, pbx) -> bool:
    """The watch is over: the caller hangs up now (an in-dialog NOTIFY its scenario waits for).
    False when the caller is already gone."""
    callers = [c["name"] for c in await asyncio.to_thread(ari.channels) if _kind(c["name"]) == "caller"]
    for name in callers:
        await asyncio.to_thread(pbx.cli, f"pjsip send notify callflow-test-end channel {name}")
    return bool(callers)


async def start_emergency_line(port: int, behaviour: str, talk_audio: str | None = None) -> SippRun:
    """The emergency test line on `port`, where the test's controller dials it (ControllerProcess.emergency_port)."""
    _, media_port = next_ports()
    return await start_sipp(emergency_line_xml(behaviour, talk_audio=talk_audio), name=f"emergency-{behaviour}",
                            sip_port=port, media_port=media_port, uas=True, timeout_s=300)


# -- the call record, read from the controller's database -----------------------------------------

async def read_calls(db: Path) -> list[dict]:
    if not db.exists():
        return []
    records = await Records.open(db)
    try:
        return await records.calls_with_details()
    finally:
        await records.close()


async def wait_trigger(db: Path, trigger: str, timeout: float) -> tuple[dict, float]:
    """The first call whose record gets the trigger action; and when (monotonic) we saw it."""
    kind, _, detail = trigger.partition(":")
    deadline = time.monotonic() + timeout
    last: list[dict] = []
    while time.monotonic() < deadline:
        last = await read_calls(db)
        for call in last:
            if any(a["kind"] == kind and a["detail"].startswith(detail) for a in call["actions"]):
                return call, time.monotonic()
        await asyncio.sleep(0.25)
    seen = {c["call_id"]: [(round(a["at"], 1), a["kind"], a["detail"][:40]) for a in c["actions"]] for c in last}
    raise AssertionError(f"the phase's action {trigger!r} never came within {timeout} s: {seen}")


# -- what the caller got, from Asterisk's view ----------------------------------------------------

def _kind(name: str) -> str:
    for prefix, kind in (("PJSIP/trunk", "caller"), ("PJSIP/emergency", "operator"), ("PJSIP/2100", "supervisor"),
                         ("PJSIP/20", "agent"), ("Snoop/", "media"), ("UnicastRTP/", "media"), ("Local/", "local")):
        if name.startswith(prefix):
            return kind
    return name.split("-")[0]


def caller_view(ari) -> str:
    """One word-ish line for where the caller is now: 'gone', 'with agent+operator', 'in Dial', 'alone in Stasis'…"""
    channels = {c["id"]: c for c in ari.channels()}
    callers = [c for c in channels.values() if _kind(c["name"]) == "caller"]
    if not callers:
        return "gone"
    caller = callers[0]
    for bridge in ari.bridges():
        if caller["id"] in bridge["channels"]:
            others = sorted({_kind(channels[c]["name"]) for c in bridge["channels"] if c != caller["id"] and c in channels}
                            - {"media"})
            if others:
                return "with " + "+".join(others)
    app = (caller.get("dialplan") or {}).get("app_name") or "?"
    if app == "Stasis":
        return "in Stasis (IVR / hold)"
    return f"in dialplan {app}"


@dataclass
class Watch:
    """What the caller got over time (deduplicated), and the first separation from the operator."""

    seen: list[tuple[float, str]] = field(default_factory=list)
    separated_from_operator: str | None = None

    def story(self) -> str:
        return " → ".join(f"{what} (+{at:.0f}s)" for at, what in self.seen)


async def watch_caller(ari, since: float, until_gone: SippRun, *, must_stay_with_operator: bool, grace: float = 8.0,
                       limit: float = 200.0) -> Watch:
    """Poll Asterisk until the caller's SIPp ends; an emergency caller must keep the operator
    (`grace`: seconds a bridge may take to be rebuilt right after the fault)."""
    watch = Watch()
    while until_gone.proc.returncode is None and time.monotonic() - since < limit:
        try:
            view = await asyncio.to_thread(caller_view, ari)
        except Exception as exc:  # Asterisk restarting: its ARI does not answer
            view = f"PBX unreachable ({type(exc).__name__})"
        now = time.monotonic() - since
        if not watch.seen or watch.seen[-1][1] != view:
            watch.seen.append((now, view))
        # "PBX unreachable" is our reader timing out under load: it says nothing about the caller
        if (must_stay_with_operator and now > grace and "operator" not in view and view != "gone"
                and not view.startswith("PBX unreachable")
                and until_gone.proc.returncode is None and watch.separated_from_operator is None):
            watch.separated_from_operator = f"{view} at +{now:.1f}s"
        await asyncio.sleep(0.5)
    return watch


async def leftovers(ari, timeout: float = 20.0) -> tuple[list[str], list[str]]:
    """Channels and bridges still on the PBX once the caller is gone (bounded wait: cleanup is async)."""
    deadline = time.monotonic() + timeout
    while True:
        channels = [c["name"] for c in await asyncio.to_thread(ari.channels)]
        bridges = [f"{b['id']}({len(b['channels'])})" for b in await asyncio.to_thread(ari.bridges)]
        if (not channels and not bridges) or time.monotonic() > deadline:
            return channels, bridges
        await asyncio.sleep(0.5)


async def closed_record(db: Path, call_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        call = next((c for c in await read_calls(db) if c["call_id"] == call_id), None)
        if (call and call.get("ended_at")) or time.monotonic() > deadline:
            return call or {}
        await asyncio.sleep(0.5)


def audit_reasons(call: dict) -> list[str]:
    return audit_call(call).reasons if call else ["no record"]


def markdown_table(rows: list[dict]) -> str:
    """The fault table (fault × phase → what the caller got) from the campaign's JSON rows."""
    lines = ["| fault | phase | what the caller got (Asterisk's view, from the fault) | hung up by us | left on PBX | record |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["fault"], r["phase"])):
        by_us = "no" if r["caller_sipp_exit"] == 0 else f"SIPp exit {r['caller_sipp_exit']}"
        if r.get("separated_from_operator"):
            by_us += f"; separated from operator {r['separated_from_operator']}"
        left = ", ".join(r["left_channels"] + r["left_bridges"]) or "nothing"
        record = (f"closed: {r['hung_up_by']} ({(r['hangup_reason'] or '')[:40]})" if r["record_ended"] else "NOT closed")
        if r["audit"]:
            record += "; audit: " + "; ".join(r["audit"])[:80]
        lines.append(f"| {r['fault']} | {r['phase']} | {r['caller_got']} | {by_us} | {left} | {record} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python tests/integration/fault_campaign.py rows.jsonl
    import json
    import sys

    print(markdown_table([json.loads(line) for line in open(sys.argv[1]) if line.strip()]))
