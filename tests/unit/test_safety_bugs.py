"""Issue 11's bugs in the IVR, each shown on the fake channel (virtual clock)."""

from __future__ import annotations

from callflow.core.call import REGISTRY, Call
from callflow.core.channel import AudioState as S
from callflow.core.recorder import HungUpBy
from callflow.telephony.fake import CallerScript, FakeCall, FakeChannel, Sound, load_prompts, press, tap


def never_hung_up_by_system(fake: FakeCall) -> bool:
    return fake.channel.system_hangups() == [] and fake.record.hung_up_by is not HungUpBy.SYSTEM


# -- B: signs of life are never forgotten --------------------------------------------------------
async def test_b_breathing_then_quiet_goes_to_a_person_urgent_never_hung_up():
    """Issue 11 B: breathed for 28 s then went quiet (a caller who faints): hung up at 128 s on main."""
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(2, S.BREATHING), Sound(30, S.SILENCE)])
    fake = await FakeCall(script).run()
    assert never_hung_up_by_system(fake)
    (_, diagnosis, _), = fake.agents.handed
    assert diagnosis.urgent
    assert "signe de vie" in diagnosis.summary and "respiration" in diagnosis.summary
    assert "dead_line_goodbye" not in fake.channel.prompts()


async def test_b_a_single_tap_long_ago_is_still_a_sign_of_life():
    script = CallerScript(sounds=[Sound(0, S.SILENCE)], replies={"greeting": [tap(1, after=0.5)]},)
    fake = await FakeCall(script).run()
    assert never_hung_up_by_system(fake)
    assert fake.agents.handed and fake.agents.handed[0][1].urgent


async def test_b_after_a_handoff_a_line_gone_quiet_goes_to_a_person_urgent():
    replies = {"q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
               "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_sms_received": [press("1")]}
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(12, S.BREATHING), Sound(100, S.SILENCE)], replies=replies)
    fake = await FakeCall(script).run()
    assert never_hung_up_by_system(fake)
    (_, diagnosis, _), = fake.agents.handed
    assert diagnosis.urgent and "signe de vie" in diagnosis.summary


async def test_b_the_sign_of_life_is_on_the_call_state():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(2, S.BREATHING), Sound(30, S.SILENCE)])
    fake = await FakeCall(script, call_id="call-b").run()
    call = REGISTRY.get("call-b")
    assert call is not None and call.showed_life and call.first_sign_of_life < 10
    assert call.urgent


# -- A: a key during the goodbye ------------------------------------------------------------------
async def test_a_key_during_the_goodbye_cancels_the_hang_up_and_is_recorded():
    script = CallerScript(replies={"dead_line_goodbye": [press("1", after=-2)]}, hangs_up_at=200)
    fake = await FakeCall(script).run()
    assert never_hung_up_by_system(fake)
    goodbye = fake.channel.plays("dead_line_goodbye")[0]
    assert not goodbye.completed  # the key stopped it
    assert any("key 1" in detail for _, kind, detail in fake.record.actions if kind in ("input", "barge_in"))


async def test_a_key_queued_during_a_non_barge_in_prompt_still_stops_the_guard():
    """The guard itself looks for a waiting key before any system hang-up."""
    from callflow.core.recorder import MemoryRecorder
    from callflow.flows.safety import SafeHangup
    from callflow.flows.timers import SilentCallTimers
    from callflow.telephony.fake import key

    channel = FakeChannel(CallerScript(inputs=[key(45.0, "5")]))
    await channel.answer()
    recorder = MemoryRecorder()
    await recorder.start("g-1", number=None, started_at=0.0, flow="t", language="fr")
    guard = SafeHangup(channel, recorder, "g-1", SilentCallTimers(), lambda: channel.now)
    await channel.play("dead_line_final", barge_in=False)
    channel.clock.t = 30.0
    guard.final_warning_given()
    await channel.play("dead_line_goodbye", barge_in=False)  # 34 s
    channel.clock.t = 46.0  # the key came at 45 s, during nothing we listened to
    assert not await guard.hang_up("ligne morte")
    assert channel.is_up
    assert recorder.calls["g-1"].kinds("input")


# -- the distress rule measures time, not readings --------------------------------------------------
async def test_distress_voice_energy_is_timed_on_the_readings_not_counted():
    """Live readings come every 0.25 s: 5 s of voiced breathing must still mean 5 s (it fired at 2.5 s)."""
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(15, S.BREATHING, level_dbfs=-25)], hangs_up_at=60)
    fake = FakeCall(script)
    fake.channel = FakeChannel(script, prompts=load_prompts(), reading_interval=0.25, clock=fake.clock)
    fake.call = Call(call_id=fake.call.call_id).attach(fake.channel)
    await fake.run()
    (question, *_) = fake.channel.plays("q_emergency")
    assert question.at >= 15 + fake.deps.timers.distress_voiced_seconds
