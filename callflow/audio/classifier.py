"""Per-call audio classification: PCM / G.711 in, AudioReading and TapInput out.

`CallAudio` is the one object per listening call. It is cheap: it buffers the
raw payload bytes it is given and does nothing per packet beyond that. The
work happens in `analyse_calls(calls, now)`, which decodes and featurises the
pending frames of *all* calls in one numpy batch, then lets each call update
its history, taps and state. The RTP receiver calls it every tick (200 ms); offline
tools and tests call `CallAudio.process()` which is the same for one call.

Decision rules (why, in short):
- the adapter's hint that the caller's RTP no longer reaches Asterisk is the
  only way to call an absent stream a dead line: Asterisk sends no packets to
  externalMedia during silence, so "no packets" alone is silence;
- digital silence (constant samples) for long is a dead line too (muted or
  broken device), but never before `digital_silence_dead_after`;
- webrtcvad fires on taps and noise, so speech needs voicing (harmonicity,
  low spectral flatness) as well, and taps are found on 2.5 ms block energies
  of the call's whitened signal (a prediction-error filter following the
  line's spectrum: band-limited breaths flatten out, broadband taps do not);
- breathing is a slow (0.2–0.6 Hz) periodic envelope of unvoiced noise, seen on
  an 8 s history.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import webrtcvad

from callflow.audio import features as F
from callflow.audio.g711 import ALAW_DECODE, ULAW_DECODE
from callflow.audio.taps import TapDetector
from callflow.core.channel import AudioReading, AudioState, TapInput

FRAME = F.FRAME_SAMPLES
FRAME_S = F.FRAME_SECONDS

TimelineEntry = tuple[float, float, AudioState, float]  # (start, end, state, confidence)
MAX_PENDING_BYTES = 8000 * 4  # 4 s of G.711 waiting for analysis, at most


@dataclass(frozen=True)
class ClassifierConfig:
    reading_interval: float = 0.25  # seconds between readings (the contract is ≤ 0.5)
    silence_dbfs: float = -55.0  # below this a line carries nobody's sound
    no_packets_after: float = 0.3  # seconds without packets that count as "no media now"
    digital_silence_dead_after: float = 3.0  # constant samples this long → dead line
    raised_voice_dbfs: float = -14.0  # loud voiced frames (p90) for the raised-voice flag
    vad_mode: int = 2
    vad_min_dbfs: float = -50.0  # quieter frames are never voiced (nor asked to webrtcvad)
    history_seconds: float = 8.0  # enough for two breaths at 0.25 Hz
    tap_state_hold: float = 1.5  # a tap keeps the state at TAPS this long
    voiced_harmonicity: float = 0.35
    voiced_flatness: float = 0.2


DEFAULT_CONFIG = ClassifierConfig()

ReadingCallback = Callable[[AudioReading], None]
TapCallback = Callable[[TapInput], None]


class CallAudio:
    """Audio state of one call while it is being listened to.

    Feed it with `push_payload` (raw G.711 from RTP), `push_pcm` (int16),
    `push_comfort_noise`, and the adapter's `caller_rtp_active` hint. Readings
    and tap groups go to the optional callbacks and to `readings` / `taps`
    (asyncio queues, bounded: the oldest item is dropped if nobody reads).
    """

    __slots__ = (
        "config", "clock", "answered_at", "codec", "on_reading", "on_taps", "readings", "taps",
        "_raw", "_pcm", "_hist", "_pos", "_filled", "_vad", "_tapper", "_floor", "_digital_run",
        "_last_packet", "_last_audio", "_fresh", "_last_cn", "_caller_rtp", "_next_reading_at",
        "_timeline", "_last_reading", "_last_now", "_breath_cache", "_acf", "_tail", "closed",
    )

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        answered_at: float | None = None,
        codec: str = "ulaw",
        config: ClassifierConfig = DEFAULT_CONFIG,
        on_reading: ReadingCallback | None = None,
        on_taps: TapCallback | None = None,
        queue_size: int = 64,
    ) -> None:
        self.config = config
        self.clock = clock
        self.answered_at = clock() if answered_at is None else answered_at
        self.codec = codec
        self.on_reading = on_reading
        self.on_taps = on_taps
        self.readings: asyncio.Queue[AudioReading] | None = asyncio.Queue(queue_size) if queue_size else None
        self.taps: asyncio.Queue[TapInput] | None = asyncio.Queue(queue_size) if queue_size else None
        self._raw = bytearray()
        self._pcm: list[np.ndarray] = []
        history = int(round(config.history_seconds / FRAME_S))
        # Twice the history so the window is always one contiguous slice.
        self._hist = np.zeros((2 * history, F.N_COLUMNS), dtype=np.float32)
        self._pos = history
        self._filled = 0
        self._vad = webrtcvad.Vad(config.vad_mode)
        self._tapper = TapDetector()
        self._floor = F.FLOOR_DBFS
        self._digital_run = 0  # consecutive constant frames
        self._last_packet: float | None = None
        self._fresh = False  # payload arrived by the fast path since the last analysis
        self._last_cn: float | None = None
        self._last_audio: float | None = None  # last audio payload (CN packets are not audio)
        self._caller_rtp: bool | None = None
        self._next_reading_at = 0.0
        self._timeline: list[list] = []
        self._last_reading: AudioReading | None = None
        self._last_now = 0.0  # call-relative time of the last analysis
        self._breath_cache = (-1e9, 0.0)  # (when, breathing score) of the last batched computation
        self._reset_whitening()
        self.closed = False

    def _reset_whitening(self) -> None:
        self._acf: np.ndarray | None = None  # smoothed normalised autocorrelation: whitens the bed for taps
        self._tail = np.zeros(F.LPC_ORDER, dtype=np.float32)  # last samples analysed

    # ---- input -------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock() - self.answered_at

    def _mark_packet(self, audio: bool = True) -> None:
        self._last_packet = self._now()
        if audio:
            self._last_audio = self._last_packet

    def push_payload(self, payload: bytes | bytearray | memoryview, codec: str | None = None) -> None:
        """Raw G.711 bytes (any length; whole 20 ms frames are analysed)."""
        if codec is not None and codec != self.codec:
            self._flush_raw_to_pcm()
            self.codec = codec
        self._raw += payload
        if len(self._raw) > MAX_PENDING_BYTES:
            del self._raw[: len(self._raw) - MAX_PENDING_BYTES]
        self._mark_packet()

    def push_payload_fast(self, payload: bytes) -> None:
        """Receiver hot path: payload in the current codec; its time is taken at analysis."""
        self._raw += payload
        self._fresh = True
        if len(self._raw) > MAX_PENDING_BYTES:  # analysis stalled: keep the newest audio only
            del self._raw[: len(self._raw) - MAX_PENDING_BYTES]

    def push_pcm(self, pcm: np.ndarray) -> None:
        """int16 samples at 8 kHz (decoded elsewhere, or from a file)."""
        self._flush_raw_to_pcm()
        self._pcm.append(np.asarray(pcm, dtype=np.int16).ravel())
        self._mark_packet()

    def push_comfort_noise(self) -> None:
        """An RFC 3389 CN packet: the far end says "silence", not "gone"."""
        self._mark_packet(audio=False)
        self._last_cn = self._last_packet

    def caller_rtp_active(self, active: bool | None) -> None:
        """Adapter hint: is the caller's RTP still reaching Asterisk? None = unknown."""
        self._caller_rtp = active

    def _flush_raw_to_pcm(self) -> None:
        if self._raw:
            table = ULAW_DECODE if self.codec == "ulaw" else ALAW_DECODE
            self._pcm.append(table[np.frombuffer(bytes(self._raw), dtype=np.uint8)])
            self._raw.clear()

    def _take_frames(self) -> tuple[str, bytes] | np.ndarray | None:
        """Whole pending frames: ("ulaw"/"alaw", bytes) on the fast path, else int16 array."""
        if self._pcm:
            self._flush_raw_to_pcm()
            pcm = np.concatenate(self._pcm) if len(self._pcm) > 1 else self._pcm[0]
            k = len(pcm) // FRAME
            rest = pcm[k * FRAME :]
            self._pcm = [rest] if len(rest) else []
            return pcm[: k * FRAME].reshape(k, FRAME) if k else None
        k = len(self._raw) // FRAME
        if not k:
            return None
        data = bytes(self._raw[: k * FRAME])
        del self._raw[: k * FRAME]
        return (self.codec, data)

    # ---- analysis ----------------------------------------------------------------------
    def process(self, now: float | None = None) -> list[AudioReading]:
        """Analyse what is pending and emit readings that are due (one-call batch)."""
        return analyse_calls((self,), now).get(self, [])

    def _note_fresh(self, now: float) -> None:
        if self._fresh:
            self._fresh = False
            self._last_packet = self._last_audio = now

    def _consume(self, rows: np.ndarray, now: float) -> None:
        """New feature rows (VAD and VOICED already filled in by the batch)."""
        k = len(rows)
        self._append_history(rows)
        window = self._window(50)
        self._floor = _quantile(window[:, F.LEVEL], 0.2)
        digital = rows[:, F.DIGITAL_SILENCE] > 0
        if digital.all():
            self._digital_run += k
        else:
            self._digital_run = k - 1 - int(np.flatnonzero(~digital)[-1])
        quiet = float(window[:, F.BLOCK_MEAN].min()) - 3.0  # a lower bound of the 40 ms means the detector uses
        self._tapper.push(rows[:, F.BLOCKS:].ravel(), rows[:, F.VOICED] > 0, rows[:, F.CREST], now, quiet)

    def _append_history(self, rows: np.ndarray) -> None:
        hist = self._hist
        history = len(hist) // 2
        rows = rows[-history:]
        k = len(rows)
        if self._pos + k > len(hist):
            hist[: history - k] = hist[self._pos - history + k : self._pos]
            self._pos = history - k
        hist[self._pos : self._pos + k] = rows
        self._pos += k
        self._filled = min(self._filled + k, history)

    def _window(self, frames: int) -> np.ndarray:
        n = min(frames, self._filled)
        return self._hist[self._pos - n : self._pos]

    @staticmethod
    def _voiced(rows: np.ndarray) -> np.ndarray:
        return rows[:, F.VOICED] > 0

    # ---- decisions ---------------------------------------------------------------------
    def speech_score(self, window: np.ndarray | None = None) -> float:
        """0..1: how much the last second sounds like a voice close to the phone."""
        w = self._window(50) if window is None else window
        if len(w) < 10:
            return 0.0
        floor = max(self._floor + 6.0, self.config.vad_min_dbfs)
        return float(speech_scores(w[None], np.array([floor], dtype=np.float32))[0])

    def breathing_score(self) -> float:
        """0..1: slow periodic unvoiced envelope over the last 4–8 s."""
        w = self._window(len(self._hist) // 2)
        if len(w) < 200:
            return 0.0
        return float(breathing_scores(w[None])[0])

    def _level_dbfs(self, window: np.ndarray) -> float:
        if not len(window):
            return F.FLOOR_DBFS
        power = np.mean(10.0 ** (window[:, F.LEVEL] / 10.0))
        return float(max(10.0 * math.log10(power + 1e-12), F.FLOOR_DBFS))

    def classify(self, now: float, speech: float | None = None, breathing: float | None = None) -> AudioReading:
        """The state of the line right now (call-relative seconds).

        `speech` / `breathing` may come precomputed for many calls at once
        (analyse_calls); otherwise they are computed here when needed.
        """
        cfg = self.config
        if self._caller_rtp is False:
            return AudioReading(AudioState.DEAD_LINE, 0.95, now)
        if self._last_packet is None or now - self._last_packet > cfg.no_packets_after:
            # No media is a fact, not a verdict: Asterisk sends nothing in silence.
            confidence = 0.8 if self._caller_rtp else 0.5
            return AudioReading(AudioState.SILENCE, confidence, now)
        window = self._window(50)
        level = self._level_dbfs(window[-25:])
        digital_s = self._digital_run * FRAME_S
        if digital_s >= cfg.digital_silence_dead_after:
            return AudioReading(AudioState.DEAD_LINE, 0.8, now, level)
        if digital_s >= 0.5 or len(window) == 0:
            return AudioReading(AudioState.SILENCE, 0.7, now, level)
        if self._last_cn is not None and (self._last_audio is None or self._last_cn >= self._last_audio):
            # The far end switched to comfort noise: silence, not a present caller, not a cut line.
            return AudioReading(AudioState.SILENCE, 0.8, now, level)
        if speech is None:
            speech = self.speech_score(window)
        recent_tap = self._tap_recent(now)
        if recent_tap and speech < 0.5:
            return AudioReading(AudioState.TAPS, 0.8, now, level)
        if 0.5 <= speech < 0.75:
            # A marginal voice score inside a clear breathing rhythm is a noisy breath.
            if breathing is None:
                breathing = self.breathing_score()
            if breathing >= 0.6:
                return AudioReading(AudioState.BREATHING, breathing, now, level, distress=self._distress())
        if speech >= 0.5:
            voiced = self._voiced(window)
            raised = bool(voiced.sum() >= 5 and _quantile(window[voiced, F.LEVEL], 0.9) > cfg.raised_voice_dbfs)
            return AudioReading(AudioState.SPEECH, speech, now, level, raised_voice=raised)
        breathing = self.breathing_score() if breathing is None else breathing
        if breathing >= 0.5:
            return AudioReading(AudioState.BREATHING, breathing, now, level, distress=self._distress())
        p50, p90 = _quantile(window[:, F.LEVEL], 0.5), _quantile(window[:, F.LEVEL], 0.9)
        if p50 > cfg.silence_dbfs or p90 > cfg.silence_dbfs + 8.0:
            confidence = min(0.5 + (p50 - cfg.silence_dbfs) / 20.0, 0.95)
            return AudioReading(AudioState.BACKGROUND_NOISE, max(confidence, 0.5) * (1 - speech), now, level)
        return AudioReading(AudioState.SILENCE, min(0.6 + (cfg.silence_dbfs - p90) / 20.0, 0.95), now, level)

    def _distress(self) -> bool:
        """Breathing with voice in it, irregular: sobs, moans (cas D/F). A hint only."""
        w = self._window(len(self._hist) // 2)
        voiced = self._voiced(w)
        return bool(0.05 <= voiced.mean() <= 0.3 and np.ptp(w[:, F.LEVEL]) > 25.0)

    def _tap_recent(self, now: float) -> bool:
        t = self._tapper.last_tap_at()
        return t is not None and now - t <= self.config.tap_state_hold

    def _reading_due(self, now: float) -> bool:
        return now >= self._next_reading_at

    def _needs_scores(self, now: float) -> bool:
        """Will classify() look at the audio (not settled by hint, absence or digital silence)?"""
        return (
            self._caller_rtp is not False
            and self._last_packet is not None
            and now - self._last_packet <= self.config.no_packets_after
            and self._digital_run * FRAME_S < 0.5
        )

    def _emit_due(self, now: float, speech: float | None = None, breathing: float | None = None) -> list[AudioReading]:
        out: list[AudioReading] = []
        if self._last_packet is not None and now - self._last_packet > self.config.no_packets_after:
            # Media stopped right after a tap: the detector would wait for audio that never comes.
            self._tapper.flush(self._last_packet + 0.08)
        if now >= self._next_reading_at:
            reading = self.classify(now, speech, breathing)
            self._next_reading_at = now + self.config.reading_interval
            self._record(reading)
            out.append(reading)
            _deliver(self.readings, self.on_reading, reading)
        count = self._tapper.close_group(now)
        if count and self._caller_rtp is not False:
            _deliver(self.taps, self.on_taps, TapInput(count=count, at=now))
        return out

    def _record(self, reading: AudioReading) -> None:
        start = self._last_reading.at if self._last_reading is not None else 0.0
        last = self._timeline[-1] if self._timeline else None
        gap = reading.at - start
        if last is not None and gap > 2 * self.config.reading_interval + 0.5:
            # We were not listening in between: leave a hole rather than stretch a state over it.
            start = reading.at - self.config.reading_interval
            last = None
        if last is not None and last[2] == reading.state:
            last[1] = reading.at
            last[4] += 1
            last[3] += (reading.confidence - last[3]) / last[4]
        else:
            self._timeline.append([start, reading.at, reading.state, reading.confidence, 1])
        self._last_reading = reading

    # ---- results -----------------------------------------------------------------------
    @property
    def timeline(self) -> list[TimelineEntry]:
        """(start, end, state, mean confidence) runs, call-relative seconds."""
        return [(round(s, 3), round(e, 3), state, round(float(c), 3)) for s, e, state, c, _n in self._timeline]

    @property
    def last_reading(self) -> AudioReading | None:
        return self._last_reading

    def reset_taps(self) -> None:
        """Forget taps so far, queued groups included (at the start of an answer window)."""
        self._tapper.reset()
        while self.taps is not None and not self.taps.empty():
            self.taps.get_nowait()

    def close(self) -> None:
        """Stop analysing (listening stopped). The timeline stays; `resume` restarts."""
        self.closed = True
        self._raw.clear()
        self._pcm.clear()

    def resume(self) -> None:
        """Listen again after `close`: forget the old audio history, keep the timeline."""
        self.closed = False
        self._filled = 0
        self._digital_run = 0
        self._floor = F.FLOOR_DBFS
        self._last_packet = self._last_cn = self._last_audio = None
        self._fresh = False
        self._tapper.reset()
        self._next_reading_at = 0.0
        self._breath_cache = (-1e9, 0.0)
        self._reset_whitening()

    async def next_reading(self, timeout: float) -> AudioReading | None:
        return await _next(self.readings, timeout)

    async def next_taps(self, timeout: float) -> TapInput | None:
        return await _next(self.taps, timeout)


def _quantile(values: np.ndarray, q: float) -> float:
    """Nearest-rank quantile; np.percentile costs ~30 µs of overhead per call here."""
    n = len(values)
    if n == 0:
        return F.FLOOR_DBFS
    k = min(int(q * (n - 1) + 0.5), n - 1)
    return float(np.partition(values, k)[k])


async def _next(queue: asyncio.Queue | None, timeout: float):
    if queue is None:
        raise RuntimeError("created with queue_size=0: use the callbacks")
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except asyncio.TimeoutError:
        return None


def _deliver(queue: asyncio.Queue | None, callback: Callable | None, item) -> None:
    if queue is not None:
        if queue.full():
            queue.get_nowait()  # a slow reader gets the newest state, not a backlog
        queue.put_nowait(item)
    if callback is not None:
        callback(item)


def _mark_voiced(feats: np.ndarray, frames: np.ndarray, order: list[tuple[CallAudio, int]]) -> None:
    """Fill VOICED (per-call noise floor, vectorised over the batch) and VAD.

    webrtcvad is asked only about frames that already look voiced: it is a
    second opinion on voicing, and skipping the rest keeps its cost small.
    """
    counts = [k for _call, k in order]
    configs = [call.config for call, _k in order]
    floor = np.repeat([max(call._floor + 6.0, call.config.vad_min_dbfs) for call, _k in order], counts)
    if all(c is configs[0] for c in configs):
        harmonicity, flatness = configs[0].voiced_harmonicity, configs[0].voiced_flatness
    else:
        harmonicity = np.repeat([c.voiced_harmonicity for c in configs], counts)
        flatness = np.repeat([c.voiced_flatness for c in configs], counts)
    voiced = (feats[:, F.HARMONICITY] > harmonicity) & (feats[:, F.FLATNESS] < flatness) & (feats[:, F.LEVEL] > floor)
    feats[:, F.VOICED] = voiced
    rows = np.flatnonzero(voiced)
    if not len(rows):
        return
    owner = np.repeat(np.arange(len(order)), counts)
    for r in rows.tolist():
        try:
            feats[r, F.VAD] = order[owner[r]][0]._vad.is_speech(frames[r].tobytes(), F.SAMPLE_RATE)
        except Exception:  # webrtcvad raises on odd input; treat as "no"
            feats[r, F.VAD] = 0.0


#: Per-frame weight of new audio in a call's autocorrelation estimate (time constant ~0.6 s).
WHITEN_RATE = 1.0 / 30.0


def _whitening(frames: np.ndarray, order: list[tuple[CallAudio, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Each call's whitening filter (updated with these frames) and each frame's previous samples.

    The filter follows the line's spectrum over ~0.6 s: each frame counts once whatever
    its level, so a tap (one or two frames) hardly moves it while a breath does.
    """
    acf, r0 = F.autocorrelation(frames)
    counts = np.array([k for _call, k in order])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    valid = (r0 > 0).astype(np.float64)
    sums = np.add.reduceat(acf * valid[:, None], starts, axis=0)
    n_valid = np.add.reduceat(valid, starts)
    calls = [call for call, _k in order]
    mean = sums / np.maximum(n_valid, 1)[:, None]
    current = np.stack([mean[i] if call._acf is None else call._acf for i, call in enumerate(calls)])
    keep = (1.0 - WHITEN_RATE) ** n_valid
    updated = np.where((n_valid > 0)[:, None], current * keep[:, None] + mean * (1.0 - keep)[:, None], current)
    filters = F.levinson(updated)
    x = frames[:, -F.LPC_ORDER :].astype(np.float32) * (1.0 / 32768.0)
    previous = np.empty((len(frames), F.LPC_ORDER), dtype=np.float32)
    previous[1:] = x[:-1]
    for i, (call, start, k) in enumerate(zip(calls, starts.tolist(), counts.tolist())):
        previous[start] = call._tail
        call._tail = x[start + k - 1]
        if n_valid[i] > 0:
            call._acf = updated[i]
    return np.repeat(filters, counts, axis=0), previous


def analyse_calls(calls: Iterable[CallAudio], now: float | None = None) -> dict[CallAudio, list[AudioReading]]:
    """Analyse pending audio of many calls in one numpy batch; emit due readings.

    `now` is the injected clock's value (absolute, like `clock()`); by default
    each call's own clock is read.
    """
    batches: dict[str, list[bytes]] = {"ulaw": [], "alaw": []}
    segments: dict[str, list[tuple[CallAudio, int]]] = {"ulaw": [], "alaw": [], "pcm": []}
    pcm_frames: list[np.ndarray] = []
    calls = [c for c in calls if not c.closed]
    for call in calls:
        taken = call._take_frames()
        if taken is None:
            continue
        if isinstance(taken, tuple):
            codec, data = taken
            batches[codec].append(data)
            segments[codec].append((call, len(data) // FRAME))
        else:
            pcm_frames.append(taken)
            segments["pcm"].append((call, len(taken)))
    parts = []
    order: list[tuple[CallAudio, int]] = []
    for codec, table in (("ulaw", ULAW_DECODE), ("alaw", ALAW_DECODE)):
        if batches[codec]:
            codes = np.frombuffer(b"".join(batches[codec]), dtype=np.uint8).reshape(-1, FRAME)
            parts.append(table[codes])
            order += segments[codec]
    if pcm_frames:
        parts.append(np.concatenate(pcm_frames))
        order += segments["pcm"]
    results: dict[CallAudio, list[AudioReading]] = {}
    if parts:
        frames = np.concatenate(parts) if len(parts) > 1 else parts[0]
        feats = F.compute_features(frames, _whitening(frames, order))
        _mark_voiced(feats, frames, order)
        row = 0
        for call, k in order:
            t = (now - call.answered_at) if now is not None else call._now()
            call._consume(feats[row : row + k], t)
            row += k
    times = {}
    for call in calls:
        t = (now - call.answered_at) if now is not None else call._now()
        call._note_fresh(t)
        call._last_now = t
        times[call] = t
    speech, breathing = _batched_scores([c for c in calls if c._reading_due(times[c]) and c._needs_scores(times[c])])
    for call in calls:
        results[call] = call._emit_due(times[call], speech.get(call), breathing.get(call))
    return results


def _batched_scores(calls: list[CallAudio]) -> tuple[dict, dict]:
    """Speech and breathing scores of every call with a full window, in two numpy passes.

    Only the columns a score reads are gathered, and breathing only where
    classify() can use it (speech not already clear, no tap just heard).
    """
    speech: dict[CallAudio, float] = {}
    breathing: dict[CallAudio, float] = {}
    full = [c for c in calls if c._filled >= 50]
    if full:
        floors = np.array([max(c._floor + 6.0, c.config.vad_min_dbfs) for c in full], dtype=np.float32)
        windows = np.stack([c._window(50)[:, _SPEECH_COLUMNS] for c in full])
        speech = dict(zip(full, speech_scores(windows, floors, _SPEECH_INDEX).tolist()))
    long = [
        c
        for c in calls
        if c._filled >= len(c._hist) // 2 and speech.get(c, 0.0) < 0.75 and not c._tap_recent(c._last_now)
    ]
    # An 8 s rhythm does not change in a few hundred ms: reuse a score younger than BREATH_REUSE.
    stale = []
    for c in long:
        at, score = c._breath_cache
        if c._last_now - at < BREATH_REUSE:
            breathing[c] = score
        else:
            stale.append(c)
    if stale:
        history = len(stale[0]._hist) // 2
        same = [c for c in stale if len(c._hist) // 2 == history]
        windows = np.stack([c._window(history)[:, _BREATH_COLUMNS] for c in same])
        for c, score in zip(same, breathing_scores(windows, _BREATH_INDEX).tolist()):
            breathing[c] = score
            c._breath_cache = (c._last_now, score)
    return speech, breathing


BREATH_REUSE = 0.75  # seconds


# Column subsets gathered for the batched scores, and where each column lands.
_SPEECH_COLUMNS = [F.LEVEL, F.VAD, F.VOICED, F.CENTROID]
_SPEECH_INDEX = {c: i for i, c in enumerate(_SPEECH_COLUMNS)}
_BREATH_COLUMNS = [F.LEVEL, F.VOICED]
_BREATH_INDEX = {c: i for i, c in enumerate(_BREATH_COLUMNS)}
_ALL_COLUMNS = {c: c for c in range(F.N_COLUMNS)}


def _moving_sum5(x: np.ndarray, same: bool) -> np.ndarray:
    """Sums over 5 frames along axis 1: "same" (zero-padded, centred) or "valid"."""
    if same:
        x = np.pad(x, ((0, 0), (2, 2)))
    cs = np.concatenate((np.zeros((x.shape[0], 1), dtype=np.float64), np.cumsum(x, axis=1, dtype=np.float64)), axis=1)
    return cs[:, 5:] - cs[:, :-5]


def _masked_std(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = np.maximum(mask.sum(axis=1), 1)
    mean = (x * mask).sum(axis=1) / count
    return np.sqrt((((x - mean[:, None]) ** 2) * mask).sum(axis=1) / count)


def speech_scores(windows: np.ndarray, active_floor: np.ndarray, col: dict = _ALL_COLUMNS) -> np.ndarray:
    """Speech score of many 1 s windows (n, frames, columns) at once, 0..1 each.

    Voiced share (harmonicity + flat-free spectrum), webrtcvad's agreement,
    syllabic modulation (level minus its 100 ms average: breathing and steady
    noise are smooth) and spectral movement (a dial tone or hum does not move).
    """
    voiced = windows[:, :, col[F.VOICED]] > 0
    voiced_frac = voiced.mean(axis=1)
    vad_frac = windows[:, :, col[F.VAD]].mean(axis=1)
    level = windows[:, :, col[F.LEVEL]].astype(np.float64)
    smooth = _moving_sum5(level, same=True) / 5.0
    active = level > active_floor[:, None]
    modulation = np.where(active.sum(axis=1) > 3, _masked_std(level - smooth, active), 0.0)
    movement = np.where(voiced.sum(axis=1) > 2, _masked_std(windows[:, :, col[F.CENTROID]].astype(np.float64), voiced), 0.0)
    score = (
        0.5 * np.minimum(voiced_frac / 0.3, 1.0)
        + 0.25 * np.minimum(vad_frac / 0.5, 1.0)
        + 0.25 * np.minimum(modulation / 4.0, 1.0)
    ) * np.minimum(movement / 60.0, 1.0)
    return np.where(voiced_frac > 0, np.clip(score, 0.0, 1.0), 0.0)


def breathing_scores(windows: np.ndarray, col: dict = _ALL_COLUMNS) -> np.ndarray:
    """Breathing score of many 4–8 s windows (n, frames, columns) at once, 0..1 each.

    A deep (≥ 5 dB) envelope, periodic at 1.5–5 s, mostly unvoiced.
    """
    level = windows[:, :, col[F.LEVEL]].astype(np.float64)
    env = _moving_sum5(level, same=False) / 5.0
    m = env.shape[1]
    k10, k90 = int(0.1 * (m - 1) + 0.5), int(0.9 * (m - 1) + 0.5)
    parts = np.partition(env, (k10, k90), axis=1)
    p10, p90 = parts[:, k10], parts[:, k90]
    depth = p90 - p10
    active = level > (p10 + 6.0)[:, None]
    voiced_frac = (windows[:, :, col[F.VOICED]] > 0).sum(axis=1) / np.maximum(active.sum(axis=1), 1)
    e = env - env.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(e, n=2 * m, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :m]
    lags = np.arange(75, min(250, m - 50))
    if len(lags) == 0:
        return np.zeros(len(windows))
    ac0 = ac[:, 0]
    safe0 = np.where(ac0 > 0, ac0, 1.0)
    periodicity = (ac[:, lags] / safe0[:, None] * (m / (m - lags))).max(axis=1)
    score = (
        np.clip((depth - 5.0) / 6.0, 0.0, 1.0)
        * np.clip((periodicity - 0.1) / 0.3, 0.0, 1.0)
        * (1.0 - np.minimum(voiced_frac / 0.25, 1.0))
    )
    return np.where((p90 < -62.0) | (depth < 5.0) | (ac0 <= 0), 0.0, score)


def verdict(readings: list[AudioReading], tap_counts: list[int] = ()) -> AudioState:
    """One state for a listening window (what a flow's `listen(seconds)` would decide).

    Signs of life win over absence: enough speech → speech; any tap group → taps;
    a quarter of breathing → breathing; then noise, silence, dead line by majority.
    A dead line is only the verdict when most readings said so.
    """
    if not readings:
        return AudioState.SILENCE
    counts = {state: 0 for state in AudioState}
    for r in readings:
        counts[r.state] += 1
    n = len(readings)
    if counts[AudioState.SPEECH] >= max(3, 0.15 * n):
        return AudioState.SPEECH
    if tap_counts or counts[AudioState.TAPS] >= 2:
        return AudioState.TAPS
    if counts[AudioState.BREATHING] >= 0.25 * n:
        return AudioState.BREATHING
    if counts[AudioState.DEAD_LINE] > n / 2:
        return AudioState.DEAD_LINE
    if counts[AudioState.BACKGROUND_NOISE] >= counts[AudioState.SILENCE]:
        return AudioState.BACKGROUND_NOISE if counts[AudioState.BACKGROUND_NOISE] else AudioState.SILENCE
    return AudioState.SILENCE

