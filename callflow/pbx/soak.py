"""`callflow bench soak --minutes N --concurrent C`: a long SIPp mix against `callflow run`.

What a long run shows and a test does not: channels or bridges left on the PBX, the
controller's memory growing, calls without a closed record. The mix goes through the
product's real flows (issue 11, item 7):

- speakers (half): talk over the greeting, go to an agent on a desk phone (2001–2003, SIPp
  phones that answer, talk a few seconds and key the firm closing *0), and get our BYE after
  the closing words — or, still holding for a free agent after 85 s, hang up on their own;
- breathers (a quarter): breathe through the IVR and hang up on their own after 40 s;
- dead lines (a quarter): digital silence, hung up by us after the seed's cas C (20–30 s,
  the final warning, 10 s).

Every `sample_every` seconds: the controller's resident memory, its calls in progress,
Asterisk's channels and bridges (ARI). At the end, once the callers are done: channels and
bridges left, records vs calls placed, records not closed, premature hang-ups by the audit
(callflow/store/audit.py). Runs on the PBX instance of $CALLFLOW_PBX_INSTANCE (0: the users').
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from dataclasses import asdict, dataclass, field
from pathlib import Path

from callflow.pbx.bench import machine
from callflow.pbx.sandbox import Instance, Sandbox
from callflow.pbx.sipp import Caller, SippRun, dtmf_pcap, register, start_sipp
from callflow.pbx.sipp import _BYE_FROM_US, _UAS_ANSWER, _UAS_HEAD, WAIT_FOR_BYE, _uas_reply

# seconds each kind of caller takes (for the number of calls that fills the run)
SPEAKER_SECONDS = 25.0
BREATHER_SECONDS = 40.0
DEAD_LINE_SECONDS = 75.0
AGENTS = ("2001", "2002", "2003")


@dataclass
class Sample:
    at: float  # seconds since the start
    controller_rss_kb: int
    calls_in_progress: int
    channels: int
    bridges: int


@dataclass
class SoakResult:
    minutes: float
    concurrent: int
    calls_placed: int
    calls_failed: int  # SIPp's count: a caller that did not get what its script expects (e.g. our BYE too early)
    records: int
    records_not_closed: int
    premature_hangups: int
    channels_left: list[str]
    bridges_left: list[str]
    rss_start_kb: int
    rss_peak_kb: int
    rss_end_kb: int
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> str:
        growth = self.rss_end_kb - self.rss_start_kb
        return (f"soak {self.minutes:g} min, {self.concurrent} concurrent: {self.calls_placed} calls "
                f"({self.calls_failed} failed), {self.records} records ({self.records_not_closed} not closed), "
                f"{self.premature_hangups} premature hang-ups, {len(self.channels_left)} channels and "
                f"{len(self.bridges_left)} bridges left, controller RSS {self.rss_start_kb / 1024:.0f} → peak "
                f"{self.rss_peak_kb / 1024:.0f} → end {self.rss_end_kb / 1024:.0f} MB ({growth / 1024:+.1f} MB)")


def _sipp_count(workdir: Path, row: str) -> int:
    """A cumulative counter of SIPp's final statistics screen ("Successful call", "Failed call")."""
    text = (workdir / "sipp.out").read_text(errors="replace")
    count = 0
    for line in text.splitlines():
        if line.strip().startswith(row):
            count = int(line.rsplit("|", 1)[-1].strip() or 0)  # cumulative column; the last screen is the final one
    return count


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Ari:
    def __init__(self, sandbox: Sandbox) -> None:
        creds = sandbox.credentials()
        self.url = sandbox.ari_url
        self.token = b64encode(f"{creds['ari_user']}:{creds['ari_password']}".encode()).decode()

    def get(self, path: str):
        import urllib.request

        req = urllib.request.Request(f"{self.url}/{path}")
        req.add_header("Authorization", "Basic " + self.token)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")


def _agent_phone_xml(workdir: Path, talk: Path) -> str:
    """A desk phone that answers every call, talks 6 s, keys *0 (the firm closing) and waits for our BYE."""
    keys = "".join(f'<nop><action><exec play_pcap_audio="{dtmf_pcap(k, workdir / f"agent-{i}.pcap")}"/></action></nop>'
                   f'<pause milliseconds="400"/>' for i, k in enumerate("*0"))
    return (_UAS_HEAD + '<pause milliseconds="1000"/>' + _UAS_ANSWER
            + f'<nop><action><exec rtp_stream="{talk},-1,0"/></action></nop><pause milliseconds="6000"/>' + keys
            + WAIT_FOR_BYE)


def _speaker_xml(audio: Path, wait_for_bye: float) -> str:
    """Talks, then waits up to `wait_for_bye` s for our BYE (the agent's firm closing); a speaker still
    holding for a free agent after that hangs up on their own, as a real caller would."""
    head = Caller().audio(audio).xml(hang_up=False, answer_within=30).split('  <recv request="BYE"')[0]
    ours = _BYE_FROM_US.replace("</scenario>", "").strip("\n")
    return (head + f'  <recv request="BYE" timeout="{int(wait_for_bye * 1000)}" ontimeout="1"/>\n'
            + _uas_reply("200 OK", new_tag=False).replace("  <send>", '  <send next="2">', 1)
            + '  <label id="1"/>\n' + ours + '\n  <label id="2"/>\n</scenario>\n')


def _audio(sandbox: Sandbox, workdir: Path) -> dict[str, Path]:
    out = {"speech": workdir / "speech.ulaw", "breathing": workdir / "breathing.ulaw", "silence": workdir / "silence.ulaw",
           "tone": workdir / "tone.ulaw"}
    sounds = sandbox.root / "usr/share/asterisk/sounds/fr_CA_f_June"
    speech = [str(p) for p in (sounds / "vm-intro.gsm", sounds / "conf-getpin.gsm") if p.exists()]
    subprocess.run(["sox", *speech, "-r", "8000", "-c", "1", "-t", "ul", str(out["speech"]), "pad", "0.5", "0",
                    "repeat", "3", "trim", "0", "60"], check=True, capture_output=True)
    # a calm breather: pink noise shaped by a slow 0.3 Hz swell, quiet
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(out["breathing"]), "synth", "60", "pinknoise",
                    "tremolo", "0.3", "90", "vol", "0.05"], check=True, capture_output=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(out["silence"]), "trim", "0", "120"],
                   check=True, capture_output=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(out["tone"]), "synth", "60", "sine", "440",
                    "vol", "0.3"], check=True, capture_output=True)
    return out


async def soak(minutes: float, concurrent: int, *, sample_every: float = 10.0, drain: float = 90.0,
               log=print) -> SoakResult:
    instance = Instance.from_env()
    sandbox = Sandbox(instance=instance)
    await asyncio.to_thread(sandbox.up)
    ari = _Ari(sandbox)
    # what was on the PBX before us (a users' PBX has calls of its own) is not ours to count as left
    before = ({c["id"] for c in ari.get("channels")}, {b["id"] for b in ari.get("bridges")})
    workdir = Path(tempfile.mkdtemp(prefix="callflow-soak-"))
    audio = await asyncio.to_thread(_audio, sandbox, workdir)
    db = workdir / "soak.db"
    http_port = _free_port()
    env = dict(os.environ, CALLFLOW_LOG_LEVEL="WARNING", CALLFLOW_STORE_DATABASE=str(db),
               CALLFLOW_HTTP_PORT=str(http_port), CALLFLOW_SMS_LOG_PATH=str(workdir / "sms.log"),
               CALLFLOW_PBX_INSTANCE=str(instance.number))
    controller = subprocess.Popen([sys.executable, "-m", "callflow.cli", "run"], env=env,
                                  stdout=open(workdir / "controller.log", "wb"), stderr=subprocess.STDOUT)
    phones: list[SippRun] = []
    callers: list[SippRun] = []
    try:
        await _wait_healthy(http_port, controller)
        password = sandbox.credentials()["sip_password"]
        for ext in AGENTS:
            from callflow.pbx.sipp import next_ports

            sip_port, media_port = next_ports()
            await register(ext, password, sip_port, expires=3600)
            phones.append(await start_sipp(_agent_phone_xml(workdir, audio["tone"]), name=f"soak-agent-{ext}",
                                           sip_port=sip_port, media_port=media_port, uas=True, calls=100000,
                                           concurrent=max(concurrent, 1), timeout_s=int(minutes * 60 + 600)))
        seconds = minutes * 60
        speakers = max(1, concurrent // 2)
        breathers = max(1, concurrent // 4)
        dead = max(1, concurrent - speakers - breathers)
        plan = [
            ("speakers", _speaker_xml(audio["speech"], SPEAKER_SECONDS + 60), speakers, SPEAKER_SECONDS),
            ("breathers", Caller().audio(audio["breathing"]).pause(BREATHER_SECONDS).xml(answer_within=30),
             breathers, BREATHER_SECONDS),
            ("dead_lines", Caller().audio(audio["silence"]).xml(hang_up=False, answer_within=30), dead, DEAD_LINE_SECONDS),
        ]
        t0 = time.monotonic()
        for name, xml, conc, length in plan:
            callers.append(await start_sipp(xml, name=f"soak-{name}", calls=10_000_000, concurrent=conc,
                                            rate=max(conc / length, 0.2), timeout_s=int(seconds + 900)))
        samples: list[Sample] = []
        stopping = False
        while any(c.proc.returncode is None for c in callers) and time.monotonic() - t0 < seconds + 900:
            if not stopping and time.monotonic() - t0 >= seconds:
                stopping = True  # SIGUSR1: SIPp places no new call and exits once its calls have ended
                for c in callers:
                    if c.proc.returncode is None:
                        c.proc.send_signal(signal.SIGUSR1)
            samples.append(await _sample(t0, controller.pid, http_port, ari))
            log(json.dumps(asdict(samples[-1])))
            await asyncio.sleep(sample_every)
        for c in callers:
            await c.wait(60)
        placed = sum(_sipp_count(c.workdir, "Successful call") + _sipp_count(c.workdir, "Failed call") for c in callers)
        failed = sum(_sipp_count(c.workdir, "Failed call") for c in callers)
        # the last calls' cleanup (and a late BYE) settle before we look for leftovers
        channels, bridges = await _settle(ari, drain, before)
        samples.append(await _sample(t0, controller.pid, http_port, ari))
        from callflow.store.audit import audit_call
        from callflow.store.records import Records

        records = await Records.open(db)
        try:
            calls = await records.calls_with_details()
        finally:
            await records.close()
        rss = [s.controller_rss_kb for s in samples]
        return SoakResult(minutes, concurrent, placed, failed, len(calls),
                          sum(1 for c in calls if not c.get("ended_at")),
                          sum(1 for c in calls if audit_call(c).premature), channels, bridges,
                          rss[0], max(rss), rss[-1], samples)
    finally:
        for run in callers + phones:
            run.kill()
        controller.terminate()
        try:
            controller.wait(30)
        except subprocess.TimeoutExpired:
            controller.kill()
        for ext, phone in zip(AGENTS, phones):  # unregister: no later call rings a phone that is gone
            from callflow.pbx.sipp import registration_xml

            run = await start_sipp(registration_xml(ext, sandbox.credentials()["sip_password"], expires=0),
                                   name=f"soak-unregister-{ext}")
            await run.wait(15)


async def _sample(t0: float, pid: int, http_port: int, ari: _Ari) -> Sample:
    import urllib.request

    def read() -> Sample:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=3) as resp:
                in_progress = json.loads(resp.read()).get("calls_in_progress", -1)
        except OSError:
            in_progress = -1
        return Sample(round(time.monotonic() - t0, 1), _rss_kb(pid), in_progress, len(ari.get("channels")),
                      len(ari.get("bridges")))

    return await asyncio.to_thread(read)


async def _settle(ari: _Ari, timeout: float, before: tuple[set[str], set[str]]) -> tuple[list[str], list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        channels = [c["name"] for c in await asyncio.to_thread(ari.get, "channels") if c["id"] not in before[0]]
        bridges = [f"{b['id']}({len(b['channels'])})" for b in await asyncio.to_thread(ari.get, "bridges")
                   if b["id"] not in before[1]]
        if (not channels and not bridges) or time.monotonic() > deadline:
            return channels, bridges
        await asyncio.sleep(1)


async def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the controller exited at start ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError("the controller did not become healthy")


def register_bench(bench_sub) -> None:
    p = bench_sub.add_parser("soak", help="long SIPp mix of the flows: leaks, controller memory, records vs calls")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--concurrent", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    if args.minutes <= 0 or args.concurrent < 1:
        print("callflow bench soak: --minutes must be > 0 and --concurrent >= 1", file=sys.stderr)
        return 2
    result = asyncio.run(soak(args.minutes, args.concurrent, log=lambda line: print(line, file=sys.stderr)))
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(f"machine: {machine()}")
        print(result.summary())
    clean = not result.channels_left and not result.bridges_left and result.records_not_closed == 0
    return 0 if clean and result.premature_hangups == 0 else 1
