"""The walking skeleton: SIPp → Asterisk → callflow → prompt / digit → outcome, and its fail-safes."""

from __future__ import annotations

import asyncio
import time

from callflow.pbx.sipp import Caller, start_sipp
from conftest import open_app_socket, without_our_app


async def test_caller_is_answered_greeted_and_their_key_is_seen(controller, asterisk_log, audio_dir):
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(6).press("5").pause(2)
    run = await start_sipp(caller.xml(caller_number="0612345678"), name="greeted")
    assert await run.wait(40) == 0, run.errors()

    await asterisk_log.wait_for("Playing 'callflow/fr/greeting")
    call = await controller.wait_for_event("call in")
    assert call["caller"] == "06******78"  # never a full caller number in the logs
    digit = await controller.wait_for_event("digit received", call=call["call"])
    assert digit["digit"] == "5"
    assert "0612345678" not in controller.output()
    assert controller.metric("callflow_rtp_accepted_total") > 0  # it listened to the caller
    assert controller.metric("callflow_calls_in_progress") in (0, 1)


async def test_a_key_stops_the_greeting_at_once(controller, asterisk_log, audio_dir):
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(1.5).press("7").pause(2)
    run = await start_sipp(caller.xml(), name="barge-in")
    assert await run.wait(30) == 0, run.errors()
    await asterisk_log.wait_for("Playback stopped for sound:callflow/fr/greeting")
    digit = await controller.wait_for_event("digit received")
    assert digit["digit"] == "7"


async def test_controller_down_the_call_reaches_an_agent_within_5_s(pbx, phones, audio_dir, asterisk_log, ari):
    await without_our_app(pbx, ari)  # down: not registered (an app nobody runs is the next test's)
    agent = await phones("2001")
    # the caller gives up (and the test fails) if nobody answers within 5 s
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(2)
    run = await start_sipp(caller.xml(answer_within=5.0), name="failsafe")
    assert await run.wait(30) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()  # the agent's phone rang, answered, got the BYE
    await asterisk_log.wait_for("callflow controller unavailable (STASISSTATUS=FAILED)")


async def test_an_app_nobody_runs_the_call_still_reaches_an_agent(pbx, phones, audio_dir, asterisk_log, ari):
    """The app is registered but nobody takes the call: a hung controller, or Asterisk 22 keeping the app after
    the controller's websocket died in the middle of a write (seen in a full run: the next test's caller sat in
    Stasis with nobody). Stasis() then succeeds; its deadline (TIMEOUT(absolute), which a running controller
    clears) sends the caller to the agents."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        # registers the app and never reads: Asterisk's events pile up unread, as for a hung controller
        hung = await open_app_socket(session, pbx, ari)
        try:
            agent = await phones("2001")
            caller = Caller().audio(audio_dir / "silence.ulaw").pause(2)
            # the deadline (10 s), then the ring group: answered within 20 s or the caller gives up
            run = await start_sipp(caller.xml(answer_within=20.0), name="app-nobody-runs")
            await asyncio.sleep(3)
            assert ari.app_channels(), "the caller should be in the app nobody runs (Stasis() succeeded)"
            assert await run.wait(40) == 0, run.errors()
            assert await agent.run.wait(15) == 0, agent.run.errors()  # the agent's phone rang, answered, got the BYE
            await asterisk_log.wait_for("callflow controller did not take the call within 10 s")
        finally:
            await hung.close()


async def test_controller_killed_mid_call_then_restarted_takes_the_call_back(controller, phones, ari, audio_dir, asterisk_log):
    agent = await phones("2001")
    # the caller stays for the restart (5-6 s on a loaded machine), the desk's holding words (5 s) and the ring:
    # at 14 s a full run once saw them leave just before the agent's phone rang
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(25)
    run = await start_sipp(caller.xml(), name="killed")
    call = await controller.wait_for_event("call in", timeout=10)

    controller.kill()
    assert call["call"] in ari.app_channels(), "the caller should still be parked in the Stasis app"
    controller.start()

    back = await controller.wait_for_event("call taken back after restart", timeout=10, call=call["call"])
    assert back["emergency"] is False  # a caller of the IVR: the agents' desk takes it, urgent (docs/safety.md)
    assert await run.wait(60) == 0, run.errors() + asterisk_log.text()[-6000:]
    assert await agent.run.wait(15) == 0, agent.run.errors()
    assert ari.app_channels() == []


async def test_asterisk_restarted_while_the_controller_runs(pbx, controller, audio_dir):
    pbx.down()
    deadline = time.monotonic() + 10
    while controller.health()[0] == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert controller.health()[0] == 503, "health must fail while ARI is down"
    pbx.up()
    controller.wait_healthy(timeout=30)
    assert controller.metric("callflow_ari_reconnects_total") >= 1

    caller = Caller().audio(audio_dir / "silence.ulaw").pause(2).press("3").pause(1.5)
    run = await start_sipp(caller.xml(), name="after-restart")
    assert await run.wait(30) == 0, run.errors()
    digit = await controller.wait_for_event("digit received", timeout=10)
    assert digit["digit"] == "3"


async def test_a_flow_that_crashes_sends_the_caller_to_an_agent(in_process_controller, phones, audio_dir, ari):
    async def buggy_flow(ctx):
        await ctx.channel.answer()
        await ctx.channel.play("greeting")
        raise RuntimeError("a bug in a flow")

    ctl = await in_process_controller(buggy_flow)
    agent = await phones("2001")
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(9)
    run = await start_sipp(caller.xml(), name="crash")
    assert await run.wait(30) == 0, run.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()
    assert ctl.metrics.handler_errors._value.get() == 1
    assert ctl.metrics.sent_to_agents.labels(reason="handler_error")._value.get() == 1
    assert ari.app_channels() == []
