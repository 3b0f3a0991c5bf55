"""What the SIPp callers send: μ-law files made from the audio generator's sound makers.

Each file is built once per test session from a seed (tests/audio/synth.py and
tools/make_test_audio.py): breathing, street noise, speech, taps at chosen
times, sobs, digital silence.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from callflow.audio import g711

_spec = importlib.util.spec_from_file_location("synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)

SR = 8000
SOUNDS = Path(__file__).resolve().parents[2] / "sounds"


# -- when a scripted caller answers: the flow's prompts are real files, so their lengths tell --

def prompt_seconds(prompt: str, lang: str = "fr") -> float:
    return (SOUNDS / lang / f"{prompt}.ulaw").stat().st_size / 8000


def diagnosis_at() -> float:
    """When phase 3 starts: greeting, 3 s of listening, audio check (+ language hint), 10 s of listening."""
    return prompt_seconds("greeting") + 3 + prompt_seconds("audio_check") + prompt_seconds("language_hint") + 10


def keypad_caller(caller, keys: str, *, spacing: float = 13.0, then: float = 25.0):
    """Answer the questionnaire with keys: the first during « Je vous entends respirer… », then one
    every `spacing` seconds (a key early for a question cuts its prompt and is kept for it)."""
    caller.pause(diagnosis_at() + 3)
    for i, key in enumerate(keys):
        caller.press(key, gap=0.2).pause(spacing - 0.4 if i < len(keys) - 1 else then)
    return caller


def write_ulaw(path: Path, x: np.ndarray) -> Path:
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.98:
        x = x * (0.98 / peak)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    path.write_bytes(g711.ulaw_encode(pcm))
    return path


def seconds(x: float) -> int:
    return int(x * SR)


def breathing(seed: int, length: float, peak_dbfs: float = -38.0) -> np.ndarray:
    """A calm breather: slow inhale/exhale, quiet, no voice."""
    return synth.breathing(seed, length, rate_hz=0.3, peak_dbfs=peak_dbfs)


def with_taps(bed: np.ndarray, seed: int, groups: list[tuple[float, int]]) -> np.ndarray:
    """Add tap groups (at seconds, count) on top of a bed; taps of a group ~0.35 s apart."""
    out = bed.copy()
    r = synth.rng(seed)
    for at, count in groups:
        t = at
        for _ in range(count):
            tap = synth.gen.tap_sound(r) * synth.gen.db_to_amp(-14 + r.uniform(-2, 2))
            synth.gen.place(out, tap, seconds(t))
            t += r.uniform(0.3, 0.4)
    return out


def street_noise(seed: int, length: float) -> np.ndarray:
    return synth.noise(seed, length, "brown", -32.0) + synth.noise(seed + 1, length, "pink", -40.0)


def speech(seed: int, length: float) -> np.ndarray:
    return synth.talk(seed, length, level_dbfs=-20.0)


def sobbing(seed: int, length: float) -> np.ndarray:
    """Cas D / F: loud, irregular breaths broken by short voiced sobs."""
    r = synth.rng(seed)
    x = synth.breathing(seed, length, rate_hz=0.55, peak_dbfs=-24.0)
    t = 1.0
    while t < length - 1:
        n = seconds(r.uniform(0.25, 0.5))
        f0 = r.uniform(260, 340) * np.linspace(1.0, 0.8, n)  # a falling, broken voice
        phase = 2 * np.pi * np.cumsum(f0) / SR
        voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * np.hanning(n)
        synth.gen.place(x, voice * synth.gen.db_to_amp(-22), seconds(t))
        t += r.uniform(1.2, 2.5)
    return x


def digital_silence(length: float) -> np.ndarray:
    return np.zeros(seconds(length))
