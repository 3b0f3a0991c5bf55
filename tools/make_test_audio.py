#!/usr/bin/env python3
"""Generate labelled test audio for the audio classifier (re-runnable, seeded).

    python tools/make_test_audio.py [--out tests/audio/generated] [--per-class 25]

Writes OUT/{dev,test,holdout}/{label}/*.wav (8 kHz mono int16, already through G.711)
and a few raw μ-law files (.ulaw), with labels:

    dead_line  silence  background_noise  breathing  speech  taps_1  taps_2  taps_3

Sources: real recorded speech from the Asterisk core sounds (fr_CA June, en_US
Allison, read from a Debian root; see --sounds), espeak-ng speech (several fr
and en voices, rates, pitches), and noises made with numpy from a seed (white,
pink, brown, traffic-like, babble of mixed speech at low level), synthetic
breathing (band-passed noise under a slow inhale/exhale envelope), taps
(short broadband clicks/thumps; over line hiss, over noise, or over breathing as
in the seed procedure), line clicks, tones and comfort-noise-like hiss.

The splits use different seeds and espeak voices, and dev never shares an
Asterisk prompt with test/holdout: `dev` is what the classifier was tuned on;
`test` was looked at during development (so it is no longer blind); `holdout`
was generated and scored once, at the end. Needs sox and espeak-ng.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

SR = 8000
CLIP_SECONDS = 10.0
LABELS = ("dead_line", "silence", "background_noise", "breathing", "speech", "taps_1", "taps_2", "taps_3")

SOUND_ROOTS = (
    os.environ.get("CALLFLOW_SOUNDS", ""),
    "/var/lib/callflow/sid-root/usr/share/asterisk/sounds",
    "/var/lib/callflow/sid-root.tmp/usr/share/asterisk/sounds",
    "/usr/share/asterisk/sounds",
)
SPEAKER_DIRS = ("fr_CA_f_June", "en_US_f_Allison", "fr", "en")

SENTENCES = [
    "Bonjour, je vous appelle parce que ma facture est incorrecte.",
    "Allô ? Vous m'entendez ? J'ai un problème avec mon téléphone.",
    "Oui, c'est bien moi, je voudrais parler à un conseiller s'il vous plaît.",
    "Je n'arrive plus à me connecter à mon compte depuis hier soir.",
    "Pouvez-vous me rappeler plus tard, je suis dans le train.",
    "Mon numéro client commence par trois, quatre, sept.",
    "J'ai besoin d'aide, je ne sais pas quoi faire.",
    "Excusez-moi, je parle doucement parce que je suis au travail.",
    "Hello, do you speak English? I need some help with my bill.",
    "I can hear you, but the line is very bad, can you call me back?",
    "My account was charged twice this month and I would like a refund.",
    "Non, ce n'est pas un problème technique, c'est pour un remboursement.",
    "D'accord, merci beaucoup, au revoir.",
    "Attendez, je cherche mon numéro de dossier, un instant.",
    "C'est urgent, j'ai vraiment besoin que quelqu'un m'aide maintenant.",
    "Je vous entends très mal, il y a de la friture sur la ligne.",
]
# Level ranges. "stress" is a harder profile (soft voices, low SNR, faint taps and
# breaths) reported separately: it shows where the classifier stops working.
PROFILES = {
    "normal": {"speech_dbfs": (-32, -10), "snr_db": (10, 25), "tap_peak_dbfs": (-28, -6), "tap_over_noise_db": 22,
               "breath_dbfs": (-50, -26), "tap_breath_dbfs": (-50, -26), "tap_over_breath_db": 18},
    "stress": {"speech_dbfs": (-45, -28), "snr_db": (0, 10), "tap_peak_dbfs": (-38, -20), "tap_over_noise_db": 14,
               "breath_dbfs": (-60, -45), "tap_breath_dbfs": (-45, -26), "tap_over_breath_db": 12},
}
PROFILE = PROFILES["normal"]

VOICES = {
    "dev": ["fr", "fr-be+m3", "en-us", "fr+f2"],
    "test": ["fr-ch+m1", "en-gb+f3", "fr+m7", "fr-be+f4"],
    "holdout": ["fr+f5", "en-us+m2", "fr-ch+f1", "fr-be+m6"],
    "stress": ["fr+m4", "en-gb+m5", "fr-ch+f2", "fr-be+f5"],
}


# ---------------------------------------------------------------------------- helpers
def rng_for(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def db_to_amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def set_active_level(x: np.ndarray, dbfs: float, active_db: float = 20.0) -> np.ndarray:
    """Scale so the RMS of the loud part (within `active_db` of the peak frame) is `dbfs`."""
    n = len(x) // 160
    if n == 0:
        return x
    frames = x[: n * 160].reshape(n, 160)
    e = np.sqrt(np.mean(frames**2, axis=1) + 1e-20)
    loud = e > e.max() * db_to_amp(-active_db)
    current = float(np.sqrt(np.mean(e[loud] ** 2)))
    return x * (db_to_amp(dbfs) / current)


def bandpass(x: np.ndarray, low: float, high: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(f < low) | (f > high)] = 0
    return np.fft.irfft(spec, n=len(x))


def white(rng, n):
    return rng.standard_normal(n)


def pink(rng, n):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n=n)
    return y / rms(y)


def brown(rng, n):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.maximum(f[1:], 20.0)
    spec[0] = 0
    y = np.fft.irfft(spec, n=n)
    return y / rms(y)


def slow_envelope(rng, n, rate_hz):
    """Smooth random envelope in [0.2, 1] varying at about `rate_hz`."""
    points = max(int(n / SR * rate_hz) + 2, 3)
    knots = rng.uniform(0.2, 1.0, points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)


def place(canvas: np.ndarray, x: np.ndarray, at: int) -> None:
    end = min(len(canvas), at + len(x))
    if at < end:
        canvas[at:end] += x[: end - at]


def g711_roundtrip(x: np.ndarray, codec: str) -> np.ndarray:
    from callflow.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    if codec == "alaw":
        return alaw_decode(alaw_encode(pcm))
    return ulaw_decode(ulaw_encode(pcm))


# ---------------------------------------------------------------------------- speech sources
class SpeechBank:
    """Speech snippets (float arrays at 8 kHz) for one split, cached as raw files."""

    def __init__(self, split: str, cache: Path, sounds: Path | None, rng: np.random.Generator):
        self.split = split
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.prompts = self._asterisk_prompts(sounds, rng) if sounds else []
        self.voices = VOICES[split]

    def _asterisk_prompts(self, sounds: Path, rng) -> list[Path]:
        files = []
        for speaker in SPEAKER_DIRS:
            d = sounds / speaker
            if d.is_dir():
                files += sorted(p for p in d.glob("*.gsm") if p.stat().st_size > 6000)
        # Split prompts by a stable hash: dev never shares a prompt with test/holdout.
        held_out = self.split != "dev"
        chosen = [p for p in files if (int(hashlib.md5(p.name.encode()).hexdigest(), 16) % 2) == held_out]
        rng.shuffle(chosen)
        return chosen[:120]

    def _load_gsm(self, path: Path) -> np.ndarray:
        out = self.cache / (path.parent.name + "_" + path.stem + ".raw")
        if not out.exists():
            subprocess.run(["sox", str(path), "-r", str(SR), "-c", "1", "-b", "16", "-e", "signed", "-t", "raw", str(out)], check=True)
        return np.fromfile(out, dtype=np.int16).astype(np.float64) / 32768

    def _tts(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = hashlib.md5(f"{text}|{voice}|{speed}|{pitch}".encode()).hexdigest()[:16]
        out = self.cache / f"tts_{key}.raw"
        if not out.exists():
            wav = self.cache / f"tts_{key}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text], check=True, capture_output=True)
            subprocess.run(["sox", str(wav), "-r", str(SR), "-c", "1", "-b", "16", "-e", "signed", "-t", "raw", str(out), "highpass", "250", "lowpass", "3400"], check=True)
            wav.unlink()
        return np.fromfile(out, dtype=np.int16).astype(np.float64) / 32768

    def utterance(self, rng: np.random.Generator) -> np.ndarray:
        if self.prompts and rng.random() < 0.55:
            return self._load_gsm(self.prompts[rng.integers(len(self.prompts))])
        text = SENTENCES[rng.integers(len(SENTENCES))]
        voice = self.voices[rng.integers(len(self.voices))]
        return self._tts(text, voice, int(rng.integers(120, 190)), int(rng.integers(25, 75)))

    def talk(self, rng, seconds: float, gap=(0.2, 0.9)) -> np.ndarray:
        """Utterances with pauses, about `seconds` long."""
        out = np.zeros(int(seconds * SR))
        at = int(rng.uniform(0.0, 0.8) * SR)
        while at < len(out) - SR // 2:
            u = self.utterance(rng)
            u = u / (np.abs(u).max() + 1e-9)
            place(out, u, at)
            at += len(u) + int(rng.uniform(*gap) * SR)
        return out


# ---------------------------------------------------------------------------- sound makers
def line_hiss(rng, n, dbfs):
    return pink(rng, n) * db_to_amp(dbfs) * 0.5 + white(rng, n) * db_to_amp(dbfs) * 0.5


def make_dead_line(rng, n, bank):
    kind = rng.integers(3)
    x = np.zeros(n)
    if kind == 2:  # a short burst of line noise, then the line goes digitally silent
        cut = int(rng.uniform(0.3, 1.2) * SR)
        x[:cut] = line_hiss(rng, cut, rng.uniform(-60, -45))
    return x, ("alaw" if kind == 1 else "ulaw"), "digital silence" + (" after burst" if kind == 2 else "")


def make_silence(rng, n, bank):
    kind = rng.integers(3)
    if kind == 0:
        return line_hiss(rng, n, rng.uniform(-78, -62)), "ulaw", "line hiss"
    if kind == 1:  # comfort-noise-like: very low, stationary, band-limited
        return bandpass(white(rng, n), 200, 3000) * db_to_amp(rng.uniform(-72, -60)), "ulaw", "comfort noise"
    x = rng.integers(-24, 25, n) / 32768.0  # dither just above G.711's zero step: not digital silence
    return x, "alaw" if rng.random() < 0.3 else "ulaw", "dither"


def make_noise_bed(rng, n, bank, dbfs):
    kind = rng.integers(7)
    if kind == 0:
        x, what = white(rng, n), "white"
    elif kind == 1:
        x, what = pink(rng, n), "pink"
    elif kind == 2:
        x, what = brown(rng, n), "brown"
    elif kind == 3:  # traffic-like: rumble with slow, irregular swells
        x = (brown(rng, n) + 0.5 * pink(rng, n)) * slow_envelope(rng, n, rng.uniform(0.1, 0.4))
        what = "traffic"
    elif kind == 4:  # babble: several voices far away, plus room noise
        x = sum(np.roll(bank.talk(rng, n / SR, gap=(0.0, 0.3)), int(rng.integers(n))) for _ in range(rng.integers(4, 8)))
        x = x / rms(x) + 0.3 * pink(rng, n)
        what = "babble"
    elif kind == 5:  # tone: dial tone or cadenced ringback (425 Hz) with hiss
        t = np.arange(n) / SR
        x = np.sin(2 * np.pi * 425 * t)
        if rng.random() < 0.5:
            x *= (t % 5.0) < 1.5
        x = x + 0.05 * pink(rng, n)
        what = "tone"
    else:  # line clicks over hiss: single-sample spikes, never 5 ms long like a tap
        x = 0.3 * pink(rng, n)
        for at in rng.integers(0, n, rng.integers(5, 30)):
            x[at] += rng.choice([-1, 1]) * rng.uniform(3, 10)
        what = "clicks"
    x = x / rms(x) * db_to_amp(dbfs)
    return x, what


def make_background_noise(rng, n, bank):
    x, what = make_noise_bed(rng, n, bank, rng.uniform(-45, -18))
    return x, "ulaw", what


def breath_cycle(rng, period: float, inhale_center: float) -> np.ndarray:
    n = int(period * SR)
    inhale = int(n * rng.uniform(0.3, 0.42))
    exhale = int(n * rng.uniform(0.35, 0.48))
    gap = int(n * rng.uniform(0.0, 0.05))
    env = np.zeros(n)
    env[:inhale] = np.sin(np.linspace(0, np.pi, inhale)) ** 2 * rng.uniform(0.5, 1.0)
    s = inhale + gap
    e = min(s + exhale, n)
    env[s:e] = np.sin(np.linspace(0, np.pi, e - s)) ** 1.5 * rng.uniform(0.6, 1.0)
    noise_in = bandpass(white(rng, n), inhale_center * 0.6, inhale_center * 1.8)
    noise_out = bandpass(white(rng, n), inhale_center * 0.4, inhale_center * 1.2)
    out = np.zeros(n)
    out[:inhale] = noise_in[:inhale] * env[:inhale]
    out[s:e] = noise_out[s:e] * env[s:e]
    return out


def breath_train(rng, n):
    """Unscaled breaths at 0.2–0.5 per second (±15 % per breath); returns (x, rate)."""
    rate = rng.uniform(0.2, 0.5)  # breaths per second
    center = rng.uniform(500, 1800)
    x = np.zeros(n)
    at = int(rng.uniform(0, 1.5) * SR)
    while at < n:
        period = (1 / rate) * rng.uniform(0.85, 1.15)
        c = breath_cycle(rng, period, center)
        place(x, c, at)
        at += len(c)
    return x, rate


def make_breathing(rng, n, bank):
    x, rate = breath_train(rng, n)
    x = set_active_level(x, rng.uniform(*PROFILE["breath_dbfs"]))
    bed = line_hiss(rng, n, rng.uniform(-75, -62))
    if rng.random() < 0.25:
        bed = make_noise_bed(rng, n, bank, rng.uniform(-58, -52))[0]
    return x + bed, "ulaw", f"breathing {rate:.2f} Hz"


def make_speech(rng, n, bank):
    x = bank.talk(rng, n / SR)
    level = rng.uniform(*PROFILE["speech_dbfs"])
    x = set_active_level(x, level)
    what = f"speech {level:.0f} dBFS"
    if rng.random() < 0.5:
        snr = rng.uniform(*PROFILE["snr_db"])
        bed, kind = make_noise_bed(rng, n, bank, level - snr)
        x = x + bed
        what += f" + {kind} snr {snr:.0f}"
    else:
        x = x + line_hiss(rng, n, rng.uniform(-75, -60))
    return x, "alaw" if rng.random() < 0.2 else "ulaw", what


def tap_sound(rng) -> np.ndarray:
    dur = rng.uniform(0.005, 0.03)
    m = int(dur * SR) + 1
    t = np.arange(m) / SR
    click = rng.standard_normal(m) * np.exp(-t / (dur / 3))
    thump = np.sin(2 * np.pi * rng.uniform(80, 300) * t) * np.exp(-t / (dur / 2))
    mix = rng.uniform(0.2, 1.0)
    y = mix * click + (1 - mix) * 2 * thump
    y[: min(4, m)] *= np.linspace(0.3, 1, min(4, m))
    return y / np.abs(y).max()


def make_taps(count):
    def make(rng, n, bank):
        x = np.zeros(n)
        at = rng.uniform(1.0, 3.0)
        peak = rng.uniform(*PROFILE["tap_peak_dbfs"])
        for _ in range(count):
            place(x, tap_sound(rng) * db_to_amp(peak + rng.uniform(-3, 3)), int(at * SR))
            at += rng.uniform(0.15, 0.6)
        what = f"{count} taps peak {peak:.0f} dBFS"
        bed_kind = rng.random()
        if bed_kind < 0.35:
            # The seed procedure asks a caller who breathes but cannot speak to tap: taps over
            # breathing, the breath's active RMS at least tap_over_breath_db under the tap peaks.
            breath, rate = breath_train(rng, n)
            level = min(rng.uniform(*PROFILE["tap_breath_dbfs"]), peak - PROFILE["tap_over_breath_db"])
            x = x + set_active_level(breath, level) + line_hiss(rng, n, rng.uniform(-75, -62))
            what += f" over breathing {level:.0f} dBFS {rate:.2f} Hz"
        elif bed_kind < 0.65:
            # A tap on the handset is loud at the microphone: its peak stays well over the noise.
            bed, kind = make_noise_bed(rng, n, bank, min(rng.uniform(-52, -40), peak - PROFILE["tap_over_noise_db"]))
            if kind in ("babble", "clicks", "tone"):
                bed, kind = pink(rng, n) * db_to_amp(-45), "pink"
            x = x + bed
            what += f" over {kind}"
        else:
            x = x + line_hiss(rng, n, rng.uniform(-75, -60))
        return x, "ulaw", what

    return make


MAKERS = {
    "dead_line": make_dead_line,
    "silence": make_silence,
    "background_noise": make_background_noise,
    "breathing": make_breathing,
    "speech": make_speech,
    "taps_1": make_taps(1),
    "taps_2": make_taps(2),
    "taps_3": make_taps(3),
}


# ---------------------------------------------------------------------------- output
def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.astype("<i2").tobytes())


def find_sounds(explicit: str | None) -> Path | None:
    for root in (explicit, *SOUND_ROOTS):
        if root and any((Path(root) / d).is_dir() for d in SPEAKER_DIRS):
            return Path(root)
    return None


def generate(out: Path, per_class: int, splits: list[str], sounds: Path | None) -> None:
    from callflow.audio.g711 import ulaw_encode

    global PROFILE
    for split in splits:
        PROFILE = PROFILES["stress" if split == "stress" else "normal"]
        bank = SpeechBank(split, out / "_cache", sounds, rng_for(split, "bank"))
        for label in LABELS:
            folder = out / split / label
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            manifest = []
            for i in range(per_class):
                rng = rng_for(split, label, i)
                n = int(CLIP_SECONDS * SR)
                x, codec, what = MAKERS[label](rng, n, bank)
                peak = np.abs(x).max()
                if peak > 0.98:
                    x = x * (0.98 / peak)
                pcm = g711_roundtrip(x, codec)
                name = f"{label}_{split}_{i:03d}"
                if i % 7 == 3 and codec == "ulaw":
                    (folder / f"{name}.ulaw").write_bytes(ulaw_encode(pcm))
                    name += ".ulaw"
                else:
                    write_wav(folder / f"{name}.wav", pcm)
                    name += ".wav"
                manifest.append(f"{name}\t{codec}\t{what}")
            (folder / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n")
            print(f"{split}/{label}: {per_class} clips", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/audio/generated")
    parser.add_argument("--per-class", type=int, default=25)
    parser.add_argument("--splits", nargs="+", default=["dev", "test", "holdout"], choices=list(VOICES))
    parser.add_argument("--sounds", help="Asterisk sounds directory (with fr_CA_f_June/ and en_US_f_Allison/)")
    args = parser.parse_args(argv)
    for tool in ("sox", "espeak-ng"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed (apt-get install sox espeak-ng)")
    sounds = find_sounds(args.sounds)
    if sounds is None:
        print("warning: no Asterisk sound files found; speech will be espeak-ng only", file=sys.stderr)
    generate(args.out, args.per_class, args.splits, sounds)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
