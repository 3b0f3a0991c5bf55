"""Issue 6 on the real PBX: calls handed to agents on SIP desk phones (SIPp), feature codes, hold and callback offer."""

from __future__ import annotations


from conftest import unregister_desk_phones
from polling import never
from cues import cue_caller
from phones import DeskPhoneScript, desk_env, desk_phones, tone  # noqa: F401  (fixtures)
from callflow.pbx.sipp import Caller, start_sipp

from callflow.core.agents import Diagnosis


async def to_agent(ctx, env) -> None:
    await env.desk.hand_to_agent(ctx, Diagnosis(summary="parole entendue"), "fr")


async def test_closing_code_plays_the_three_closing_steps_then_bye_to_the_caller(desk_env, desk_phones, asterisk_log, audio_dir, ari):
    desk_env.flow = to_agent
    agent = await desk_phones("2001", DeskPhoneScript(talk_audio=str(tone(audio_dir / "tone.ulaw"))).pause(4).press("*0"))
    caller = Caller().audio(audio_dir / "silence.ulaw")
    # the caller never hangs up: it waits for our BYE (the scenario fails if none comes within the call timeout)
    run = await start_sipp(caller.xml(hang_up=False, answer_within=10), name="closing", timeout_s=60)
    await desk_env.wait_note("agent_connected", "2001", timeout=30)
    bridge = f"callflow-{desk_env.calls[0]}"
    assert any(b["id"] == bridge and len(b["channels"]) == 2 for b in ari.bridges())
    await desk_env.wait_note("closing", timeout=20)
    assert await run.wait(50) == 0, run.errors()  # got our BYE after the third step (seed 002)
    for step in (1, 2, 3):
        line = await asterisk_log.wait_for(f"Playing 'callflow/fr/closing_step_{step}")
        assert "<PJSIP/trunk-" in line  # played to the caller
    log = asterisk_log.text()
    assert log.index("closing_step_1") < log.index("closing_step_2") < log.index("closing_step_3")
    assert await agent.run.wait(15) == 0, agent.run.errors()
    notes = desk_env.kinds(desk_env.calls[0])
    assert notes.index("closing") < notes.index("closing_step") < notes.index("hangup") < notes.index("closing_done")
    assert notes.count("closing_step") == 3


async def test_aggressive_flag_the_agent_is_skipped_for_the_pause(desk_env, desk_phones, audio_dir):
    desk_env.flow = to_agent
    first = await desk_phones("2001", DeskPhoneScript().pause(2).press("*7"))
    # the caller stays long enough for the agent's *7 even when the holding words end late (a loaded PBX
    # once noted « hold » 10 s after the queue for a 5 s prompt, and the caller left before the *7)
    caller = Caller().audio(audio_dir / "silence.ulaw").pause(25)
    run = await start_sipp(caller.xml(answer_within=10), name="aggressive-1", timeout_s=80)
    await desk_env.wait_note("flag", "agressif", timeout=40)
    assert await run.wait(50) == 0, run.errors()
    assert await first.run.wait(15) == 0, first.run.errors()
    status, body = await desk_env.api("/api/agents")
    state = {a["extension"]: a for a in body["agents"]}["2001"]
    assert state["state"] == "wrap_up" and state["wrap_up_remaining"] > 250, state

    # 2001's phone is back (a new registration): the next call must not ring it during the pause
    again = await desk_phones("2001")
    caller2 = Caller().audio(audio_dir / "silence.ulaw").pause(15)
    run2 = await start_sipp(caller2.xml(answer_within=10), name="aggressive-2", timeout_s=60)
    await desk_env.wait_note("hold", timeout=20, call=1)
    # 2001 is paused for 5 minutes (seed 004): during the caller's whole stay (15 s, hold included)
    # nothing may ring it; the check fails the moment a ring is noted
    second = desk_env.calls[1]
    await never(lambda: [n for n in desk_env.notes(second) if n[1] == "agent_ring" and n[2].startswith("2001")],
                "2001 was rung during its pause", within=8)
    assert again.run.proc.returncode is None  # still waiting for a call that never came
    assert await run2.wait(40) == 0, run2.errors()


async def test_no_agent_hold_then_callback_offer_never_an_endless_wait(pbx, desk_env, audio_dir, asterisk_log, ari):
    desk_env.flow = to_agent
    await unregister_desk_phones(pbx, "2001", "2002", "2003")  # nobody registered (earlier tests may have left phones)
    status, body = await desk_env.api("/api/agents")
    assert all(a["state"] == "available" for a in body["agents"])  # nobody paused: they are just not registered
    # holding words + music, the offer after 30 s of hold (« 1 = oui »): the caller presses 1 while it
    # plays (cued once the offer is on the record: a loaded PBX may run seconds late), then leaves on their own
    caller = Caller().audio(audio_dir / "silence.ulaw", loops=3).wait_cue(within=90).pause(2).press("1").pause(10)
    run = await start_sipp(caller.xml(answer_within=10), name="no-agent", timeout_s=120)
    await desk_env.wait_note("callback_offer", timeout=5 + 30 + 30)  # holding words, the seed's wait, slack
    await cue_caller(pbx, ari, desk_env.calls[0])
    assert await run.wait(60) == 0, run.errors()  # never hung up by us
    call = desk_env.calls[0]
    held = desk_env.first(call, "hold")
    offered = desk_env.first(call, "callback_offer")
    assert held is not None and offered is not None, desk_env.notes(call)
    assert 30 - 1 <= offered - held <= 30 + 10, (held, offered)
    assert desk_env.first(call, "callback", "scheduled") is not None, desk_env.notes(call)
    kind, req = desk_env.handoffs.requests[0]
    assert kind == "callback" and req["target"] == "agents" and req["number"] == "0612345678"
    log = asterisk_log.text()
    assert log.index("Playing 'callflow/fr/agents_hold") < log.index("Playing 'callflow/fr/callback_offer") \
        < log.index("Playing 'callflow/fr/callback_confirmed")
    assert "agent_ring" not in desk_env.kinds(call)
