"""Fixtures for tests against the real sandbox Asterisk, driven by real SIPp peers.

Nothing here is skipped: an integration test that cannot run (not root, no
Asterisk) fails, and says why.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from callflow.pbx.sipp import SippRun, answering_phone_xml, next_ports, register, registration_xml, start_sipp  # noqa: E402

from callflow import prompts  # noqa: E402
from callflow.pbx.sandbox import Instance, Sandbox  # noqa: E402

pytestmark = pytest.mark.integration


def test_instance() -> Instance:
    """This test process's own sandbox Asterisk: CALLFLOW_TEST_INSTANCE_BASE (default 1) plus the
    pytest-xdist worker's number. Instance 0, the users' PBX, is never touched by the tests."""
    base = os.environ.get("CALLFLOW_TEST_INSTANCE_BASE", "1")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    try:
        number = int(base) + int(worker.removeprefix("gw"))
    except ValueError:
        pytest.fail(f"CALLFLOW_TEST_INSTANCE_BASE: expected a whole number >= 1 (got {base!r})")
    if number < 1:
        pytest.fail(f"CALLFLOW_TEST_INSTANCE_BASE: expected a whole number >= 1 (got {base!r}): instance 0 is the users' PBX")
    return Instance(number)


test_instance.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def pbx() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.fail("integration tests run the sandbox PBX and need root")
    instance = test_instance()
    # Every process this worker starts (controller, SIPp, the product's CLI) talks to this instance.
    os.environ["CALLFLOW_PBX_INSTANCE"] = str(instance.number)
    sandbox = Sandbox(instance=instance)
    sandbox.state_dir.mkdir(parents=True, exist_ok=True)
    # one test run at a time per instance (another run on this machine takes other instances)
    lock = open(sandbox.state_dir / f"integration-{instance.number}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pytest.fail(f"PBX instance {instance.number} is in use by another test run: "
                    "set CALLFLOW_TEST_INSTANCE_BASE to a free range (docs/testing.md)")
    was_running = sandbox.running()
    # the root and the rendered prompts: one worker at a time (the first builds, the others find them
    # done); each instance then starts beside the others — the shared sounds folder is copied file by
    # file atomically, and starting the six instances one after the other cost the last one ~1 minute
    with open(sandbox.state_dir / "pbx-setup.lock", "w") as setup_lock:
        fcntl.flock(setup_lock, fcntl.LOCK_EX)
        prompts.render("Camille")
        sandbox.ensure_built()
    sandbox.up()
    yield sandbox
    if not was_running:
        sandbox.down()
    lock.close()


def called_back_phone(pbx: Sandbox) -> tuple[int, str]:
    """A SIP port of this test's own for the SIPp phone that plays a called-back person, and the dial string
    (routing.callback_dial) that rings it there through the callbacks-test line.

    Not the line's fixed contact (@ADDR@:5091): Asterisk retransmits a BYE for 32 s to a phone that is gone,
    and a BYE meant for the previous test's killed phone on 5091 reached the next test's phone there, which
    aborted its call and never answered (seen in CI)."""
    port, _ = next_ports()
    return port, f"PJSIP/callbacks-test/sip:{{number}}@{pbx.instance.address}:{port}"


def emergency_test_line(pbx: Sandbox) -> tuple[int, str]:
    """A SIP port of this test's own for the SIPp line that stands in for 15/17/18/112, and the dial string
    (emergency.destination) that rings it there through the emergency-test endpoint. Not the endpoint's
    fixed contact (@ADDR@:5090), for the reason of `called_back_phone`: a BYE retransmitted to the previous
    test's killed line would reach this test's line."""
    port, _ = next_ports()
    return port, f"PJSIP/emergency-test/sip:operator@{pbx.instance.address}:{port}"


@pytest.fixture(autouse=True)
def clean_slate(pbx: Sandbox) -> Iterator[None]:
    """Every test starts and ends with no call on the PBX."""
    pbx.cli("channel request hangup all", check=False)
    yield
    pbx.cli("channel request hangup all", check=False)


class AsteriskLog:
    """Asterisk's file log, read from where it stood when the test began."""

    def __init__(self, path: Path):
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            return fh.read().decode(errors="replace")

    async def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.text().splitlines():
                if needle in line:
                    return line
            await asyncio.sleep(0.1)
        raise AssertionError(f"{needle!r} not in Asterisk's log within {timeout} s")


@pytest.fixture
def asterisk_log(pbx: Sandbox) -> AsteriskLog:
    return AsteriskLog(pbx.log_file)


class Ari:
    """A tiny synchronous ARI reader for assertions (the product's client is not under test here)."""

    def __init__(self, sandbox: Sandbox):
        creds = sandbox.credentials()
        self.url = sandbox.ari_url
        self.token = b64encode(f"{creds['ari_user']}:{creds['ari_password']}".encode()).decode()

    def get(self, path: str):
        req = urllib.request.Request(f"{self.url}/{path}")
        req.add_header("Authorization", "Basic " + self.token)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def app_channels(self, app: str = "callflow") -> list[str]:
        try:
            return list(self.get(f"applications/{app}").get("channel_ids", []))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # app not registered (controller down): list Stasis channels instead
                return [c["id"] for c in self.get("channels") if c.get("dialplan", {}).get("app_name") == "Stasis"]
            raise

    def channels(self) -> list[dict]:
        return self.get("channels")

    def bridges(self) -> list[dict]:
        return self.get("bridges")


async def open_app_socket(session, pbx: Sandbox, ari: Ari):
    """A websocket of ours that registers the `callflow` app on `pbx` (ARI's /events, as the controller does)."""
    return await session.ws_connect(pbx.ari_url.replace("http", "ws", 1) + "/events",
                                    params={"app": "callflow", "subscribeAll": "false"},
                                    headers={"Authorization": "Basic " + ari.token}, autoping=False)


async def without_our_app(pbx: Sandbox, ari: Ari) -> None:
    """No `callflow` app left registered by an earlier test. Asterisk 22 keeps the app of a controller killed
    while it was being written an event (« forcefully closed due to fatal write error », never « Deactivating »):
    a test about a controller that is *down* (Stasis() fails) would meet that app instead (the deadline of
    dialplans/hotline.conf then takes over: test_an_app_nobody_runs…). A socket of ours takes the app over
    and closes cleanly, which unregisters it."""
    import aiohttp

    def registered() -> bool:
        return any(a.get("name") == "callflow" for a in ari.get("applications"))

    if not registered():
        return
    async with aiohttp.ClientSession() as session:
        await (await open_app_socket(session, pbx, ari)).close()
    deadline = time.monotonic() + 10
    while registered():
        assert time.monotonic() < deadline, "the callflow app stayed registered after our socket closed"
        await asyncio.sleep(0.1)


@pytest.fixture
def ari(pbx: Sandbox) -> Ari:
    return Ari(pbx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dies_with_this_worker() -> None:
    """preexec_fn: the child gets SIGKILL if the pytest worker that started it dies (a crashed worker
    never runs its teardown; its controller kept the instance's FastAGI port and failed every later test)."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ControllerProcess:
    """`callflow run` as a real process, JSON logs captured."""

    env: dict[str, str]
    log_path: Path
    http_port: int
    emergency_port: int = 0  # where its emergency.destination rings (emergency_test_line); 0: not set, the line's own contact
    proc: subprocess.Popen | None = None
    starts: int = 0
    _logs: list[Path] = field(default_factory=list)

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        path = self.log_path.with_suffix(f".{self.starts}.log")
        self._logs.append(path)
        self.proc = subprocess.Popen([sys.executable, "-m", "callflow.cli", "run"], env=self.env,
                                     stdout=open(path, "wb"), stderr=subprocess.STDOUT,
                                     preexec_fn=dies_with_this_worker)
        if wait:
            self.wait_healthy()

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError):
            return 0, {}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not exposed")

    def wait_healthy(self, timeout: float = 60.0) -> None:  # imports alone took 12–17 s on a loaded 2-core box
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"controller exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if self.health()[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"controller not healthy within {timeout} s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    def events(self) -> list[dict]:
        found = []
        for line in self.output().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    async def wait_for_event(self, event: str, timeout: float = 10.0, **fields: object) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.events():
                if item.get("event") == event and all(item.get(k) == v for k, v in fields.items()):
                    return item
            await asyncio.sleep(0.1)
        raise AssertionError(f"controller never logged {event} {fields} within {timeout} s:\n{self.output()[-3000:]}")

    async def record(self, call_id: str, *, ended: bool = True, timeout: float = 15.0) -> dict:
        """The call's record in the controller's database (waits until the call is ended)."""
        from callflow.store.records import Records

        deadline = time.monotonic() + timeout
        while True:
            records = await Records.open(self.env["CALLFLOW_STORE_DATABASE"])
            try:
                call = await records.get_call(call_id)
            finally:
                await records.close()
            if call is not None and (not ended or call.get("ended_at")):
                return call
            if time.monotonic() > deadline:
                raise AssertionError(f"no {'ended ' if ended else ''}record for {call_id}: {call}")
            await asyncio.sleep(0.3)

    def sms_sent(self) -> list[dict]:
        path = Path(self.env["CALLFLOW_SMS_LOG_PATH"])
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def records_db(tmp_path: Path) -> Path:
    """The controller's database, one per test (tests run on parallel workers)."""
    return tmp_path / "callflow.db"


@pytest.fixture
def controller_process(pbx: Sandbox, tmp_path: Path, records_db: Path) -> Iterator[ControllerProcess]:
    port = free_port()
    emergency_port, emergency_dial = emergency_test_line(pbx)
    env = dict(os.environ)
    env.update({
        "CALLFLOW_LOG_FORMAT": "json",
        "CALLFLOW_HTTP_PORT": str(port),
        "CALLFLOW_EMERGENCY_DESTINATION": emergency_dial,
        "CALLFLOW_STORE_DATABASE": str(records_db),
        "CALLFLOW_SMS_LOG_PATH": str(tmp_path / "sms.log"),
        "CALLFLOW_ARI_PING_INTERVAL": "1.0",
    })
    ctl = ControllerProcess(env=env, log_path=tmp_path / "controller", http_port=port, emergency_port=emergency_port)
    yield ctl
    ctl.stop()


@pytest.fixture
def controller(controller_process: ControllerProcess) -> ControllerProcess:
    controller_process.start()
    return controller_process


@dataclass
class Phone:
    """A registered SIP desk phone played by SIPp (UAS)."""

    extension: str
    sip_port: int
    run: SippRun


@pytest.fixture
async def phones(pbx: Sandbox) -> AsyncIterator:
    """Start desk phones: `await phones("2001")` registers 2001 and answers its calls."""
    started: list[Phone] = []
    password = pbx.credentials()["sip_password"]

    async def start(extension: str, **behaviour: object) -> Phone:
        sip_port, media_port = next_ports()
        await register(extension, password, sip_port)
        run = await start_sipp(answering_phone_xml(**behaviour), name=f"phone-{extension}", sip_port=sip_port,
                               media_port=media_port, uas=True)
        phone = Phone(extension, sip_port, run)
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.run.kill()
        # unregister so the next test's calls do not ring a phone that is gone
        run = await start_sipp(registration_xml(phone.extension, password, expires=0),
                               name=f"unregister-{phone.extension}", sip_port=phone.sip_port)
        await run.wait(15)


async def unregister_desk_phones(pbx: Sandbox, *extensions: str) -> None:
    """Leave none of these desk phones registered (an earlier test on this instance may have left one):
    register from a fresh port, which replaces any old contact (pjsip.conf: max_contacts = 1,
    remove_existing), then unregister that contact."""
    password = pbx.credentials()["sip_password"]
    for extension in extensions:
        sip_port, _ = next_ports()
        await register(extension, password, sip_port)
        await register(extension, password, sip_port, expires=0)


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """Small caller audio made with sox for the SIPp callers."""
    out = Path(tempfile.mkdtemp(prefix="callflow-audio-"))
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(out / "silence.ulaw"), "trim", "0", "30"], check=True)
    return out


@pytest.fixture
async def in_process_controller(pbx: Sandbox, tmp_path: Path) -> AsyncIterator:
    """`await in_process_controller(flow)`: a Controller in this process running `flow` for each call."""
    from callflow import config
    from callflow.controller import Controller

    running: list[tuple[Controller, asyncio.Task]] = []

    async def start(flow) -> Controller:
        env = dict(os.environ)
        env.update({"CALLFLOW_HTTP_PORT": str(free_port()), "CALLFLOW_STORE_DATABASE": str(tmp_path / "callflow.db"),
                    "CALLFLOW_ARI_PING_INTERVAL": "1.0"})
        ctl = Controller(config.load(env=env), flow)
        task = asyncio.get_running_loop().create_task(ctl.run())
        running.append((ctl, task))
        deadline = time.monotonic() + 15
        while not (ctl.client.connected.is_set() and ctl.app_registered):
            if task.done():
                task.result()
            assert time.monotonic() < deadline, "in-process controller did not connect to ARI"
            await asyncio.sleep(0.05)
        return ctl

    yield start
    for _ctl, task in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL for this worker (tests/postgres_server.py: Debian's binaries, initdb in a temp folder)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from postgres_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()
