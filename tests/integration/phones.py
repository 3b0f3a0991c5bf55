"""Desk phones that press feature codes, the emergency test line, and an in-process controller
wired to the agents' desk (issue 6). Builds on sipp.py; fixtures are imported by the test modules.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from callflow.pbx.sipp import (  # noqa: E402
    WAIT_FOR_BYE,
    _UAS_ANSWER,
    _UAS_HEAD,
    SippRun,
    answering_phone_xml,
    dtmf_pcap,
    next_ports,
    register,
    registration_xml,
    start_sipp,
)

from conftest import emergency_test_line  # noqa: E402

from callflow import config as callflow_config  # noqa: E402
from callflow.agents.bridges import AriBridges  # noqa: E402
from callflow.agents.config import AgentsConfig, EmergencyConfig, EscalationConfig, FeatureCodes  # noqa: E402
from callflow.agents.desk import AgentDesk  # noqa: E402
from callflow.web.procedures_api import add_routes as add_procedures_routes  # noqa: E402
from callflow.agents.pool import AgentPool, AriPresence  # noqa: E402
from callflow.agents.speech import RuntimeSpeech  # noqa: E402
from callflow.controller import Controller  # noqa: E402
from callflow.core.recorder import MemoryRecorder  # noqa: E402
from callflow.agents.emergency import EmergencyBridge  # noqa: E402
from callflow.telephony.fake import FakeHandoffs  # noqa: E402
from callflow.web.agents_api import add_routes  # noqa: E402


def tone(path: Path, seconds: int = 60, freq: int = 440) -> Path:
    """A μ-law tone (something a bridge carries that is not silence)."""
    if not path.exists():
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(path), "synth", str(seconds), "sine",
                        str(freq), "vol", "0.3"], check=True)
    return path


@dataclass
class DeskPhoneScript:
    """What a desk phone (UAS) does once it has answered: stream audio, wait, key codes."""

    ring_seconds: float = 0.5
    talk_audio: str | None = None
    steps: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="deskphone-")))

    def pause(self, seconds: float) -> "DeskPhoneScript":
        self.steps.append(f'<pause milliseconds="{int(seconds * 1000)}"/>')
        return self

    def press(self, keys: str, gap: float = 0.4) -> "DeskPhoneScript":
        for i, key in enumerate(keys):
            pcap = dtmf_pcap(key, self.workdir / f"key-{time.monotonic_ns()}-{i}.pcap")
            self.steps.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
            self.steps.append(f'<pause milliseconds="{int(gap * 1000)}"/>')
        return self

    def xml(self) -> str:
        """Answers, plays its steps, then waits for our BYE (an unexpected message fails the scenario)."""
        media = f'<nop><action><exec rtp_stream="{self.talk_audio},-1,0"/></action></nop>' if self.talk_audio else ""
        ring = f'<pause milliseconds="{int(self.ring_seconds * 1000)}"/>'
        return _UAS_HEAD + ring + _UAS_ANSWER + media + "\n".join(self.steps) + WAIT_FOR_BYE


@dataclass
class DeskPhone:
    extension: str
    sip_port: int
    run: SippRun


@pytest.fixture
async def desk_phones(pbx) -> AsyncIterator:
    """`await desk_phones("2001", DeskPhoneScript(...).pause(3).press("*1"))`: a registered phone keying codes."""
    started: list[DeskPhone] = []
    password = pbx.credentials()["sip_password"]

    async def start(extension: str, script: DeskPhoneScript | None = None, **behaviour) -> DeskPhone:
        sip_port, media_port = next_ports()
        await register(extension, password, sip_port)
        xml = script.xml() if script is not None else answering_phone_xml(**behaviour)
        run = await start_sipp(xml, name=f"desk-{extension}", sip_port=sip_port, media_port=media_port, uas=True)
        phone = DeskPhone(extension, sip_port, run)
        started.append(phone)
        return phone

    yield start
    for phone in started:
        phone.run.kill()
        run = await start_sipp(registration_xml(phone.extension, password, expires=0),
                               name=f"unregister-{phone.extension}", sip_port=phone.sip_port)
        await run.wait(15)


async def emergency_line(port: int, *, reject_with: int | None = None, talk_audio: str | None = None,
                         ring_seconds: float = 0.5, calls: int = 1) -> SippRun:
    """The SIPp UAS standing in for 15/17/18/112 on `port` (the test's controller dials it there:
    conftest.emergency_test_line), `calls` calls, then it exits. A line started while an attempt is already
    ringing on its port may get that attempt's CANCEL as its first call (SIPp aborts it): with calls > 1 it
    still answers the next attempt, as a real line would."""
    _, media_port = next_ports()
    xml = answering_phone_xml(ring_seconds=ring_seconds, reject_with=reject_with, talk_audio=talk_audio)
    return await start_sipp(xml, name=f"emergency-{reject_with or 'answer'}", sip_port=port,
                            media_port=media_port, uas=True, calls=calls)


# -- an in-process controller whose flow hands calls to the desk --------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DeskEnv:
    controller: Controller
    desk: AgentDesk
    emergency: EmergencyBridge
    recorder: MemoryRecorder
    handoffs: FakeHandoffs
    http_port: int
    emergency_port: int  # where its emergency line rings (conftest.emergency_test_line)
    flow: object = None  # async (ctx, env) -> None, chosen by each test
    calls: list[str] = field(default_factory=list)

    async def api(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        """The agents' HTTP API of the in-process controller (same event loop: never a blocking client)."""
        import aiohttp

        url = f"http://127.0.0.1:{self.http_port}{path}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            if body is None:
                async with session.get(url) as resp:
                    return resp.status, await resp.json()
            async with session.post(url, json=body) as resp:
                return resp.status, await resp.json()

    def notes(self, call_id: str) -> list[tuple[float, str, str]]:
        return list(self.recorder.calls[call_id].actions)

    def kinds(self, call_id: str) -> list[str]:
        return [k for _, k, _ in self.notes(call_id)]

    def first(self, call_id: str, kind: str, contains: str = "") -> float | None:
        for at, k, detail in self.notes(call_id):
            if k == kind and contains in detail:
                return at
        return None

    async def call_with(self, kind: str, contains: str = "", timeout: float = 30.0) -> str:
        """The first call whose record gets this note (robust to a duplicated INVITE making two calls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call_id in list(self.calls):
                if self.first(call_id, kind, contains) is not None:
                    return call_id
            await asyncio.sleep(0.1)
        raise AssertionError(f"no call got {kind!r} ({contains!r}) within {timeout} s: "
                             f"{ {c: self.notes(c) for c in self.calls} }")

    async def wait_note(self, kind: str, contains: str = "", timeout: float = 30.0, call: int = -1) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (call < 0 and self.calls) or 0 <= call < len(self.calls):
                at = self.first(self.calls[call], kind, contains)
                if at is not None:
                    return at
            await asyncio.sleep(0.1)
        seen = self.notes(self.calls[call]) if (call < 0 and self.calls) or 0 <= call < len(self.calls) else []
        raise AssertionError(f"no {kind!r} ({contains!r}) on the call record within {timeout} s: {seen}")


@pytest.fixture
async def desk_env(pbx, tmp_path) -> AsyncIterator[DeskEnv]:
    port = free_port()
    env = dict(os.environ)
    env.update({"CALLFLOW_HTTP_PORT": str(port), "CALLFLOW_STORE_DATABASE": str(tmp_path / "callflow.db"),
                "CALLFLOW_ARI_PING_INTERVAL": "5.0"})  # the product default: a 1 s ping (0.5 s pong) dropped ARI — and the keys sent meanwhile — whenever this in-process test blocked its loop on a loaded machine
    cfg = callflow_config.load(env=env)
    holder: dict[str, DeskEnv] = {}

    async def flow(ctx) -> None:
        denv = holder["env"]
        denv.calls.append(ctx.call_id)
        await denv.recorder.start(ctx.call_id, number=ctx.caller.number, started_at=time.time(), flow="issue6-test",
                                  language="fr")
        await ctx.channel.answer()
        await denv.flow(ctx, denv)

    controller = Controller(cfg, flow=flow)
    recorder, handoffs = MemoryRecorder(), FakeHandoffs()
    bridges, presence = AriBridges(controller.client), AriPresence(controller.client)
    agents_cfg = AgentsConfig(ring_timeout=15, hold_max_wait=30).validate()
    pool = AgentPool(agents_cfg, presence=presence)

    def channel_of(call_id: str):
        session = controller.calls.get(call_id)
        return session.channel if session else None

    # the card's own words and the address are rendered at call time into the sandbox's sounds
    speech = RuntimeSpeech(pbx.root / "usr/share/asterisk/sounds" / cfg.prompts.sounds_prefix)
    emergency_port, emergency_dial = emergency_test_line(pbx)
    emergency = EmergencyBridge(EmergencyConfig(destination=emergency_dial, retry_spacing=3, retry_spacing_max=6).validate(),
                                recorder=recorder,
                                bridges=bridges, channels=channel_of, speech=speech)
    desk = AgentDesk(pool=pool, recorder=recorder, handoffs=handoffs, bridges=bridges,
                     escalation=EscalationConfig().validate(), codes=FeatureCodes().validate(), emergency=emergency,
                     presence=presence, speech=speech)
    emergency.agents = desk
    add_routes(controller.web_app, desk)
    add_procedures_routes(controller.web_app, desk, None)  # issue 16: incident card, escalation outcome
    denv = DeskEnv(controller, desk, emergency, recorder, handoffs, port, emergency_port)
    holder["env"] = denv
    task = asyncio.get_running_loop().create_task(controller.run())
    deadline = time.monotonic() + 20
    while not controller.app_registered:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise AssertionError("the in-process controller did not register its ARI app within 20 s")
        await asyncio.sleep(0.1)
    yield denv
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
