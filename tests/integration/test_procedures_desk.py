"""Issue 16 on the real PBX with SIP desk phones: « voix forte » while with an agent (seed 004) and the
supervisor's outcome recorded within the 30 s hold (seed 001)."""

from __future__ import annotations

import json

import numpy as np
from phones import DeskPhoneScript, desk_env, desk_phones, tone  # noqa: F401  (fixtures)
from polling import never

import caller_audio as audio
from callflow.core.agents import Diagnosis
from callflow.pbx.sipp import Caller, start_sipp


async def to_agent(ctx, env) -> None:
    await env.desk.hand_to_agent(ctx, Diagnosis(summary="client en colère"), "fr")


async def test_a_caller_who_shouts_while_with_an_agent_raises_the_alert(desk_env, desk_phones, tmp_path, asterisk_log):
    desk_env.flow = to_agent
    agent = await desk_phones("2001", DeskPhoneScript().pause(8).press("*8").pause(50))  # churn red from the keypad
    # 15 s of ordinary talk (≈ −20 dBFS), then 20 s of shouting (≈ −4 dBFS)
    calm, loud = audio.speech(41, 15), audio.synth.talk(42, 20, level_dbfs=-4.0)
    caller_file = audio.write_ulaw(tmp_path / "angry.ulaw", np.concatenate([calm, loud, np.zeros(10 * audio.SR)]))
    run = await start_sipp(Caller().audio(caller_file).pause(45).xml(answer_within=10), name="angry", timeout_s=90)
    connected = await desk_env.wait_note("agent_connected", "2001", timeout=30)
    call = desk_env.calls[0]
    # ordinary talk never raises it (the shouting starts 15 s after the answer, the agent rang ~1 s after)
    await never(lambda: desk_env.first(call, "raised_voice") is not None, "voix forte during ordinary talk",
                within=max(0.0, 12 - connected))
    alert = await desk_env.wait_note("raised_voice", timeout=40)
    assert alert >= 15 + 6 - 1, (connected, alert)  # after six seconds of shouting, not before
    assert any(n["kind"] == "raised_voice" and n["call_id"] == call for n in desk_env.desk.notifications)
    line = await asterisk_log.wait_for("Playing 'callflow/fr/whisper_raised_voice")
    assert "<PJSIP/2001-" in line  # only the agent hears it
    assert await run.wait(60) == 0, run.errors()
    agent.run.kill()
    # *8: the supervisor's J+1 and J+3 calls (seed 004 §3.3)
    followups = [req for kind, req in desk_env.handoffs.requests if kind == "callback"]
    assert [r["delay_seconds"] for r in followups] == [86400.0, 259200.0], followups
    assert all(r["target"] == "supervisor" for r in followups)
    # after the call, the incident card (§3.1) lands on the call's record with what the system saw
    status, body = await desk_env.api(f"/api/calls/{call}/incident", {
        "intensite": "forte", "raison": "promesse_non_tenue", "risque_churn": "eleve", "sentiment_fin": "moins_fache",
        "bien_etre_hotliner": 3, "engagements": ["ticket urgent TK-1, expert sous 24h"]})
    assert status == 201, body
    assert body["stored"]["voix_forte"] is True and body["stored"]["churn_rouge"] is True
    assert body["stored"]["hotliner"] == "2001"
    assert [k for _, k, _ in desk_env.notes(call)].count("incident_card") == 1
    status, body = await desk_env.api(f"/api/calls/{call}/incident", {"intensite": "furieuse"})
    assert status == 400 and "intensite" in body["error"]


async def test_supervisor_request_outcome_recorded_within_the_30_s_hold(desk_env, desk_phones, audio_dir, ari):
    desk_env.flow = to_agent
    talk = str(tone(audio_dir / "tone.ulaw"))
    await desk_phones("2001", DeskPhoneScript(talk_audio=talk).pause(3).press("*1").pause(40))
    await desk_phones("2100", talk_audio=str(tone(audio_dir / "tone2.ulaw", freq=660)))
    caller = Caller().audio(talk, loops=3).pause(60)
    run = await start_sipp(caller.xml(answer_within=10), name="escalation-outcome", timeout_s=100)
    await desk_env.wait_note("escalation_connected", timeout=60)
    call = desk_env.calls[0]
    started = desk_env.first(call, "escalation")
    connected = desk_env.first(call, "escalation_connected")
    assert connected - started <= 30 + 1.5, (started, connected)  # « 30 secondes maximum », whisper included
    status, body = await desk_env.api("/api/escalations")
    esc = body["active"]["id"]
    status, body = await desk_env.api(f"/api/escalations/{esc}/outcome", {
        "decision": "alternative", "valeur_eur": 25, "motif_decision": "crédit atelier", "satisfaction": 4,
        "justifiee": True, "superviseur": "Sophie", "prochaines_etapes": ["crédit appliqué"]})
    assert status == 201, body
    assert body["outcome"]["hold_seconds"] <= 31.5 and body["outcome"]["answer_seconds"] is not None
    [stored] = [json.loads(d) for _, k, d in desk_env.notes(call) if k == "escalation_outcome"]
    assert stored["decision"] == "alternative" and stored["valeur_eur"] == 25
    kinds = [k for k, _ in desk_env.handoffs.requests]
    assert "escalation_email_client" in kinds and "escalation_email_hotliner" in kinds
    status, body = await desk_env.api(f"/api/escalations/{esc}/outcome", {"decision": "approuvee"})
    assert status == 400  # once per escalation
    assert await run.wait(70) == 0, run.errors()
