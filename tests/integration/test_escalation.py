"""Seed 001 on the real PBX: the agent's escalation code brings the supervisor (SIPp desk phone 2100) into the call."""

from __future__ import annotations

import asyncio
import re
import time

from phones import DeskPhoneScript, desk_env, desk_phones, tone  # noqa: F401  (fixtures)
from callflow.pbx.sipp import Caller, start_sipp

from callflow.core.agents import Diagnosis


async def to_agent(ctx, env) -> None:
    await env.desk.hand_to_agent(ctx, Diagnosis(summary="client demande un responsable"), "fr")


def rtp_rx(ari, channel_id: str) -> int:
    return int(ari.get(f"channels/{channel_id}/rtp_statistics")["rxcount"])


async def wait_bridge_of(ari, bridge_id: str, size: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bridge in ari.bridges():
            if bridge["id"] == bridge_id and len(bridge["channels"]) == size:
                return bridge["channels"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"bridge {bridge_id} never held {size} channels: {ari.bridges()}")


async def test_escalation_code_conference_caller_agent_and_supervisor_in_one_bridge(desk_env, desk_phones, ari,
                                                                                      asterisk_log, audio_dir):
    desk_env.flow = to_agent
    talk = str(tone(audio_dir / "tone.ulaw"))
    agent = await desk_phones("2001", DeskPhoneScript(talk_audio=talk).pause(3).press("*1"))
    supervisor = await desk_phones("2100", talk_audio=str(tone(audio_dir / "tone2.ulaw", freq=660)))
    # the caller talks the whole time and hangs up itself: a BYE from us would fail its scenario
    caller = Caller().audio(talk, loops=3).pause(70)
    run = await start_sipp(caller.xml(answer_within=10), name="escalation", timeout_s=110)

    await desk_env.wait_note("escalation_ringing", timeout=40)
    call = desk_env.calls[0]
    members = await wait_bridge_of(ari, f"callflow-{call}", 3, timeout=45)
    names = {ari.get(f"channels/{cid}")["name"].split("-")[0] for cid in members}
    assert names == {"PJSIP/trunk", "PJSIP/2001", "PJSIP/2100"}, names
    # audio flows from every leg into the bridge
    before = {cid: rtp_rx(ari, cid) for cid in members}
    await asyncio.sleep(2)
    after = {cid: rtp_rx(ari, cid) for cid in members}
    assert all(after[cid] > before[cid] + 40 for cid in members), (before, after)
    # the supervisor heard the whisper before joining; the caller heard « petite attente, 30 secondes maximum »
    whisper = await asterisk_log.wait_for("Playing 'callflow/fr/whisper_escalation")
    assert "<PJSIP/2100-" in whisper
    card = await asterisk_log.wait_for("Playing 'callflow/fr/dyn/")  # the card's words, rendered at call time
    assert "<PJSIP/2100-" in card
    wait_line = await asterisk_log.wait_for("Playing 'callflow/fr/escalation_wait")
    assert "<PJSIP/trunk-" in wait_line
    log = asterisk_log.text()
    joined = re.search(r"Channel PJSIP/2100-\S+ joined", log)
    assert joined is not None and log.index("Playing 'callflow/fr/whisper_briefing_on_screen") < joined.start()
    status, queue = await desk_env.api("/api/escalations")
    assert queue["active"]["state"] == "connected" and queue["active"]["mode"] == "conference"

    assert await run.wait(95) == 0, run.errors()  # the caller was never dropped
    assert await agent.run.wait(15) == 0, agent.run.errors()
    assert await supervisor.run.wait(15) == 0, supervisor.run.errors()
    kinds = desk_env.kinds(call)
    assert kinds.index("escalation") < kinds.index("escalation_connected")


async def test_supervisor_does_not_answer_the_agent_takes_the_caller_back_and_a_callback_is_scheduled(
        desk_env, desk_phones, ari, audio_dir):
    desk_env.flow = to_agent
    agent = await desk_phones("2001", DeskPhoneScript().pause(2).press("*1"))
    await desk_phones("2100", ring_seconds=80)  # rings, never answers within the seed's 30 s
    caller = Caller().audio(audio_dir / "silence.ulaw", loops=3).pause(56)
    run = await start_sipp(caller.xml(answer_within=10), name="escalation-no-answer", timeout_s=90)

    started = await desk_env.wait_note("escalation", timeout=40)
    back = await desk_env.wait_note("escalation_back_to_agent", timeout=30 + 20)
    # 30 s at most for the supervisor (prompt included), then the explanation to the caller
    call = desk_env.calls[0]
    assert back - started <= 30 + 12, (started, back, desk_env.notes(call))
    assert back - started >= 29, (started, back, desk_env.notes(call))
    members = await wait_bridge_of(ari, f"callflow-{call}", 2, timeout=5)
    names = {ari.get(f"channels/{cid}")["name"].split("-")[0] for cid in members}
    assert names == {"PJSIP/trunk", "PJSIP/2001"}
    assert desk_env.first(call, "callback", "supervisor callback scheduled") is not None, desk_env.notes(call)
    kind, req = desk_env.handoffs.requests[0]
    assert kind == "callback" and req["target"] == "supervisor"
    status, notes = await desk_env.api("/api/notifications")
    assert notes["notifications"][0]["kind"] == "escalation_missed"
    assert await run.wait(60) == 0, run.errors()  # never dropped
    assert await agent.run.wait(15) == 0, agent.run.errors()


async def test_transfer_over_the_api_the_supervisor_takes_the_caller_alone(desk_env, desk_phones, ari, audio_dir):
    desk_env.flow = to_agent
    agent = await desk_phones("2001")
    supervisor = await desk_phones("2100")
    caller = Caller().audio(audio_dir / "silence.ulaw", loops=3).pause(50)
    run = await start_sipp(caller.xml(answer_within=10), name="transfer", timeout_s=90)

    call = await desk_env.call_with("agent_connected", timeout=30)
    status, body = await desk_env.api(f"/api/calls/{call}/transfer", {
        "client": "Marie Dupuis (CLT-00245), cliente depuis 4 mois", "probleme": "atelier manqué, raison personnelle",
        "demande": "remboursement ou atelier de rattrapage", "raison": "Demande exception/compensation",
        "avis": "client légitime", "sensibilite": "frustration 2 sur 5, risque churn modéré",
        "options": ["refuser en expliquant", "crédit", "atelier gratuit"], "urgent": True})
    assert status == 202, body
    await desk_env.call_with("escalation_connected", "transfer", timeout=45)
    members = await wait_bridge_of(ari, f"callflow-{call}", 2, timeout=5)
    names = {ari.get(f"channels/{cid}")["name"].split("-")[0] for cid in members}
    assert names == {"PJSIP/trunk", "PJSIP/2100"}, names
    assert await agent.run.wait(15) == 0, agent.run.errors()  # the agent's leg ended (BYE), the caller's did not
    status, queue = await desk_env.api("/api/escalations")
    assert queue["active"]["priority"] == "urgent" and queue["active"]["briefing"]["client"].startswith("Marie Dupuis")
    status, agents = await desk_env.api("/api/agents")
    assert {a["extension"]: a["state"] for a in agents["agents"]}["2001"] in ("wrap_up", "available")
    assert await run.wait(70) == 0, run.errors()
    assert await supervisor.run.wait(15) == 0, supervisor.run.errors()
