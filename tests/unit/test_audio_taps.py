"""Tap counting: 1, 2, 3 taps, at varied spacing and levels, on quiet lines and in noise."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from callflow.audio.offline import run_offline
from callflow.core.channel import AudioState

_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def counts(x):
    r = run_offline(synth.to_pcm(x))
    return [t.count for t in r.taps], r


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_taps_on_a_quiet_line(count, seed):
    got, r = counts(synth.taps(seed, count) + synth.hiss(seed, 6.0))
    assert got == [count]
    assert r.verdict is AudioState.TAPS


@pytest.mark.parametrize("count, kind, level", [(1, "pink", -42.0), (2, "white", -45.0), (3, "brown", -35.0), (2, "pink", -38.0)])
def test_taps_during_background_noise(count, kind, level):
    got, _ = counts(synth.taps(30 + count, count, peak_dbfs=-12.0) + synth.noise(31, 6.0, kind, level))
    assert got == [count]


def test_fast_and_slow_spacing():
    assert counts(synth.taps(40, 3, spacing=(0.15, 0.16)) + synth.hiss(40, 6.0))[0] == [3]
    assert counts(synth.taps(41, 3, spacing=(0.6, 0.61)) + synth.hiss(41, 6.0))[0] == [3]


def test_a_pause_splits_groups():
    x = synth.taps(42, 1, seconds=8.0, start=1.0) + synth.taps(43, 2, seconds=8.0, start=3.5) + synth.hiss(42, 8.0)
    assert counts(x)[0] == [1, 2]


def test_single_sample_line_clicks_are_not_taps():
    r = np.random.default_rng(44)
    x = synth.noise(44, 8.0, "pink", -40.0)
    for at in r.integers(0, len(x), 20):
        x[at] += r.choice([-1, 1]) * 0.3
    got, res = counts(x)
    assert got == [] and res.verdict is AudioState.BACKGROUND_NOISE


def test_speech_is_not_counted_as_taps():
    got, res = counts(synth.talk(45, 6.0, -15.0))
    assert got == [] and res.verdict is AudioState.SPEECH


def test_breathing_is_not_counted_as_taps():
    got, _ = counts(synth.breathing(46, 10.0, 0.3, -30.0))
    assert got == []


def test_a_tap_just_before_the_stream_stops_still_counts():
    from callflow.audio.classifier import CallAudio
    from callflow.audio.offline import ManualClock

    clock = ManualClock()
    call = CallAudio(clock=clock, queue_size=0)
    got = []
    call.on_taps = got.append
    x = synth.to_pcm(synth.taps(50, 2, seconds=2.0, start=1.0, spacing=(0.3, 0.31)) + synth.hiss(50, 2.0))
    x = x[: int(1.33 * 8000)]  # the second tap's packet is the last one Asterisk sends
    for i in range(0, len(x), 800):
        call.push_pcm(x[i : i + 800])
        clock.now += 0.1
        call.process()
    for _ in range(30):  # no packets any more
        clock.now += 0.1
        call.process()
    assert [t.count for t in got] == [2]


def _bursts(seed: int, seconds: float, at: list[float], level_dbfs: float, length: float = 0.3) -> np.ndarray:
    """Sharp-onset noise bursts that do not decay like a tap (a clack, a crackle, a clap's
    reverberant tail): each one is a preselected onset the detector refuses."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * 8000))
    n = int(length * 8000)
    for t in at:
        start = int(t * 8000)
        x[start : start + n] += rng.standard_normal(n) * 10 ** (level_dbfs / 20) * np.sqrt(2)
    return x


def test_a_tap_group_among_impulsive_noise_is_not_an_answer():
    """Two taps heard among sharp onsets that were not taps (a crowd's claps, a fire, a train's
    clacks): impulsive noise, not « non » (taps.MAX_IMPULSES); the same taps on a quiet line count."""
    taps = synth.taps(60, 2, peak_dbfs=-6.0, start=2.0, spacing=(0.5, 0.51))
    quiet, _ = counts(taps + synth.hiss(60, 6.0))
    assert quiet == [2]
    # Clacks every 300 ms before the taps and after them (a train on its rails), 26 dB under the taps.
    noisy = taps + synth.hiss(60, 6.0) + _bursts(61, 6.0, [0.8, 1.1, 1.4, 1.7, 3.0, 3.3], -32.0, length=0.12)
    got, _ = counts(noisy)
    assert got == []


def test_batched_offline_runs_equal_single_runs():
    """`evaluate` runs a split's clips as calls analysed together: each gets what it gets alone."""
    from callflow.audio.offline import run_offline_many

    clips = [synth.to_pcm(synth.taps(70 + k, 1 + k % 3) + synth.hiss(70 + k, 6.0)) for k in range(3)]
    clips.append(synth.to_pcm(synth.talk(75, 4.0, -20.0)))
    clips.append(synth.to_pcm(synth.noise(76, 7.0, "pink", -35.0)))
    together = run_offline_many(clips)
    for pcm, batched in zip(clips, together):
        alone = run_offline(pcm)
        assert [(r.state, r.at, r.confidence) for r in batched.readings] == [(r.state, r.at, r.confidence) for r in alone.readings]
        assert [(t.count, t.at) for t in batched.taps] == [(t.count, t.at) for t in alone.taps]
        assert batched.timeline == alone.timeline
        assert abs(batched.speech_score - alone.speech_score) < 1e-6
