"""`callflow bench pbx`: what callflow costs the PBX, against a plain dialplan.

The same SIPp load (concurrent callers streaming real audio) goes through
(a) the reference flow of dialplans/bench.conf (Answer, TALK_DETECT, Playback,
WaitForSilence, Read — native cost) and (b) callflow's silent-call flow. We
read Asterisk's and the controller's CPU time from /proc before and after and
report CPU per call and the capacity ratio (reference CPU per call / ours).

Mixes: "realistic" (95 % of callers speak within 3 s, 5 % stay silent) and
"silent" (every caller stays silent: the media fork and classifier run the
longest). Loopback only; the run is bounded by its call count.

Throw-away arms (issue 15, `--arms`): the media paths Asterisk 22 offers, each
in a minimal Stasis app (callflow/pbx/bench_probe.py) beside the reference in
the same run; `--rounds` repeats the whole set, interleaved, so a busy machine
moves every arm alike and the spread between rounds is visible.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from callflow import prompts
from callflow.config import PromptsConfig
from callflow.pbx.bench_probe import OPTIONS as PROBE_OPTIONS
from callflow.pbx.sandbox import Sandbox
from callflow.pbx.sipp import Caller, start_sipp

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: the product (`callflow run`) on a given media path; `callflow` runs with the configured default
MEDIA_ARMS = {"callflow-snoop": "snoop", "callflow-audiosocket": "audiosocket"}
CONTROLLER_ARMS = ("callflow", "baseline", "fastagi", *MEDIA_ARMS)


@dataclass
class ArmResult:
    arm: str
    mix: str
    calls: int
    failed_calls: int
    wall_seconds: float
    asterisk_cpu_s: float
    controller_cpu_s: float
    round: int = 1
    load_average: float = 0.0  # 1-minute load average at the arm's end: how busy the machine was

    @property
    def pbx_cpu_per_call(self) -> float:
        return self.asterisk_cpu_s / max(self.calls, 1)

    @property
    def total_cpu_per_call(self) -> float:
        return (self.asterisk_cpu_s + self.controller_cpu_s) / max(self.calls, 1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def make_audio(sandbox: Sandbox, workdir: Path, length: float) -> dict[str, Path]:
    """Speech from Asterisk's own French recordings (after 0.5–3 s), and near-silence."""
    sounds = sandbox.root / "usr/share/asterisk/sounds/fr_CA_f_June"
    speech_src = [sounds / f"{name}.gsm" for name in ("conf-adminmenu", "vm-intro", "conf-getpin", "agent-pass")]
    speech_src = [str(p) for p in speech_src if p.exists()]
    out = {}
    out["speaker"] = workdir / "speaker.ulaw"
    subprocess.run(["sox", *speech_src, "-r", "8000", "-c", "1", "-t", "ul", str(out["speaker"]),
                    "pad", "1.5", "0", "repeat", "6", "trim", "0", str(length)], check=True, capture_output=True)
    out["silent"] = workdir / "silent.ulaw"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(out["silent"]), "synth", str(length),
                    "pinknoise", "vol", "0.002"], check=True, capture_output=True)
    return out


async def run_arm(arm: str, mix: str, *, concurrent: int, total: int, length: float, sandbox: Sandbox,
                  audio: dict[str, Path]) -> ArmResult:
    asterisk_pid = int(sandbox.pid_file.read_text())
    controller = None
    if arm in PROBE_OPTIONS:
        creds = sandbox.credentials()
        env = dict(os.environ, BENCH_ARI_USER=creds["ari_user"], BENCH_ARI_PASSWORD=creds["ari_password"])
        controller = subprocess.Popen([sys.executable, "-m", "callflow.pbx.bench_probe", "--option", arm,
                                       "--ari-url", sandbox.ari_url, "--host", sandbox.instance.address],
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if controller.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {arm} probe did not start")
    elif arm in CONTROLLER_ARMS:
        # hand speakers to the same bench-hold as the reference (not to the agent desk's music and hunting)
        env = dict(os.environ, CALLFLOW_LOG_LEVEL="WARNING", CALLFLOW_ROUTING_AGENTS_CONTEXT="bench-hold",
                   CALLFLOW_ROUTING_AGENTS_VIA="dialplan",
                   CALLFLOW_STORE_DATABASE=str(Path(tempfile.mkdtemp()) / "bench.db"), CALLFLOW_HTTP_PORT="18090")
        if arm == "baseline":  # the controller of another checkout (before/after a change, same run)
            env["PYTHONPATH"] = os.environ["CALLFLOW_BENCH_BASELINE"]
        if arm in MEDIA_ARMS:  # the product on one media path (issue 15): media.path
            env["CALLFLOW_MEDIA_PATH"] = MEDIA_ARMS[arm]
        controller = subprocess.Popen([sys.executable, "-m", "callflow.cli", "run"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await _wait_healthy(18090)
        except RuntimeError:
            controller.terminate()  # never left running behind a failed bench
            controller.wait(10)
            raise
    user = "bench-reference" if arm == "reference" else "0612345678" if arm in CONTROLLER_ARMS else "bench-probe"
    service = "agi" if arm == "fastagi" else "3000"  # fastagi: the same flow from AGI(agi://…) (dialplans/agi.conf)
    share = {"realistic": 0.95, "silent": 0.0}[mix]
    groups = [("speaker", round(concurrent * share), round(total * share)),
              ("silent", concurrent - round(concurrent * share), total - round(total * share))]
    a0 = cpu_seconds(asterisk_pid)
    c0 = cpu_seconds(controller.pid) if controller else 0.0
    t0 = time.monotonic()
    runs = []
    for kind, conc, count in groups:
        if count == 0:
            continue
        xml = Caller().audio(audio[kind]).pause(length).xml(caller_number=user)
        runs.append(await start_sipp(xml, name=f"bench-{arm}-{kind}", calls=count, concurrent=conc, service=service,
                                     rate=max(conc / length, 1.0), timeout_s=int(length * total / max(conc, 1) + 120)))
    codes = [await run.wait(length * total / concurrent + 300) for run in runs]
    wall = time.monotonic() - t0
    a1 = cpu_seconds(asterisk_pid)
    c1 = cpu_seconds(controller.pid) if controller else 0.0
    load = os.getloadavg()[0]
    if controller and controller.stdin:  # a probe: ends when its stdin closes, says what its sink received
        controller.stdin.close()
        received = controller.stdout.readline().strip()
        controller.wait(10)
        if not received or json.loads(received)["packets"] == 0 and arm not in ("stasis", "stasis-filtered", "talkdetect"):
            raise RuntimeError(f"the {arm} arm's sink received no audio: the arm measured nothing")
    elif controller:
        controller.terminate()  # SIGTERM drains: callers still there go to people first (slow on a loaded box)
        try:
            controller.wait(60)
        except subprocess.TimeoutExpired:
            controller.kill()
            controller.wait(10)
    counts = [_failed_calls(run.workdir, count) for run, (_, _, count) in zip(runs, [g for g in groups if g[2]])]
    failed = -1 if -1 in counts else sum(counts)
    if any(codes) and not failed:
        failed = -1  # SIPp failed without per-call counts: say so rather than report a clean run
    return ArmResult(arm, mix, total, failed, round(wall, 1), round(a1 - a0, 2), round(c1 - c0, 2),
                     load_average=round(load, 1))


def _failed_calls(workdir: Path, calls: int) -> int:
    """Calls that did not complete: SIPp's last cumulative count of successful calls against the calls
    placed (the screen's first column is the last period's, and a call cut by the run's timeout is
    neither "successful" nor "failed" there). -1 when SIPp printed no statistics."""
    text = (workdir / "sipp.out").read_text(errors="replace")
    successful = None
    for line in text.splitlines():
        if line.strip().startswith("Successful call"):
            successful = int(line.rsplit("|", 1)[-1].strip() or 0)
    return -1 if successful is None else calls - successful


async def _wait_healthy(port: int, timeout: float = 90.0) -> None:  # imports alone take ~15 s on a loaded 2-core box
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the controller did not become healthy")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(concurrent: int, total: int, length: float, mixes: list[str], arms: tuple[str, ...] = ("reference", "callflow"),
        rounds: int = 1) -> list[ArmResult]:
    sandbox = Sandbox()
    # one user of an instance at a time: the lock the integration tests take for theirs
    # (tests/integration/conftest.py), taken before `up` reinstalls the config under anyone's feet;
    # never one lock for all instances (a bench on one instance must not wait for another's)
    lock = open(sandbox.state_dir / f"integration-{sandbox.instance.number}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"bench pbx: instance {sandbox.instance.number} is in use (its lock "
                         f"{lock.name} is held): pick another with CALLFLOW_PBX_INSTANCE") from None
    # like `pbx up`: `up` installs this checkout's prompts into the root the instances share,
    # and removes the ones it does not have (unrendered, that would be all of them)
    prompts.render(PromptsConfig().agent_name)
    sandbox.up()
    results = []
    with lock, tempfile.TemporaryDirectory() as tmp:
        audio = make_audio(sandbox, Path(tmp), length + 5)
        for n in range(1, rounds + 1):
            for mix in mixes:
                for arm in arms:
                    result = asyncio.run(run_arm(arm, mix, concurrent=concurrent, total=total, length=length,
                                                 sandbox=sandbox, audio=audio))
                    result.round = n
                    results.append(result)
                    print(json.dumps(asdict(result)), file=sys.stderr, flush=True)  # progress of a long run
                    sandbox.cli("channel request hangup all", check=False)
                    time.sleep(2)
    return results


def report(results: list[ArmResult]) -> str:
    lines = [f"machine: {machine()}", "",
             "| round | mix | arm | calls | failed | load avg | Asterisk CPU s | controller CPU s | PBX CPU ms/call "
             "| total CPU ms/call |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.round} | {r.mix} | {r.arm} | {r.calls} | {r.failed_calls} | {r.load_average} "
                     f"| {r.asterisk_cpu_s} | {r.controller_cpu_s} "
                     f"| {r.pbx_cpu_per_call * 1000:.0f} | {r.total_cpu_per_call * 1000:.0f} |")
    lines.append("")
    lines.append("Capacity vs the reference of the same round (reference PBX CPU per call / the arm's), "
                 "min–max over rounds:")
    for mix, arm, pbx, total in capacity_ratios(results):
        lines.append(f"- {mix} / {arm}: PBX CPU only {_span(pbx)}; PBX + controller {_span(total)}")
    return "\n".join(lines)


def capacity_ratios(results: list[ArmResult]) -> list[tuple[str, str, list[float], list[float]]]:
    """Each arm against the reference measured in the same round and mix (never across rounds:
    the machine's load moves both)."""
    refs = {(r.round, r.mix): r for r in results if r.arm == "reference"}
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for r in results:
        ref = refs.get((r.round, r.mix))
        if r.arm == "reference" or ref is None:
            continue
        pbx, total = out.setdefault((r.mix, r.arm), ([], []))
        pbx.append(ref.pbx_cpu_per_call / max(r.pbx_cpu_per_call, 1e-9))
        total.append(ref.pbx_cpu_per_call / max(r.total_cpu_per_call, 1e-9))
    return [(mix, arm, pbx, total) for (mix, arm), (pbx, total) in out.items()]


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}–{high:.0%}"


def register_bench(bench_sub) -> None:
    p = bench_sub.add_parser("pbx", help="PBX cost: plain-dialplan reference vs callflow, under SIPp load")
    p.add_argument("--concurrent", type=int, default=100)
    p.add_argument("--calls", type=int, default=200, help="calls per arm")
    p.add_argument("--length", type=float, default=20.0, help="seconds each caller stays")
    p.add_argument("--mix", choices=["realistic", "silent", "both"], default="both")
    p.add_argument("--arms", default="reference,callflow",
                   help="comma-separated: reference, callflow, callflow-snoop / callflow-audiosocket (the controller on "
                        "that media.path), fastagi, baseline (the controller of the checkout in "
                        "$CALLFLOW_BENCH_BASELINE), and the throw-away media arms "
                        f"({', '.join(PROBE_OPTIONS)})")
    p.add_argument("--rounds", type=int, default=1, help="repeat every arm, interleaved, to show the spread")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fastagi", action="store_true", help="also run the flow through FastAGI (AGI(agi://…))")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    mixes = ["realistic", "silent"] if args.mix == "both" else [args.mix]
    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    if args.fastagi and "fastagi" not in arms:
        arms += ("fastagi",)
    if "baseline" in arms and not os.environ.get("CALLFLOW_BENCH_BASELINE"):
        raise SystemExit("bench pbx --arms baseline: set CALLFLOW_BENCH_BASELINE to the checkout whose controller it runs")
    unknown = set(arms) - {"reference", *CONTROLLER_ARMS, *PROBE_OPTIONS}
    if unknown:
        raise SystemExit(f"bench pbx --arms: unknown arm(s) {', '.join(sorted(unknown))}; "
                         f"expected reference, callflow, baseline, fastagi, {', '.join(PROBE_OPTIONS)}, "
                         f"{', '.join(MEDIA_ARMS)}")
    results = run(args.concurrent, args.calls, args.length, mixes, arms, args.rounds)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(report(results))
    return 0
