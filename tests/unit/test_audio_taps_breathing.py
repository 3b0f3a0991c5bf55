"""Taps over breathing: the seed procedure asks a caller who breathes but cannot speak to tap.

Breaths are slow, band-limited noise; taps are short broadband transients. Both
must come out right: taps over a breathing bed found and counted as over line
hiss, and breathing alone never heard as taps.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from callflow.audio import g711
from callflow.audio.offline import run_offline
from callflow.core.channel import AudioState

_TESTS = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audio_synth", _TESTS / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def counts(x):
    r = run_offline(synth.to_pcm(x))
    return [t.count for t in r.taps], r


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("level", [-50.0, -42.0, -34.0, -30.0])
@pytest.mark.parametrize("seed", [61, 62])
def test_taps_over_breathing(count, level, seed):
    # Taps on the handset at −12 dBFS peak (±3), breaths at `level` (active RMS), 0.35 breaths/s.
    bed = synth.breathing(seed, 8.0, rate_hz=0.35, peak_dbfs=level)
    got, r = counts(synth.taps(seed + 100, count, seconds=8.0, peak_dbfs=-12.0, start=2.0) + bed)
    assert got == [count]
    assert r.verdict is AudioState.TAPS


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_taps_over_fast_and_slow_breathing(rate):
    bed = synth.breathing(70, 10.0, rate_hz=rate, peak_dbfs=-36.0)
    x = bed + synth.taps(71, 2, seconds=10.0, peak_dbfs=-14.0, start=2.0) + synth.taps(72, 3, seconds=10.0, peak_dbfs=-14.0, start=5.5)
    assert counts(x)[0] == [2, 3]


@pytest.mark.parametrize("level", [-50.0, -40.0, -32.0, -26.0])
@pytest.mark.parametrize("rate", [0.2, 0.35, 0.5])
def test_long_breathing_alone_gives_no_tap_groups(level, rate):
    got, r = counts(synth.breathing(80 + int(rate * 10), 40.0, rate_hz=rate, peak_dbfs=level))
    assert got == []
    assert r.verdict is AudioState.BREATHING


def _caller_audio():
    spec = importlib.util.spec_from_file_location("caller_audio_for_unit", _TESTS / "integration" / "caller_audio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("peak", [-45.0, -38.0])
def test_live_reproduction_over_breathing(peak):
    """The offline reproduction of the SIPp call: 22 groups of 1/2 taps over a breathing caller."""
    audio = _caller_audio()
    groups = [(10 + 6 * i, 1 + i % 2) for i in range(22)]
    x = audio.with_taps(audio.breathing(12, 150, peak_dbfs=peak), 13, groups)
    pcm = g711.ulaw_decode(g711.ulaw_encode(np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)))
    taps = run_offline(pcm).taps
    exact = 0
    for at, count in groups:
        heard = [t.count for t in taps if at < t.at < at + 4.0]  # a group closes ~1.3 s after its last tap
        exact += heard == [count]
    assert len(taps) <= len(groups)
    assert exact >= 21


@pytest.mark.parametrize("seed", [90, 91, 92])
def test_breathing_over_line_clicks_gives_no_tap_groups(seed):
    # A breather on a line with single-sample clicks: the whitening must not make the clicks taps.
    r = np.random.default_rng(seed)
    bed = synth.noise(seed, 20.0, "pink", -55.0)
    for at in r.integers(0, len(bed), 40):
        bed[at] += r.choice([-1, 1]) * r.uniform(3, 10) * synth.gen.db_to_amp(-55.0)
    got, _ = counts(synth.breathing(seed, 20.0, rate_hz=0.45, peak_dbfs=-44.0) + bed)
    assert got == []


@pytest.mark.parametrize("push_seconds", [0.02, 0.2])
def test_taps_over_breathing_do_not_depend_on_the_analysis_tick(push_seconds, monkeypatch):
    # The receiver analyses every 200 ms; the whitening filter must follow the line the same way.
    from callflow.audio import offline

    monkeypatch.setattr(offline, "PUSH_SECONDS", push_seconds)
    bed = synth.breathing(93, 8.0, rate_hz=0.3, peak_dbfs=-38.0)
    assert counts(bed + synth.taps(94, 2, seconds=8.0, peak_dbfs=-14.0, start=2.5))[0] == [2]
