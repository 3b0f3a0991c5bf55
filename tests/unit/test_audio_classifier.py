"""The per-call classifier on generated audio, one test per state, plus the
dead-line rules (what is a fact, what is a hint) and the reading contract."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from callflow.audio.classifier import CallAudio, verdict
from callflow.audio.offline import ManualClock, run_offline
from callflow.core.channel import SIGNS_OF_LIFE, AudioState

_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def classify(x: np.ndarray, codec: str = "ulaw"):
    return run_offline(synth.to_pcm(x, codec))


@pytest.mark.parametrize("seed, level", [(1, -30.0), (2, -18.0), (3, -12.0)])
def test_speech(seed, level):
    r = classify(synth.talk(seed, 6.0, level) + synth.hiss(seed, 6.0))
    assert r.verdict is AudioState.SPEECH
    assert r.speech_score > 0.5


def test_speech_in_noise():
    x = synth.talk(4, 6.0, -20.0) + synth.noise(4, 6.0, "pink", -38.0)
    assert classify(x).verdict is AudioState.SPEECH


@pytest.mark.parametrize("kind, level", [("white", -30.0), ("pink", -25.0), ("brown", -20.0), ("pink", -45.0)])
def test_background_noise(kind, level):
    r = classify(synth.noise(5, 8.0, kind, level))
    assert r.verdict is AudioState.BACKGROUND_NOISE
    assert r.speech_score < 0.3


def test_a_steady_tone_is_a_line_tone_not_speech():
    t = np.arange(8 * 8000) / 8000
    r = classify(0.1 * np.sin(2 * np.pi * 425 * t) + synth.hiss(6, 8.0))
    assert r.verdict is AudioState.LINE_TONE
    assert r.verdict not in SIGNS_OF_LIFE


@pytest.mark.parametrize("seed, rate, level", [(7, 0.25, -40.0), (8, 0.35, -30.0), (9, 0.45, -45.0)])
def test_breathing(seed, rate, level):
    r = classify(synth.breathing(seed, 10.0, rate, level))
    assert r.verdict is AudioState.BREATHING


@pytest.mark.parametrize("level", [-80.0, -66.0])
def test_silence_is_low_level_media(level):
    r = classify(synth.hiss(10, 6.0, level))
    assert r.verdict is AudioState.SILENCE


def test_long_digital_silence_is_a_dead_line_but_not_at_once():
    r = classify(np.zeros(8 * 8000))
    assert r.verdict is AudioState.DEAD_LINE
    first = [x.state for x in r.readings if x.at < 2.5]
    assert AudioState.DEAD_LINE not in first  # the config waits 3 s of constant samples
    assert r.readings[-1].state is AudioState.DEAD_LINE


def test_alaw_digital_silence_is_constant_too():
    assert classify(np.zeros(8 * 8000), "alaw").verdict is AudioState.DEAD_LINE


def test_no_packets_is_silence_not_a_dead_line():
    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    readings = []
    for _ in range(50):  # 5 s without a single packet (Asterisk is quiet after a playback)
        clock.now += 0.1
        readings += call.process()
    assert {r.state for r in readings} == {AudioState.SILENCE}


def test_caller_hint_inactive_makes_a_dead_line_whatever_arrives():
    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    call.caller_rtp_active(False)
    x = synth.to_pcm(synth.talk(11, 3.0, -20.0))
    readings = []
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        readings += call.process()
    assert {r.state for r in readings} == {AudioState.DEAD_LINE}
    call.caller_rtp_active(True)
    clock.now += 0.5
    assert call.process()[-1].state is not AudioState.DEAD_LINE


def test_comfort_noise_packets_are_silence():
    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    readings = []
    for _ in range(30):
        call.push_comfort_noise()
        clock.now += 0.1
        readings += call.process()
    assert {r.state for r in readings} == {AudioState.SILENCE}


def test_comfort_noise_after_speech_is_silence():
    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    x = synth.to_pcm(synth.talk(19, 2.0, -20.0))
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        call.process()
    for _ in range(5):
        call.push_comfort_noise()
        clock.now += 0.1
        readings = call.process()
    assert readings[-1].state is AudioState.SILENCE


def test_dead_line_is_never_a_sign_of_life():
    for x in (np.zeros(10 * 8000), np.concatenate([synth.hiss(12, 1.0, -50.0), np.zeros(9 * 8000)])):
        r = classify(x)
        assert r.verdict not in SIGNS_OF_LIFE
        assert not r.taps


def test_readings_come_at_least_every_half_second_with_call_relative_times():
    clock = ManualClock()
    clock.now = 1000.0
    call = CallAudio(clock=clock, queue_size=0)
    x = synth.to_pcm(synth.noise(13, 5.0, "white", -30.0))
    times = []
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        times += [r.at for r in call.process()]
    assert times[0] == pytest.approx(0.1)
    assert max(np.diff(times)) <= 0.5
    assert times[-1] >= 4.5


def test_raised_voice_flag_on_loud_speech_only():
    loud = classify(synth.talk(14, 5.0, -6.0))
    soft = classify(synth.talk(14, 5.0, -30.0))
    assert any(r.raised_voice for r in loud.readings)
    assert not any(r.raised_voice for r in soft.readings)


def test_timeline_runs_are_contiguous_and_ordered():
    x = np.concatenate([synth.hiss(15, 3.0), synth.talk(15, 4.0, -20.0), synth.noise(15, 4.0, "pink", -30.0)])
    r = classify(x)
    states = [s for _a, _b, s, _c in r.timeline]
    assert AudioState.SPEECH in states and AudioState.BACKGROUND_NOISE in states
    for (a0, b0, s0, _), (a1, b1, s1, _) in zip(r.timeline, r.timeline[1:]):
        assert b0 == a1 and s0 is not s1 and a1 < b1


async def test_queues_deliver_readings_and_taps():
    clock = ManualClock()
    call = CallAudio(clock=clock)
    x = synth.to_pcm(synth.taps(16, 2, 5.0) + synth.hiss(16, 5.0))
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        call.process()
    clock.now += 2.0
    call.process()
    assert (await call.next_taps(0.1)).count == 2
    assert (await call.next_reading(0.1)) is not None


async def test_reset_taps_forgets_queued_groups():
    clock = ManualClock()
    call = CallAudio(clock=clock)
    x = synth.to_pcm(synth.taps(18, 1, 4.0) + synth.hiss(18, 4.0))
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        call.process()
    clock.now += 2.0
    call.process()
    call.reset_taps()  # a new question: taps heard before it do not answer it
    assert await call.next_taps(0.05) is None


def test_verdict_prefers_signs_of_life_and_needs_a_majority_for_dead_line():
    from callflow.core.channel import AudioReading

    def rs(*states):
        return [AudioReading(s, 0.9, i * 0.25) for i, s in enumerate(states)]

    S, D, N, B = AudioState.SILENCE, AudioState.DEAD_LINE, AudioState.BACKGROUND_NOISE, AudioState.BREATHING
    assert verdict(rs(*[D] * 6 + [S] * 6)) is S
    assert verdict(rs(*[D] * 7 + [S] * 5)) is D
    assert verdict(rs(*[N] * 9 + [B] * 3)) is B
    assert verdict(rs(*[S] * 10), tap_counts=[1]) is AudioState.TAPS


def test_listening_again_keeps_one_timeline_with_a_hole():
    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    speech = synth.to_pcm(synth.talk(17, 3.0, -20.0))

    def feed(x):
        for i in range(0, len(x), 800):
            call.push_pcm(x[i : i + 800])
            clock.now += 0.1
            call.process()

    feed(speech)
    call.close()
    clock.now += 30.0  # not listening: the fork was torn down
    call.resume()
    feed(speech)
    runs = [(a, b, s) for a, b, s, _c in call.timeline if s is AudioState.SPEECH]
    assert len(runs) == 2
    assert runs[1][0] > runs[0][1] + 25.0  # the hole is not painted as speech


def test_pending_audio_is_bounded_when_analysis_stalls():
    from callflow.audio.classifier import MAX_PENDING_BYTES

    call = CallAudio(clock=ManualClock(), queue_size=0)
    for _ in range(1000):  # 20 s of packets, never analysed
        call.push_payload_fast(b"\xff" * 160)
    assert len(call._raw) <= MAX_PENDING_BYTES
