"""Seed 000 cas F on the real PBX: the second line to the emergency test line (a SIPp UAS on a port of the test's own)."""

from __future__ import annotations

import asyncio
import time

from phones import DeskPhoneScript, desk_env, desk_phones, emergency_line, tone  # noqa: F401  (fixtures)
from callflow.pbx.sipp import Caller, start_sipp

from callflow.agents import latch
from callflow.core.agents import Diagnosis


async def cas_f(ctx, env) -> None:
    """What the silent-call flow does after « tapez une fois si oui »: EmergencyLine.start."""
    await env.emergency.start(ctx.call_id, caller_number=ctx.caller.number,
                              situation="Appel muet, personne en détresse, respiration difficile",
                              answers={"urgence_medicale": "oui"})


async def bridge_with(ari, prefix: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in ari.bridges():
            names = [ari.get(f"channels/{cid}")["name"] for cid in bridge["channels"]]
            if any(n.startswith(prefix) for n in names) and len(names) >= 2:
                return names
        await asyncio.sleep(0.3)
    raise AssertionError(f"no bridge with {prefix} within {timeout} s: {ari.bridges()}")


async def test_busy_once_then_announced_and_bridged_and_the_caller_never_gets_a_bye(desk_env, ari, asterisk_log,
                                                                                     audio_dir):
    desk_env.flow = cas_f
    busy = await emergency_line(desk_env.emergency_port, reject_with=486)
    # the caller stays silent, then hangs up on their own: any BYE from us fails the scenario
    caller = Caller().audio(audio_dir / "silence.ulaw", loops=3).pause(70)
    run = await start_sipp(caller.xml(answer_within=10), name="cas-f", timeout_s=100)

    assert await busy.wait(20) == 0, busy.errors()  # it was dialled and said 486
    call = await desk_env.call_with("emergency_result", "attempt 1: busy", timeout=10)
    operator = await emergency_line(desk_env.emergency_port, talk_audio=str(tone(audio_dir / "tone.ulaw")))
    await desk_env.call_with("emergency_result", "attempt 2: answered", timeout=40)
    assert latch.is_latched(call)

    intro = await asterisk_log.wait_for("Playing 'callflow/fr/emergency_announce_intro", timeout=10)
    assert "<PJSIP/emergency-test-" in intro  # the announcement is played to the emergency line
    calling = await asterisk_log.wait_for("Playing 'callflow/fr/emergency_calling", timeout=5)
    assert "<PJSIP/trunk-" in calling  # between the attempts the caller hears help is being called
    assert "Playing 'callflow/fr/emergency_reassure" not in asterisk_log.text()  # never « les secours arrivent »
    names = await bridge_with(ari, "PJSIP/emergency-test", timeout=60)
    assert any(n.startswith("PJSIP/trunk") for n in names), names
    await asterisk_log.wait_for("joined 'simple_bridge' stasis-bridge <callflow-", timeout=10)  # ARI can be ahead of the log
    log = asterisk_log.text()
    for digit in "0612345678":  # the caller's number, digit by digit
        assert f"Playing 'callflow/fr/em_digit_{digit}" in log
    assert log.index("Playing 'callflow/fr/emergency_connecting") < log.index("emergency-test", log.index("joined"))

    assert await run.wait(90) == 0, run.errors()  # ended by the caller's own BYE
    assert await operator.wait(20) == 0, operator.errors()  # the operator was told and the line ended
    kinds = desk_env.kinds(call)
    for step in ("emergency_latched", "emergency_dial", "emergency_announce", "emergency_bridged", "emergency_caller_left"):
        assert step in kinds, kinds
    stamps = [at for at, _, _ in desk_env.notes(call)]
    assert stamps == sorted(stamps)


async def test_agent_emergency_code_bridges_the_line_with_caller_and_agent(desk_env, desk_phones, ari, asterisk_log,
                                                                            audio_dir):
    async def to_agent(ctx, env) -> None:
        await env.desk.hand_to_agent(ctx, Diagnosis(summary="parole: malaise"), "fr")

    desk_env.flow = to_agent
    operator = await emergency_line(desk_env.emergency_port)
    agent = await desk_phones("2001", DeskPhoneScript().pause(2).press("*9").pause(3).press("*0"))
    caller = Caller().audio(audio_dir / "silence.ulaw", loops=3).pause(60)
    run = await start_sipp(caller.xml(answer_within=10), name="agent-star9", timeout_s=100)

    call = await desk_env.call_with("emergency_bridged", timeout=60)
    names = await bridge_with(ari, "PJSIP/emergency-test", timeout=5)
    assert {n.split("-")[0] for n in names} == {"PJSIP/trunk", "PJSIP/2001", "PJSIP/emergency"}, names
    await desk_env.call_with("closing_refused", timeout=10)
    assert call in desk_env.calls  # *0 during an emergency: refused
    assert "Playing 'callflow/fr/closing_step" not in asterisk_log.text()
    assert await run.wait(80) == 0, run.errors()
    assert await operator.wait(20) == 0, operator.errors()
    assert await agent.run.wait(15) == 0, agent.run.errors()
