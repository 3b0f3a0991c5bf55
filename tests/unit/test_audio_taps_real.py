"""Tap counting on real hits that the detector of the third round missed (issue 12, fourth round).

The clips are from tests/audio/real/holdout3 (tuned on since this round: it is no longer unseen).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from callflow.audio.offline import load_audio, run_offline

REAL = Path(__file__).resolve().parents[1] / "audio" / "real"
_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def counts(pcm) -> list[int]:
    return [t.count for t in run_offline(np.asarray(pcm)).taps]


@pytest.mark.parametrize("clip, expected", [
    ("taps_1/taps_1_holdout3_008.ulaw", 1),  # Simutrans' gavel, -14 dBFS, over digital silence
    ("taps_1/taps_1_holdout3_012.ulaw", 1),  # the gavel at -9 dBFS
    ("taps_1/taps_1_holdout3_016.ulaw", 1),  # LMMS rim shot, -8 dBFS
    ("taps_2/taps_2_holdout3_009.ulaw", 2),  # rim + gavel over line hiss, 742 ms apart
])
def test_loud_hits_that_ring_long_and_stop_are_taps(clip, expected):
    """They ring 250 ms near their attack's level: the decay rule alone heard none of them."""
    assert counts(load_audio(REAL / "holdout3" / clip)) == [expected]


def _gavel() -> np.ndarray:
    x = load_audio(REAL / "holdout3" / "taps_1" / "taps_1_holdout3_008.ulaw").astype(np.float64)
    sounding = np.flatnonzero(x != 0)
    return x[sounding[0]: sounding[-1] + 1]  # the recorded hit: 250 ms of ring


@pytest.mark.parametrize("gap", [0.3, 0.4, 0.6, 0.8])
@pytest.mark.parametrize("bed", ["digital silence", "line hiss"])
def test_three_long_rings_are_three_taps(gap, bed):
    """Three gavel knocks: the rings of the first two are not the bed the third must stand over
    (they filled 25-40 % of the 2 s bed, and its 80th percentile refused the third)."""
    hit = _gavel()
    x = np.zeros(6 * 8000) if bed == "digital silence" else np.random.default_rng(1).standard_normal(6 * 8000) * 30
    for k in range(3):
        at = int((1.0 + k * gap) * 8000)
        x[at: at + len(hit)] += hit
    assert counts(np.clip(x, -32768, 32767).astype(np.int16)) == [3]


@pytest.mark.parametrize("clip", ["holdout2/line_tone/line_tone_holdout2_006.ulaw", "holdout2/line_tone/line_tone_holdout2_013.ulaw",
                                  "holdout/line_tone/line_tone_holdout_006.ulaw"])
def test_the_line_sound_starting_when_listening_starts_is_not_a_tap(clip):
    """V.21 modem clips: their first block rose from nothing (the audio before listening reads as
    silence) and decayed in the whitened blocks: one tap, a « oui » from a modem."""
    assert counts(load_audio(REAL / clip)) == []


def test_a_voiced_burst_that_stops_is_not_a_ring():
    """A 220 ms vowel-like burst (150 Hz pulse train, sharp onset, then silence) stops like a long
    ring but is voiced: a syllable, not a tap."""
    t = np.arange(int(0.22 * 8000)) / 8000
    vowel = np.sign(np.sin(2 * np.pi * 150 * t)) * (0.25 + 0.05 * np.sin(2 * np.pi * 4 * t))
    vowel = np.convolve(vowel, np.hanning(9) / np.hanning(9).sum(), mode="same")
    x = synth.hiss(90, 6.0)
    for at in (1.0, 2.5):
        x[int(at * 8000): int(at * 8000) + len(vowel)] += vowel
    assert counts(synth.to_pcm(x)) == []


# ---------------------------------------------------------------------------- session 7
@pytest.mark.parametrize("clip, expected", [("holdout3/taps_2/taps_2_holdout3_002.ulaw", 2), ("holdout3/taps_2/taps_2_holdout3_006.ulaw", 2),
                                            ("holdout3/taps_1/taps_1_holdout3_014.ulaw", 1)])
def test_taps_in_a_room_with_its_own_quiet_clicks_are_an_answer(clip, expected):
    """Real rooms tick and chirp 25-35 dB under a tap on the handset: those onsets are not the taps'
    rivals (taps.IMPULSE_LEVEL_DB). They counted as impulsive noise and dropped the answer (none heard).
    Onsets as loud as the taps still do: test_audio_taps.py::test_a_tap_group_among_impulsive_noise…"""
    assert counts(load_audio(REAL / clip)) == [expected]


def _ring(hz: float, seconds: float, tau: float | None, level_dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    envelope = np.exp(-t / tau) if tau else np.minimum(1.0, np.minimum(t, seconds - t) / 0.002)
    return np.sin(2 * np.pi * hz * t) * envelope * 10 ** (level_dbfs / 20) * 32767


def test_pitched_hits_are_taps_but_beeps_are_not():
    """Claves and woodblocks ring at a pitch (tonal frames) and die away; a beep or an in-band key
    tone holds its level and stops. The tonal guard refused the claves (holdout3: a « non » heard
    as « oui »); it still refuses beeps of 60-150 ms."""
    assert counts(load_audio(REAL / "holdout3" / "taps_2" / "taps_2_holdout3_008.ulaw")) == [2]
    for hz in (900.0, 1700.0, 2500.0):
        x = np.zeros(6 * 8000)
        for at in (1.5, 2.1):
            hit = _ring(hz, 0.2, 0.025, -14.0)
            x[int(at * 8000): int(at * 8000) + len(hit)] += hit
        assert counts(np.clip(x, -32768, 32767).astype(np.int16)) == [2], hz
    for hz, length in ((697.0 + 1209.0, 0.06), (1000.0, 0.1), (1400.0, 0.15), (425.0, 0.12)):
        x = np.zeros(6 * 8000)
        for at in (1.5, 2.1):
            beep = _ring(hz, length, None, -14.0)
            x[int(at * 8000): int(at * 8000) + len(beep)] += beep
        assert counts(np.clip(x, -32768, 32767).astype(np.int16)) == [], (hz, length)


@pytest.mark.parametrize("clip, expected", [
    ("holdout/taps_2/taps_2_holdout_003.ulaw", 2),  # 411 ms apart over breathing: heard as « oui »
    ("holdout/taps_2/taps_2_holdout_014.ulaw", 2),  # 383 ms apart over room noise: heard as « oui »
    ("holdout/taps_3/taps_3_holdout_011.ulaw", 3),  # 321/374 ms over loud breathing (-38 dBFS): heard as 2
    ("holdout/taps_1/taps_1_holdout_003.ulaw", 1),  # over the same loud breathing: not heard
])
def test_a_knock_that_builds_up_is_judged_on_its_first_ms(clip, expected):
    """A knock builds up over a few 2.5 ms blocks: its first block (the sharp rise) fell 0.5-1 dB
    short of the margins over the local background and over the bed, which the next two blocks
    clear. How loud an attack is is now judged on its first 7.5 ms; the sharp rise still on its
    first block."""
    assert counts(load_audio(REAL / clip)) == [expected]


def test_an_onset_far_under_the_groups_taps_is_the_room():
    """Real room noise with chirps 15-20 dB under the caller's taps: a chirp that passes for a tap
    joined the group (« non » heard as 3, or 4 taps for 3). A caller's taps of one answer are made
    the same way: an onset more than TAP_SPREAD_DB under the group's loudest is not one of them."""
    assert counts(load_audio(REAL / "holdout" / "taps_3" / "taps_3_holdout_002.ulaw")) == [3]
    assert counts(load_audio(REAL / "holdout3" / "taps_2" / "taps_2_holdout3_002.ulaw")) == [2]
