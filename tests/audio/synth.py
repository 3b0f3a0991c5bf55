"""In-process test audio for unit tests: the generator's own sound makers, seeded.

Unit tests import this file by path (tests/ is not a package). Speech comes
from the two committed clips in tests/audio/clips/; everything else is
synthesised by tools/make_test_audio.py's functions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLIPS = Path(__file__).resolve().parent / "clips"
SR = 8000


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_test_audio", ROOT / "tools" / "make_test_audio.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_test_audio", module)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def to_pcm(x: np.ndarray, codec: str = "ulaw") -> np.ndarray:
    """float signal → int16 PCM after a G.711 round trip, like a phone line."""
    peak = np.abs(x).max()
    if peak > 0.98:
        x = x * (0.98 / peak)
    return gen.g711_roundtrip(x, codec)


def speech_clips() -> list[np.ndarray]:
    from callflow.audio.g711 import ulaw_decode

    return [ulaw_decode(p.read_bytes()).astype(np.float64) / 32768 for p in sorted(CLIPS.glob("speech_*.ulaw"))]


def talk(seed: int, seconds: float = 6.0, level_dbfs: float = -20.0) -> np.ndarray:
    """The committed speech clips, shuffled with pauses, at a given active level."""
    r = rng(seed)
    clips = speech_clips()
    out = np.zeros(int(seconds * SR))
    at = int(r.uniform(0, 0.4) * SR)
    while at < len(out) - SR // 4:
        clip = clips[r.integers(len(clips))]
        gen.place(out, clip / np.abs(clip).max(), at)
        at += len(clip) + int(r.uniform(0.15, 0.5) * SR)
    return gen.set_active_level(out, level_dbfs)


def hiss(seed: int, seconds: float, dbfs: float = -68.0) -> np.ndarray:
    return gen.line_hiss(rng(seed), int(seconds * SR), dbfs)


def noise(seed: int, seconds: float, kind: str, dbfs: float) -> np.ndarray:
    n = int(seconds * SR)
    r = rng(seed)
    x = {"white": gen.white, "pink": gen.pink, "brown": gen.brown}[kind](r, n)
    return x / gen.rms(x) * gen.db_to_amp(dbfs)


def breathing(seed: int, seconds: float = 10.0, rate_hz: float = 0.3, peak_dbfs: float = -35.0) -> np.ndarray:
    r = rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    at = int(0.5 * SR)
    while at < n:
        c = gen.breath_cycle(r, (1 / rate_hz) * r.uniform(0.9, 1.1), r.uniform(600, 1500))
        gen.place(x, c, at)
        at += len(c)
    return gen.set_active_level(x, peak_dbfs) + hiss(seed + 1, seconds)


def taps(seed: int, count: int, seconds: float = 6.0, peak_dbfs: float = -15.0, spacing=(0.15, 0.6), start: float = 1.5) -> np.ndarray:
    """`count` taps from `start` s with random spacing, on silence (add a bed yourself)."""
    r = rng(seed)
    x = np.zeros(int(seconds * SR))
    at = start
    for _ in range(count):
        gen.place(x, gen.tap_sound(r) * gen.db_to_amp(peak_dbfs + r.uniform(-3, 3)), int(at * SR))
        at += r.uniform(*spacing)
    return x
