"""The AudioSocket media path's own safety cases (issue 15): real `callflow run`, real Asterisk, SIPp.

The procedure itself runs on this path in test_silent_call.py (every test there runs on both
media paths). Here: where the caller really is while we listen (out of Stasis, in
[callflow-listen]), what SIGTERM and a killed controller do to a caller sitting in AudioSocket().
Any BYE from us fails the SIPp caller's scenario.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import caller_audio as audio
import pytest
from caller_audio import prompt_seconds
from callflow.pbx.sipp import Caller, start_sipp

NUMBER = "0612345678"


@pytest.fixture(autouse=True)
def audiosocket_path(monkeypatch) -> None:
    monkeypatch.setenv("CALLFLOW_MEDIA_PATH", "audiosocket")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audiosocket-callers")
    return {"breathing": audio.write_ulaw(d / "breathing.ulaw", audio.breathing(31, 150))}


async def _in_listen_context(ari, channel_id: str, timeout: float = 20.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for chan in ari.channels():
            plan = chan.get("dialplan", {})
            if chan["id"] == channel_id and plan.get("context") == "callflow-listen" and plan.get("app_name") == "AudioSocket":
                return chan  # TryExec(AudioSocket(…)) shows as the application it runs
        await asyncio.sleep(0.2)
    raise AssertionError(f"the caller never reached [callflow-listen]: {ari.channels()}")


async def test_while_we_listen_the_caller_is_out_of_stasis_in_audiosocket(controller, ari, sounds):
    run = await start_sipp(Caller().audio(sounds["breathing"]).pause(12).xml(caller_number=NUMBER),
                           name="as-where", timeout_s=90)
    call = await controller.wait_for_event("call in", timeout=30)
    chan = await _in_listen_context(ari, call["call"])
    assert chan["dialplan"]["app_data"].count(",") == 1  # AudioSocket(uuid,host:port)
    assert call["call"] not in ari.app_channels()
    assert not [c for c in ari.channels() if c["name"].startswith(("Snoop/", "UnicastRTP/"))]  # no fork channels
    assert await run.wait(60) == 0, run.errors()  # the caller hangs up; never a BYE from us
    await controller.wait_for_event("caller hung up while out of Stasis", timeout=15, channel=call["call"])
    record = await controller.record(call["call"])
    assert record["hung_up_by"] != "system"


async def test_killed_while_the_caller_is_in_audiosocket_the_dialplan_sends_them_to_the_agents(
        controller, phones, ari, sounds, asterisk_log):
    agent = await phones("2001")
    run = await start_sipp(Caller().audio(sounds["breathing"]).pause(50).xml(caller_number=NUMBER),
                           name="as-kill", timeout_s=150)
    call = await controller.wait_for_event("call in", timeout=30)
    await _in_listen_context(ari, call["call"])
    await asyncio.sleep(prompt_seconds("greeting") / 2)
    controller.kill()
    # the socket closed with the process: AudioSocket() returns, Stasis(callflow,back) fails, the fail-safe. Or,
    # when Asterisk keeps the app of a process killed in the middle of a write (an app nobody runs), Stasis()'s
    # deadline sends the caller on (dialplans/hotline.conf): the dialplan's fail-safe either way
    async def fail_safe() -> str:
        while True:
            for line in asterisk_log.text().splitlines():
                if ("callflow controller unavailable after listening" in line
                        or "callflow controller did not take the call back within" in line):
                    return line
            await asyncio.sleep(0.1)

    await asyncio.wait_for(fail_safe(), 25)
    assert await agent.run.wait(120) == 0, agent.run.errors()  # an agent's phone rang and took the caller
    assert await run.wait(120) == 0, run.errors()  # no BYE from us


async def test_sigterm_while_the_caller_is_in_audiosocket_brings_them_back_and_on_to_the_agents(
        controller, phones, ari, sounds):
    agent = await phones("2001")
    run = await start_sipp(Caller().audio(sounds["breathing"]).pause(40).xml(caller_number=NUMBER),
                           name="as-sigterm", timeout_s=120)
    call = await controller.wait_for_event("call in", timeout=30)
    await _in_listen_context(ari, call["call"])
    controller.stop()  # drain: out of AudioSocket, back in Stasis, then to the agents
    sent = [e for e in controller.events() if e.get("event") == "call sent to the agents" and e.get("channel") == call["call"]]
    assert sent, controller.output()[-3000:]
    assert await agent.run.wait(90) == 0, agent.run.errors()
    assert await run.wait(90) == 0, run.errors()
