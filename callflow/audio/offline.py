"""Offline use of the classifier: load a file, run it as if it were a live call,
and score a labelled folder tree. Used by `callflow audio classify|eval`.
"""

from __future__ import annotations

import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callflow.audio.classifier import CallAudio, ClassifierConfig, DEFAULT_CONFIG, analyse_calls, speech_scores_now, verdict
from callflow.audio.features import SAMPLE_RATE
from callflow.audio.g711 import alaw_decode, ulaw_decode
from callflow.audio.taps import QUIET_CLOSE
from callflow.core.channel import AudioReading, AudioState, TapInput

RAW_ULAW = {".ulaw", ".ul", ".raw", ".pcmu"}
RAW_ALAW = {".alaw", ".al", ".pcma"}
AUDIO_SUFFIXES = {".wav"} | RAW_ULAW | RAW_ALAW
PUSH_SECONDS = 0.1  # how much audio arrives between two analysis ticks, as with the receiver
#: After a clip, the call hears nothing this long: a tap group still open closes on the clock only
#: after QUIET_CLOSE without the caller's sound (taps.py), as it would on a live call.
TAIL_SECONDS = QUIET_CLOSE + 0.5


def load_audio(path: str | Path) -> np.ndarray:
    """8 kHz mono int16 from a .wav (8 kHz, 16-bit or G.711) or raw μ-law/A-law file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in RAW_ULAW:
        return ulaw_decode(path.read_bytes())
    if suffix in RAW_ALAW:
        return alaw_decode(path.read_bytes())
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE:
            raise ValueError(f"{path}: {w.getframerate()} Hz; convert first: sox IN -r 8000 -c 1 -b 16 OUT.wav")
        width, channels = w.getsampwidth(), w.getnchannels()
        data = w.readframes(w.getnframes())
    if width == 2:
        pcm = np.frombuffer(data, dtype="<i2")
    elif width == 1:  # 8-bit WAV is unsigned PCM (G.711 WAVs are rejected by the wave module)
        pcm = ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples not supported")
    if channels > 1:
        pcm = pcm.reshape(-1, channels)[:, 0]
    return pcm.astype(np.int16)


class ManualClock:
    """The injected clock of an offline run: advanced by the audio pushed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class OfflineResult:
    readings: list[AudioReading]
    taps: list[TapInput]
    timeline: list
    speech_score: float  # mean speech score over the clip, for ROC curves

    @property
    def verdict(self) -> AudioState:
        return verdict(self.readings, [t.count for t in self.taps])

    @property
    def tap_count(self) -> int:
        return sum(t.count for t in self.taps)


def run_offline(pcm: np.ndarray, config: ClassifierConfig = DEFAULT_CONFIG, tail_seconds: float = TAIL_SECONDS) -> OfflineResult:
    """Feed `pcm` in 100 ms pushes on a manual clock, then let tap groups close."""
    return run_offline_many([pcm], config, tail_seconds)[0]


def run_offline_many(pcms: list[np.ndarray], config: ClassifierConfig = DEFAULT_CONFIG, tail_seconds: float = TAIL_SECONDS) -> list[OfflineResult]:
    """Many clips as many calls answered together, analysed in one batch per tick (as the
    receiver analyses its calls): each clip gets exactly what `run_offline` of it alone gets
    (the analysis state is per call), at a fraction of the cost (the numpy work of a tick is
    shared). Each call is fed 100 ms per tick until its clip ends, then hears nothing for
    `tail_seconds` (open tap groups close; readings of that tail are not kept), then stops."""
    clock = ManualClock()
    n = len(pcms)
    taps: list[list[TapInput]] = [[] for _ in range(n)]
    calls = [CallAudio(clock=clock, config=config, on_taps=taps[k].append, queue_size=0) for k in range(n)]
    step = int(PUSH_SECONDS * SAMPLE_RATE)
    pcms = [np.asarray(p, dtype=np.int16).ravel() for p in pcms]
    readings: list[list[AudioReading]] = [[] for _ in range(n)]
    scores: list[list[float]] = [[] for _ in range(n)]
    ends: list[float | None] = [None] * n  # clock when the clip's audio ended
    timelines: list[list] = [[] for _ in range(n)]
    position = 0
    running = list(range(n))
    while running:
        feeding, listening = [], []
        for k in running:
            if position < len(pcms[k]):
                calls[k].push_pcm(pcms[k][position : position + step])
                feeding.append(k)
            else:
                if ends[k] is None:
                    ends[k] = clock.now
                if clock.now < ends[k] + tail_seconds:
                    listening.append(k)
                else:
                    timelines[k] = calls[k].timeline
                    calls[k].close()
        position += step
        running = feeding + listening
        if not running:
            break
        clock.now += PUSH_SECONDS
        emitted = analyse_calls([calls[k] for k in running])
        for k in feeding:
            readings[k] += emitted.get(calls[k], [])
        for k, score in zip(feeding, speech_scores_now([calls[k] for k in feeding])):
            scores[k].append(score)
    return [
        OfflineResult(readings[k], taps[k], timelines[k], float(np.mean(scores[k])) if scores[k] else 0.0)
        for k in range(n)
    ]


# ---------------------------------------------------------------------------- evaluation
def label_of(folder: str) -> tuple[AudioState, int | None]:
    """Folder name → expected state (and tap count for taps_N)."""
    if folder.startswith("taps"):
        count = folder.partition("_")[2]
        return AudioState.TAPS, int(count) if count.isdigit() else None
    return AudioState(folder), None


def collect(root: str | Path) -> list[tuple[Path, str]]:
    """(file, label folder) for every audio file under ROOT/<label>/ (any depth above)."""
    root = Path(root)
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in AUDIO_SUFFIXES and not any(part.startswith("_") for part in path.relative_to(root).parts):
            try:
                label_of(path.parent.name)
            except ValueError:
                continue
            out.append((path, path.parent.name))
    return out


def roc_auc(scores: list[float], positives: list[bool]) -> float:
    """Probability that a random positive scores above a random negative (ties = ½)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass
class Evaluation:
    rows: list[tuple[str, str, AudioState, int, float]] = field(default_factory=list)  # file, label, verdict, taps, score

    def add(self, path: Path, label: str, result: OfflineResult) -> None:
        self.rows.append((str(path), label, result.verdict, result.tap_count, result.speech_score))

    @property
    def states(self) -> list[AudioState]:
        return list(AudioState)

    def confusion(self) -> dict[AudioState, Counter]:
        table: dict[AudioState, Counter] = {s: Counter() for s in AudioState}
        for _f, label, got, _t, _s in self.rows:
            table[label_of(label)[0]][got] += 1
        return table

    def precision_recall(self) -> dict[AudioState, tuple[float, float, int]]:
        table = self.confusion()
        out = {}
        for s in AudioState:
            tp = table[s][s]
            truth = sum(table[s].values())
            called = sum(table[t][s] for t in AudioState)
            out[s] = (tp / called if called else float("nan"), tp / truth if truth else float("nan"), truth)
        return out

    def speech_auc(self) -> float:
        return roc_auc([r[4] for r in self.rows], [label_of(r[1])[0] is AudioState.SPEECH for r in self.rows])

    def tap_count_accuracy(self) -> tuple[int, int]:
        tap_rows = [r for r in self.rows if label_of(r[1])[1] is not None]
        ok = sum(1 for r in tap_rows if r[3] == label_of(r[1])[1])
        return ok, len(tap_rows)

    def dead_line_as_present(self) -> int:
        """Dead-line clips whose verdict was a sign of life (must be 0)."""
        from callflow.core.channel import SIGNS_OF_LIFE

        return sum(1 for r in self.rows if label_of(r[1])[0] is AudioState.DEAD_LINE and r[2] in SIGNS_OF_LIFE)

    def recall(self, state: AudioState) -> float:
        return self.precision_recall()[state][1]

    def macro_recall(self, states=None) -> float:
        """Mean recall over `states` (default: the six caller-audio classes of issue 3)."""
        states = states or SIX_CLASSES
        return float(np.mean([self.recall(s) for s in states]))

    def called(self, truth: AudioState, verdicts) -> float:
        """Share of the `truth` clips whose verdict is in `verdicts`."""
        mine = [r for r in self.rows if label_of(r[1])[0] is truth]
        return sum(1 for r in mine if r[2] in verdicts) / len(mine) if mine else float("nan")

    def tones_as_caller(self) -> int:
        """Line-tone clips whose verdict was a sign of life (must be 0)."""
        from callflow.core.channel import SIGNS_OF_LIFE

        return sum(1 for r in self.rows if label_of(r[1])[0] is AudioState.LINE_TONE and r[2] in SIGNS_OF_LIFE)

    def tap_count_by_bed(self, beds: dict[str, str]) -> dict[str, tuple[int, int]]:
        """Tap count exactness per bed; `beds` maps a clip's file name to its bed."""
        out: dict[str, list[int]] = {}
        for f, label, _v, taps, _s in self.rows:
            expected = label_of(label)[1]
            if expected is None:
                continue
            ok_n = out.setdefault(beds.get(Path(f).name, "?"), [0, 0])
            ok_n[0] += taps == expected
            ok_n[1] += 1
        return {bed: (ok, n) for bed, (ok, n) in sorted(out.items())}

    def false_breathing_rate(self) -> float:
        others = [r for r in self.rows if label_of(r[1])[0] is not AudioState.BREATHING]
        return sum(1 for r in others if r[2] is AudioState.BREATHING) / len(others) if others else float("nan")

    def report(self) -> str:
        short = {s: s.value[:10] for s in AudioState}
        lines = [f"{len(self.rows)} clips", "", f"{'class':<17}{'precision':>10}{'recall':>8}{'n':>5}"]
        for s, (p, r, n) in self.precision_recall().items():
            lines.append(f"{s.value:<17}{p:>10.2f}{r:>8.2f}{n:>5}")
        lines += ["", "confusion (rows: truth, columns: verdict)", " " * 17 + "".join(f"{short[s]:>11}" for s in AudioState)]
        for s, counts in self.confusion().items():
            lines.append(f"{s.value:<17}" + "".join(f"{counts[t]:>11}" for t in AudioState))
        ok, n = self.tap_count_accuracy()
        lines += [
            "",
            f"speech vs non-speech ROC-AUC: {self.speech_auc():.3f}",
            f"tap count exact: {ok}/{n}" + (f" ({ok / n:.1%})" if n else ""),
            f"breathing called on other clips: {self.false_breathing_rate():.1%}",
            f"dead line reported as a present caller: {self.dead_line_as_present()}",
        ]
        if any(label_of(r[1])[0] is AudioState.LINE_TONE for r in self.rows):
            lines.append(f"line tones reported as a caller: {self.tones_as_caller()}")
        lines += [
            f"background noise called speech: {self.called(AudioState.BACKGROUND_NOISE, {AudioState.SPEECH}):.1%},"
            f" taps: {self.called(AudioState.BACKGROUND_NOISE, {AudioState.TAPS}):.1%},"
            f" breathing: {self.called(AudioState.BACKGROUND_NOISE, {AudioState.BREATHING}):.1%}",
            f"6-class macro recall: {self.macro_recall():.3f}",
        ]
        return "\n".join(lines)


SIX_CLASSES = (
    AudioState.DEAD_LINE, AudioState.SILENCE, AudioState.BACKGROUND_NOISE,
    AudioState.BREATHING, AudioState.SPEECH, AudioState.TAPS,
)


def _run_clips(args) -> list[tuple[str, str, OfflineResult]]:
    jobs, config = args
    results = run_offline_many([load_audio(path) for path, _label in jobs], config)
    return [(str(path), label, result) for (path, label), result in zip(jobs, results)]


def evaluate(root: str | Path, config: ClassifierConfig = DEFAULT_CONFIG, verbose: bool = False, workers: int = 1) -> Evaluation:
    """Every labelled clip under ROOT as a live call, all of them analysed together (one batch per
    tick, as the receiver does); `workers` > 1 shares the clips out among that many processes."""
    evaluation = Evaluation()
    jobs = collect(root)
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        shares = [jobs[w::workers] for w in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            done = {str(path): (label, result) for share in pool.map(_run_clips, [(s, config) for s in shares]) for path, label, result in share}
        results = [(str(path), *done[str(path)]) for path, _label in jobs]
    else:
        results = _run_clips((jobs, config))
    for path, label, result in results:
        evaluation.add(Path(path), label, result)
        if verbose:
            print(f"{label:<17} {result.verdict.value:<17} taps={result.tap_count} score={result.speech_score:.2f} {Path(path).name}")
    return evaluation


# ---------------------------------------------------------------------------- Silero VAD (optional backend)
@dataclass
class SileroEvaluation:
    """`callflow audio eval DIR --backend silero`: speech vs non-speech only."""

    rows: list[tuple[str, str, float, float]] = field(default_factory=list)  # file, label, score, mean probability
    audio_seconds: float = 0.0
    cpu_seconds: float = 0.0
    threshold: float = 0.5

    def is_speech(self, label: str) -> bool:
        return label_of(label)[0] is AudioState.SPEECH

    def report(self) -> str:
        from callflow.audio import silero

        v = silero.versions()
        speech = [self.is_speech(r[1]) for r in self.rows]
        called = [r[2] >= self.threshold for r in self.rows]
        tp = sum(1 for s, c in zip(speech, called) if s and c)
        n_called, n_speech = sum(called), sum(speech)
        precision = tp / n_called if n_called else float("nan")
        recall = tp / n_speech if n_speech else float("nan")
        lines = [
            f"{len(self.rows)} clips, backend silero (onnxruntime {v['onnxruntime']}, silero-vad {v['silero-vad']},"
            f" {Path(v['model']).name})",
            f"clip score: {silero.SCORE_QUANTILE:.0%} quantile of the 32 ms chunk probabilities;"
            f" verdict speech when score >= {self.threshold:.2f}",
            "",
            f"{'class':<17}{'precision':>10}{'recall':>8}{'n':>5}",
            f"{'speech':<17}{precision:>10.2f}{recall:>8.2f}{n_speech:>5}",
            "",
            f"{'label':<17}{'clips':>6}{'called speech':>15}",
        ]
        for label in sorted({r[1] for r in self.rows}):
            mine = [c for r, c in zip(self.rows, called) if r[1] == label]
            lines.append(f"{label:<17}{len(mine):>6}{sum(mine):>15}")
        scores = [r[2] for r in self.rows]
        means = [r[3] for r in self.rows]
        lines += [
            "",
            f"speech vs non-speech ROC-AUC: {roc_auc(scores, speech):.3f} (mean probability as the score: {roc_auc(means, speech):.3f})",
            "tap count exact: n/a (Silero only tells speech from non-speech)",
            "breathing called on other clips: n/a",
            "dead line reported as a present caller: n/a",
            f"CPU: {1e3 * self.cpu_seconds / self.audio_seconds if self.audio_seconds else float('nan'):.2f} ms per clip-second"
            f" ({self.cpu_seconds:.1f} s process time for {self.audio_seconds:.0f} s of audio)",
        ]
        return "\n".join(lines)


def evaluate_silero(root: str | Path, verbose: bool = False, batch: int = 32) -> SileroEvaluation:
    """Silero VAD on every labelled clip under ROOT, `batch` clips per model call (as a live
    deployment would batch calls). CPU = process time of the model runs only."""
    import time

    from callflow.audio import silero

    silero.session()  # fail early (and keep the session's set-up out of the CPU figure)
    evaluation = SileroEvaluation(threshold=silero.THRESHOLD)
    clips = collect(root)
    for first in range(0, len(clips), batch):
        group = clips[first : first + batch]
        pcms = [load_audio(path) for path, _label in group]
        start = time.process_time()
        probs = silero.speech_probabilities_batch(pcms)
        evaluation.cpu_seconds += time.process_time() - start
        for (path, label), pcm, p in zip(group, pcms, probs):
            evaluation.audio_seconds += len(pcm) / SAMPLE_RATE
            score = silero.clip_score(p)
            evaluation.rows.append((str(path), label, score, float(p.mean()) if len(p) else 0.0))
            if verbose:
                verdict_ = "speech" if score >= evaluation.threshold else "non-speech"
                print(f"{label:<17} {verdict_:<11} score={score:.2f} mean={p.mean() if len(p) else 0:.2f} {path.name}")
    return evaluation
