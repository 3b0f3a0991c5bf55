"""Speech, distress and the voiced-breathing run are timed on each reading's own time (`AudioReading.at`,
the classifier's clock), not on when the flow reads it: under load readings reach the flow in bursts
(a stalled loop, a slow REST call, a prompt), and stamping them on arrival squeezed seconds into an
instant — or stretched an instant over seconds. All but `…keeps_its_length` fail on the code that used
the flow's clock or looked only after a whole burst; that one held already and guards it."""

from __future__ import annotations

import pytest

from callflow.core.call import Call
from callflow.core.channel import AudioState
from callflow.core.recorder import MemoryRecorder
from callflow.flows.session import DistressHeard, FlowCall, SpeechHeard
from callflow.flows.timers import SilentCallTimers
from callflow.telephony.fake import CallerScript, FakeChannel, Sound

S = AudioState


async def flow_call(sounds: list[Sound], stalls: tuple[tuple[float, float], ...]) -> tuple[FlowCall, FakeChannel]:
    channel = FakeChannel(CallerScript(sounds=sounds), reading_stalls=stalls)
    recorder = MemoryRecorder()
    call = FlowCall(Call(call_id="rt-1").attach(channel), recorder,
                    SilentCallTimers().validate(), channel.clock)
    await recorder.start("rt-1", number=None, started_at=0.0, flow="test", language="fr")
    await channel.answer()
    return call, channel


def flicker(at: float) -> list[Sound]:
    """One distress reading (quiet, so it is not voice energy) in calm breathing."""
    return [Sound(at, S.BREATHING, level_dbfs=-50, distress=True), Sound(at + 0.5, S.BREATHING, level_dbfs=-50)]


async def test_distress_flickers_12_s_apart_delivered_in_one_burst_are_not_distress():
    # three flickers over 12 s: more than DISTRESS_SPAN (10 s) apart, so not sobs; a stall delivers them together
    sounds = [Sound(0, S.BREATHING, level_dbfs=-50), *flicker(2.0), *flicker(8.0), *flicker(14.0)]
    call, channel = await flow_call(sounds, stalls=((1.0, 15.0),))
    window = await call.listen(20)  # the old code raised DistressHeard at t=15
    assert window.distress and not call.distress_likely()
    assert channel.now == pytest.approx(20.0)


async def test_distress_flickers_within_10_s_are_distress_even_when_the_last_comes_late():
    # flickers at 2, 4 and 6 s (within 10 s: distress); the third reaches the flow only at 14 s
    sounds = [Sound(0, S.BREATHING, level_dbfs=-50), *flicker(2.0), *flicker(4.0), *flicker(6.0)]
    call, channel = await flow_call(sounds, stalls=((5.5, 14.0),))
    with pytest.raises(DistressHeard):  # the old code saw 4 → 14 s (10 s) and missed it
        await call.listen(20)
    assert channel.now == pytest.approx(14.0)


async def test_two_speech_readings_half_a_second_apart_are_speech_even_when_a_stall_splits_them():
    # the caller talks at 5.0–5.5 s; the second reading reaches the flow 3.5 s after the first
    sounds = [Sound(0, S.SILENCE), Sound(5.0, S.SPEECH, level_dbfs=-20), Sound(6.0, S.SILENCE)]
    call, channel = await flow_call(sounds, stalls=((5.25, 9.0),))
    with pytest.raises(SpeechHeard):  # the old code stamped them 5.0 and 9.0: more than 3 s, not speech
        await call.listen(12)
    assert channel.now == pytest.approx(9.0)


async def test_speech_readings_5_s_apart_delivered_together_are_not_speech():
    # two lone confident « speech » flickers 5 s apart (more than SpeechStreak.SPAN): not someone talking
    sounds = [Sound(0, S.SILENCE), Sound(2.0, S.SPEECH, level_dbfs=-20), Sound(2.5, S.SILENCE),
              Sound(7.0, S.SPEECH, level_dbfs=-20), Sound(7.5, S.SILENCE)]
    call, channel = await flow_call(sounds, stalls=((1.0, 8.0),))
    window = await call.listen(10)  # the old code stamped both at 8.0: speech
    assert window.heard(S.SPEECH, 2) and not call.speech_confirmed()


async def test_voiced_breathing_in_two_short_windows_is_not_one_long_run():
    # 1.5 s of loud breathing, nobody listening for 10 s, 1.5 s again: two runs of ~1 s, not one of 12 s
    timers = SilentCallTimers().validate()
    sounds = [Sound(0, S.BREATHING, level_dbfs=-25)]
    call, channel = await flow_call(sounds, stalls=())
    await call.listen(1.5)
    await channel.stop_listening()
    await channel.next_input(10)
    window = await call.listen(1.5)  # the old code counted 0.5 → 13 s as one run: DistressHeard
    assert window.heard(S.BREATHING) and not call.distress_likely()
    assert 12 > timers.distress_voiced_seconds


async def test_voiced_breathing_delivered_in_a_burst_keeps_its_length():
    # 6 s of loud breathing (more than distress_voiced_seconds, 5 s) reaching the flow in one burst is 6 s
    sounds = [Sound(0, S.SILENCE), Sound(1.0, S.BREATHING, level_dbfs=-25)]
    call, channel = await flow_call(sounds, stalls=((0.75, 7.5),))
    with pytest.raises(DistressHeard):
        await call.listen(10)
    assert channel.now == pytest.approx(7.5)


async def test_voiced_breathing_then_calm_in_one_burst_is_still_distress():
    # 6 s of loud breathing then calm breathing, all reaching the flow at once: what the loud run proved
    # is not undone by the calm readings after it in the same burst
    sounds = [Sound(0, S.SILENCE), Sound(1.0, S.BREATHING, level_dbfs=-25), Sound(7.5, S.BREATHING, level_dbfs=-50)]
    call, channel = await flow_call(sounds, stalls=((0.75, 10.0),))
    with pytest.raises(DistressHeard):  # the old code looked after the whole burst: the run was over
        await call.listen(12)
    assert channel.now == pytest.approx(10.0)
