"""`callflow test-call`: the flows' SIPp callers as a command, for ops, against any PBX.

    callflow test-call --target pbx.example:5060 --number 3000 --scenario seed-example
    callflow test-call --scenario speech --calls 50 --concurrent 10 --rate 2

Each scenario is a caller of the silent-call procedure (seed 000) with real audio
(breathing, street noise, speech rendered by espeak-ng, taps) streamed as RTP and
RFC 2833 keys with fresh sequence numbers per press, so Asterisk counts one press
once (callflow/pbx/sipp.py). When the scenario's moments depend on our prompts
(answer after « Je vous entends respirer… »), they come from the rendered prompt
files' lengths.

The report says, per call, what the caller got and when: answered, the audio the
PBX sent (segments of sound in its RTP — the prompts), who hung up; and for a
load profile a summary (answered, failed, time to answer, hang-ups by side).
What the caller heard comes from a packet socket (root only: without it the
report has the SIP side only, and says so).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from callflow.audio import g711
from callflow.pbx.sipp import Caller, SippRun, start_sipp

SR = 8000
SCENARIOS = ("dead-line", "breathing", "seed-example", "speech", "taps", "language", "emergency")
#: what a caller hears as "sound": prompts are far above this, comfort noise and silence below
HEARD_DBFS = -45.0


# -- caller audio (seeded, made here so an installed package needs no test files) ----------------

def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _band_noise(r: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    spec = np.fft.rfft(r.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < low) | (f > high)] = 0
    y = np.fft.irfft(spec, n=n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _db(db: float) -> float:
    return 10 ** (db / 20)


def breathing(seconds: float, seed: int = 11, peak_dbfs: float = -38.0, rate_hz: float = 0.3) -> np.ndarray:
    """A calm breather: slow inhale / exhale of band-limited noise, quiet, no voice, on line hiss."""
    r = _rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    at = int(0.5 * SR)
    while at < n:
        m = int(SR / rate_hz * r.uniform(0.9, 1.1))
        inhale, exhale = int(m * 0.38), int(m * 0.42)
        env = np.zeros(m)
        env[:inhale] = np.sin(np.linspace(0, np.pi, inhale)) ** 2
        env[inhale:inhale + exhale] = np.sin(np.linspace(0, np.pi, exhale)) ** 1.5 * 0.8
        cycle = _band_noise(r, m, 400, 2200) * env
        end = min(n, at + m)
        x[at:end] += cycle[: end - at]
        at += m
    x = x / (np.abs(x).max() + 1e-12) * _db(peak_dbfs + 6)
    return x + _band_noise(r, n, 100, 3400) * _db(-68)


def street_noise(seconds: float, seed: int = 14) -> np.ndarray:
    r = _rng(seed)
    n = int(seconds * SR)
    return _band_noise(r, n, 20, 400) * _db(-32) + _band_noise(r, n, 100, 3400) * _db(-40)


def with_taps(bed: np.ndarray, groups: list[tuple[float, int]], seed: int = 13) -> np.ndarray:
    """Tap groups (at seconds, count) on the handset, taps of a group ~0.35 s apart."""
    r = _rng(seed)
    out = bed.copy()
    for at, count in groups:
        t = at
        for _ in range(count):
            m = int(0.02 * SR)
            tt = np.arange(m) / SR
            tap = (r.standard_normal(m) * 0.5 + np.sin(2 * np.pi * 180 * tt)) * np.exp(-tt / 0.006)
            start = int(t * SR)
            end = min(len(out), start + m)
            out[start:end] += (tap / np.abs(tap).max() * _db(-14))[: end - start]
            t += r.uniform(0.3, 0.4)
    return out


def sobbing(seconds: float, seed: int = 16) -> np.ndarray:
    """Cas D / F: loud irregular breaths broken by short voiced sobs."""
    r = _rng(seed)
    x = breathing(seconds, seed, peak_dbfs=-24.0, rate_hz=0.55)
    t = 1.0
    while t < seconds - 1:
        m = int(r.uniform(0.25, 0.5) * SR)
        f0 = r.uniform(260, 340) * np.linspace(1.0, 0.8, m)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * np.hanning(m)
        start = int(t * SR)
        x[start:start + m] += (voice * _db(-22))[: len(x[start:start + m])]
        t += r.uniform(1.2, 2.5)
    return x


SPEECH_TEXT = ("Allô, bonjour, oui je vous entends, je vous appelle parce que j'ai un problème avec mon "
               "téléphone, il ne marche plus depuis ce matin et je ne sais pas quoi faire. ")


def speech(seconds: float, workdir: Path) -> np.ndarray:
    """A person talking: French speech from espeak-ng (the prompts' own voice maker), repeated."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise RuntimeError("the speech scenario needs espeak-ng and sox: apt-get install -y espeak-ng sox")
    wav, raw = workdir / "speech.wav", workdir / "speech.raw"
    subprocess.run(["espeak-ng", "-v", "fr-fr", "-s", "160", "-w", str(wav), SPEECH_TEXT], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", "-t", "raw", str(raw)],
                   check=True, capture_output=True)
    one = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float64) / 32768
    n = int(seconds * SR)
    reps = int(np.ceil(n / max(1, len(one))))
    x = np.tile(one, reps)[:n]
    return x / (np.abs(x).max() + 1e-12) * _db(-8)


def write_ulaw(path: Path, x: np.ndarray) -> Path:
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    path.write_bytes(g711.ulaw_encode(pcm))
    return path


# -- the scenarios: when the caller does what ------------------------------------------------------

def prompt_seconds(prompt: str, lang: str = "fr") -> float:
    """A rendered prompt's length (sounds/<lang>/<id>.ulaw, 8000 bytes a second)."""
    from callflow.prompts import SOUNDS

    path = SOUNDS / lang / f"{prompt}.ulaw"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `callflow prompts render` first (the scenarios follow the prompts' lengths)")
    return path.stat().st_size / SR


def diagnosis_at() -> float:
    """When phase 3 starts: greeting, 3 s of listening, audio check + language hint, 10 s of listening."""
    return prompt_seconds("greeting") + 3 + prompt_seconds("audio_check") + prompt_seconds("language_hint") + 10


@dataclass
class Scenario:
    name: str
    caller: Caller
    hang_up: bool  # the caller ends the call (else it waits for the PBX's BYE)
    max_seconds: int
    expect: str  # what a correct hotline does, for the report's reader


def build_scenario(name: str, workdir: Path) -> Scenario:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    caller = Caller(workdir=workdir)
    d = diagnosis_at()
    if name == "dead-line":
        return Scenario(name, caller, False, 150, "the PBX hangs up after its final warning (>= 30 s), never before")
    if name == "breathing":
        caller.audio(write_ulaw(workdir / "breathing.ulaw", breathing(120))).pause(d + 40)
        return Scenario(name, caller, True, 200, "the keypad questionnaire; never a BYE from the PBX")
    if name == "seed-example":
        caller.audio(write_ulaw(workdir / "breathing.ulaw", breathing(150))).pause(d + 3)
        keys = "12111"
        for i, key in enumerate(keys):
            caller.press(key, gap=0.2).pause(12.6 if i < len(keys) - 1 else 12)
        return Scenario(name, caller, True, 200, "oui / non / oui / SMS / oui: an SMS is sent; the caller hangs up")
    if name == "speech":
        caller.audio(write_ulaw(workdir / "speech.ulaw", speech(40, workdir))).pause(25)
        return Scenario(name, caller, True, 60, "the greeting stops when the caller talks; the call goes to a person")
    if name == "taps":
        first = d + 3
        groups = [(first + 13 * i, count) for i, count in enumerate((1, 2, 1, 1, 1))]
        caller.audio(write_ulaw(workdir / "taps.ulaw", with_taps(breathing(150, 12), groups))).pause(first + 13 * 4 + 12)
        return Scenario(name, caller, True, 200, "the questionnaire answered with taps (1 = oui, 2 = non)")
    if name == "language":
        silence = write_ulaw(workdir / "silence.ulaw", np.zeros(30 * SR))
        caller.audio(silence).pause(prompt_seconds("greeting") + 1).press("9").pause(4).press("1").pause(15)
        return Scenario(name, caller, True, 60, "key 9 opens the language menu, 1 switches to English")
    # emergency: sobs, then 1 to the emergency question
    asked = prompt_seconds("greeting") + 3 + prompt_seconds("audio_check") + prompt_seconds("language_hint")
    caller.audio(write_ulaw(workdir / "sobbing.ulaw", sobbing(120))).pause(asked + prompt_seconds("q_emergency") + 2)
    caller.press("1").pause(25)
    return Scenario(name, caller, True, 120, "the emergency question first; 1 places the emergency line; never a BYE")


# -- what the caller heard: the PBX's RTP to our media ports ----------------------------------------

SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)  # Linux; its control message (SCM_TIMESTAMP) has the same number
_TIMEVAL = struct.Struct("@ll")  # struct timeval: seconds, microseconds


class RtpListener:
    """RTP arriving on this machine, read from a packet socket (needs root; sees every interface)."""

    ETH_P_IP = 0x0800

    def __init__(self) -> None:
        self.packets: list[tuple[float, tuple[str, int], float]] = []  # (time, (source ip, port), level dBFS)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(self.ETH_P_IP))
            self._sock.settimeout(0.2)
            # the kernel's arrival time of each packet: this thread may be held up on a loaded machine,
            # and packets read late in a bunch would show gaps in the audio that were never on the line
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        except (PermissionError, OSError, AttributeError) as exc:
            self.error = f"no packet socket ({exc}): run as root to see the PBX's audio"
            return
        self._thread = threading.Thread(target=self._run, name="rtp-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, addr = self._sock.recvmsg(65535, socket.CMSG_SPACE(_TIMEVAL.size))
            except socket.timeout:
                continue
            except OSError:
                return
            arrived = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(value) >= _TIMEVAL.size:
                    seconds, microseconds = _TIMEVAL.unpack_from(value)
                    arrived = seconds + microseconds / 1e6
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # on loopback every packet is seen twice
            parsed = _udp_rtp(data)
            if parsed is not None:
                source, payload = parsed
                pcm = g711.ulaw_decode(payload).astype(np.float64) / 32768
                level = 20 * np.log10(np.sqrt(np.mean(pcm**2)) + 1e-9)
                self.packets.append((arrived, source, float(level)))


def _udp_rtp(packet: bytes) -> tuple[tuple[str, int], bytes] | None:
    """((source address, port), μ-law payload) of an IPv4/UDP/RTP PCMU packet, else None.

    Matched by source: the PBX sends a call's audio from the port its SDP named, while it may
    send it to another port of ours (symmetric RTP follows where our key presses came from)."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8 + 12:
        return None
    sport = struct.unpack_from("!H", packet, ihl)[0]
    rtp = packet[ihl + 8:]
    if rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0:  # RTP v2, payload type 0 (PCMU) only
        return None
    return (socket.inet_ntoa(packet[12:16]), sport), rtp[12 + 4 * (rtp[0] & 0x0F):]


def heard_segments(packets: list[tuple[float, float]], since: float, gap: float = 0.4) -> list[tuple[float, float]]:
    """Sound in what the PBX sent: (start, end) seconds after `since`, gaps under `gap` merged."""
    segments: list[list[float]] = []
    for at, level in sorted(packets):
        if level < HEARD_DBFS:
            continue
        t = at - since
        if segments and t - segments[-1][1] <= gap:
            segments[-1][1] = t + 0.02
        else:
            segments.append([t, t + 0.02])
    return [(round(a, 2), round(b, 2)) for a, b in segments if b - a >= 0.2]


# -- SIPp's message trace: when each call was answered and who hung up -------------------------------

_BLOCK = re.compile(r"-{10,} (\d{4}-\d\d-\d\d\t?\s?[\d:.]+)")


def parse_messages(text: str) -> dict[str, dict]:
    """Call-ID → {invite, answered, bye_sent, bye_received, pbx_media} from SIPp's -trace_msg log."""
    calls: dict[str, dict] = {}
    parts = _BLOCK.split(text)
    for stamp, body in zip(parts[1::2], parts[2::2]):
        try:
            at = datetime.strptime(stamp.replace("\t", " ").strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        sent = "message sent" in body.split("\n", 2)[1] if "\n" in body else False
        lines = [ln.strip() for ln in body.strip().splitlines()]
        first = next((ln for ln in lines[1:] if ln), "")
        call_id = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("call-id:")), None)
        if not call_id:
            continue
        call = calls.setdefault(call_id, {})
        cseq = next((ln for ln in lines if ln.lower().startswith("cseq:")), "")
        if first.startswith("INVITE") and sent:
            call.setdefault("invite", at)
        elif first.startswith("SIP/2.0 200") and "INVITE" in cseq and not sent:
            call.setdefault("answered", at)
            port = next((ln.split()[1] for ln in lines if ln.startswith("m=audio")), "")
            address = next((ln.split()[-1] for ln in lines if ln.startswith("c=IN")), "")
            if port.isdigit() and address:
                call["pbx_media"] = (address, int(port))  # where the PBX sends the call's audio from
        elif first.startswith("SIP/2.0 ") and "INVITE" in cseq and not sent and first[8:11] >= "300":
            call.setdefault("failed", first[8:].strip())
        elif first.startswith("BYE"):
            call.setdefault("bye_sent" if sent else "bye_received", at)
    return calls


@dataclass
class CallReport:
    call_id: str
    answered_after: float | None
    hung_up_by: str  # "caller" (us), "pbx", or "" when the call never ended properly
    duration: float | None
    heard: list[tuple[float, float]] = field(default_factory=list)
    failed: str | None = None

    def as_dict(self) -> dict:
        return {"call_id": self.call_id, "answered_after": self.answered_after, "hung_up_by": self.hung_up_by,
                "duration": self.duration, "heard": self.heard, "failed": self.failed}


def reports(calls: dict[str, dict], packets: list[tuple[float, tuple[str, int], float]]) -> list[CallReport]:
    # by source port: a PBX whose RTP sockets bind every address (Asterisk) sends from the port
    # its SDP named but, on one machine, not always from the address it named
    by_port: dict[int, list[tuple[float, float]]] = {}
    for at, (_address, port), level in packets:
        by_port.setdefault(port, []).append((at, level))
    out = []
    for call_id, c in calls.items():
        if "invite" not in c:
            continue
        answered = c.get("answered")
        end = c.get("bye_sent") or c.get("bye_received")
        who = "caller" if "bye_sent" in c else "pbx" if "bye_received" in c else ""
        audio = by_port.get(c.get("pbx_media", ("", -1))[1], [])
        # SIPp stamps a message when its loop gets to it, which can lag the wire by a second
        # under load; the PBX cannot send audio before it answers, so its first packet bounds it
        since = min([answered, *(at for at, _ in audio)]) if answered else None
        heard = heard_segments(audio, since) if since is not None else []
        out.append(CallReport(call_id, round(answered - c["invite"], 3) if answered else None, who,
                              round(end - answered, 2) if (answered and end) else None, heard, c.get("failed")))
    return out


def summary(items: list[CallReport], exit_code: int) -> dict:
    answered = [r.answered_after for r in items if r.answered_after is not None]
    return {
        "calls": len(items), "answered": len(answered), "failed": len(items) - len(answered),
        "answer_p50_s": round(statistics.median(answered), 3) if answered else None,
        "answer_max_s": round(max(answered), 3) if answered else None,
        "hung_up_by_caller": sum(r.hung_up_by == "caller" for r in items),
        "hung_up_by_pbx": sum(r.hung_up_by == "pbx" for r in items),
        "heard_audio": sum(bool(r.heard) for r in items),
        "sipp_exit": exit_code,
    }


# -- the command ----------------------------------------------------------------------------------------

def local_address(target: str) -> str:
    """The address this machine reaches `target` from (SIPp binds it and puts it in the SDP)."""
    from callflow.pbx.sipp import pbx_instance

    host = target.rsplit(":", 1)[0]
    if host.startswith("127."):
        return pbx_instance().address if pbx_instance().sip_target.startswith(host + ":") else "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 5060))  # no packet is sent: the kernel picks the route
        return probe.getsockname()[0]


def default_target() -> str:
    """The sandbox instance of $CALLFLOW_PBX_INSTANCE (127.0.0.1:5060 for the users' instance 0)."""
    from callflow.pbx.sipp import pbx_instance

    return os.environ.get("CALLFLOW_TEST_CALL_TARGET") or pbx_instance().sip_target


@dataclass
class TestCall:
    target: str = field(default_factory=default_target)
    number: str = "3000"
    scenario: str = "seed-example"
    caller_number: str = "0612345678"
    calls: int = 1
    concurrent: int = 1
    rate: float = 1.0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callflow-test-call-")))

    async def run(self) -> dict:
        scenario = build_scenario(self.scenario, self.workdir)
        xml = scenario.caller.xml(caller_number=self.caller_number, hang_up=scenario.hang_up)
        listener = RtpListener()
        listener.start()
        timeout = scenario.max_seconds + int(self.calls / max(self.rate, 0.01)) + 30
        try:
            run: SippRun = await start_sipp(xml, name=f"test-call-{self.scenario}", service=self.number,
                                            remote=self.target, calls=self.calls, concurrent=self.concurrent,
                                            rate=self.rate, timeout_s=timeout, extra=["-trace_msg"],
                                            local=local_address(self.target))
            try:
                code = await asyncio.wait_for(run.proc.wait(), timeout + 10)
            except asyncio.TimeoutError:
                run.kill()
                code = await run.proc.wait()
        finally:
            listener.stop()
        text = "".join(p.read_text(errors="replace") for p in run.workdir.glob("*_messages.log"))
        items = reports(parse_messages(text), listener.packets)
        result = {"scenario": self.scenario, "target": self.target, "number": self.number,
                  "expect": scenario.expect, "summary": summary(items, code),
                  "calls": [r.as_dict() for r in items], "workdir": str(run.workdir)}
        if listener.error:
            result["audio_note"] = listener.error
        if code != 0:
            result["sipp_errors"] = run.errors()[-2000:]
        return result


def format_report(result: dict) -> str:
    s = result["summary"]
    lines = [f"test-call {result['scenario']} → {result['number']}@{result['target']}",
             f"  a correct hotline: {result['expect']}",
             f"  calls {s['calls']}: answered {s['answered']}, failed {s['failed']}; answer p50 {s['answer_p50_s']} s, "
             f"max {s['answer_max_s']} s; hung up by the caller {s['hung_up_by_caller']}, by the PBX {s['hung_up_by_pbx']}"]
    for call in result["calls"][:20]:
        heard = ", ".join(f"{a:.1f}–{b:.1f}" for a, b in call["heard"]) or "nothing"
        lines.append(f"  • {call['call_id'][:24]}: answered after {call['answered_after']} s, "
                     f"{call['duration']} s long, hung up by {call['hung_up_by'] or '?'}; heard (s) {heard}"
                     + (f"; failed {call['failed']}" if call["failed"] else ""))
    if result.get("audio_note"):
        lines.append(f"  note: {result['audio_note']}")
    if result.get("sipp_errors"):
        lines.append(f"  SIPp reported errors (exit {s['sipp_exit']}): see {result['workdir']}")
    return "\n".join(lines)


def register_cli(sub) -> None:
    p = sub.add_parser("test-call", help="place SIPp test calls of a scenario against any PBX and report")
    p.add_argument("--target", default=None,
                   help="the PBX's SIP address host:port (default: the sandbox PBX, $CALLFLOW_PBX_INSTANCE)")
    p.add_argument("--number", default="3000", help="the number to call (the hotline's extension)")
    p.add_argument("--scenario", choices=SCENARIOS, default="seed-example")
    p.add_argument("--caller-number", default="0612345678")
    p.add_argument("--calls", type=int, default=1, help="calls in all (load profile)")
    p.add_argument("--concurrent", type=int, default=1, help="at most this many at once")
    p.add_argument("--rate", type=float, default=1.0, help="new calls per second")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    if shutil.which("sipp") is None:
        print("callflow test-call: SIPp is not installed (apt-get install -y sip-tester)")
        return 1
    if args.calls < 1 or args.concurrent < 1 or args.rate <= 0:
        print("callflow test-call: --calls and --concurrent are whole numbers >= 1, --rate a number > 0")
        return 2
    tc = TestCall(target=args.target or default_target(), number=args.number, scenario=args.scenario, caller_number=args.caller_number,
                  calls=args.calls, concurrent=args.concurrent, rate=args.rate)
    try:
        result = asyncio.run(tc.run())
    except RuntimeError as exc:
        print(f"callflow test-call: {exc}")
        return 1
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    s = result["summary"]
    return 0 if s["sipp_exit"] == 0 and s["answered"] == s["calls"] == args.calls else 1
TestCall.__test__ = False  # a product class, not a pytest test
