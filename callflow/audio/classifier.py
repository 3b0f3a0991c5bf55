"""Per-call audio classification: PCM / G.711 in, AudioReading and TapInput out.

`CallAudio` is the one object per listening call. It is cheap: it buffers the
raw payload bytes it is given and does nothing per packet beyond that (the
RTP receiver may even hand plain 20 ms μ-law packets straight to the shared
pool). The work happens in `analyse_calls(calls, now)`, which decodes and
featurises the pending frames of *all* calls in one numpy batch and updates
every call's history, noise floor, digital-silence run, whitening filter and
tap detector with a few numpy operations for all of them: that state lives in
arrays with one row per call (`_Pool`, `taps.TapBank`). Only the readings that
are due (every 250 ms per call) and tap candidates run per-call Python. The
RTP receiver calls it every tick (25 ms); offline tools and tests call
`CallAudio.process()`, which is the same for one call.

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
- breathing is a slow (0.2–0.6 Hz) periodic envelope of unvoiced noise with pauses
  (the level falls back near the floor between breaths), seen on an 8 s history;
- a line's own signal (tones, FSK modems: tonal or constant-envelope frames over most
  of a second) is checked before the voice: it is never a caller.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import webrtcvad

from callflow.audio import features as F
from callflow.audio import ring
from callflow.audio.g711 import ALAW_DECODE, ULAW_DECODE
from callflow.audio.rtp import RTP_HEADER_LEN
from callflow.audio.taps import PAD_DB, QUIET_CLOSE, TapBank
from callflow.core.channel import AudioReading, AudioState, TapInput

FRAME = F.FRAME_SAMPLES
FRAME_S = F.FRAME_SECONDS
log = logging.getLogger(__name__)

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


class _Pool:
    """Per-call analysis state of many calls in arrays, one row ("slot") per CallAudio.

    One tick of `analyse_calls` then costs a few numpy operations for all calls
    instead of a dozen per call. The feature history is a ring with a mirror:
    frame f of a call is written at rows f % H and f % H + H, so its last n ≤ H
    frames are always one contiguous slice ending at row count % H + H.

    The receiver may hand plain μ-law packets straight to the pool (`packets`,
    `owners`) instead of the call's own byte buffer: see RtpReceiver.datagram_received.
    """

    FIELDS = (
        ("count", np.int64, 0),  # frames appended since the history (re)started
        ("floor", np.float64, F.FLOOR_DBFS),  # noise floor (20th percentile of the last second's levels)
        ("digital_run", np.int64, 0),  # consecutive constant frames
        ("last_packet", np.float64, np.nan),  # call-relative times; NaN = never
        ("last_audio", np.float64, np.nan),  # last audio payload (CN packets are not audio)
        ("last_cn", np.float64, np.nan),
        ("next_reading", np.float64, 0.0),
        ("answered_at", np.float64, 0.0),
        ("rtp_off", np.bool_, False),  # the adapter says the caller's RTP stopped
        ("closed", np.bool_, False),
        ("acf_set", np.bool_, False),
        ("opinion_at", np.float64, np.nan),  # when the second opinion last judged this call (call-relative)
        ("opinion", np.float64, np.nan),  # its score then
        # from the call's config
        ("vad_min", np.float64, 0.0),
        ("harmonicity", np.float64, 0.0),
        ("flatness", np.float64, 0.0),
        ("no_packets_after", np.float64, 0.0),
    )

    def __init__(self, history: int) -> None:
        self.history = history
        self.capacity = 0
        self.free: list[int] = []
        self.packets: list[bytes] = []  # whole RTP datagrams: 12-byte header + 160 μ-law bytes
        self.owners: list[int] = []  # their slots
        self.dirty: set[int] = set()  # slots with bytes or PCM in the call's own buffers
        self.released: list[int] = []  # slots of garbage-collected calls, not yet reusable
        for name, dtype, fill in self.FIELDS:
            setattr(self, name, np.full(0, fill, dtype=dtype))
        self.acf = np.zeros((0, F.LPC_ORDER + 1))  # smoothed normalised autocorrelation: whitens the bed for taps
        self.tail = np.zeros((0, F.LPC_ORDER), dtype=np.float32)  # last samples analysed
        self.hist = np.zeros((0, 2 * history, F.N_COLUMNS), dtype=np.float32)
        # The last second's levels and block means again, in a small ring (RECENT frames, mirrored):
        # the noise floor and the tap detector's quiet level read them every tick for every call.
        self.recent = np.zeros((0, 2, 2 * RECENT), dtype=np.float32)
        self.taps = TapBank()
        # The last PCM_FRAMES frames of PCM per call (a plain ring), kept only while a second
        # opinion on speech is active: it needs the samples, the features do not keep them.
        self.pcm: np.ndarray | None = None

    def _grow(self) -> None:
        old = self.capacity
        new = max(64, old * 3 // 2)
        for name, dtype, fill in self.FIELDS:
            array = np.full(new, fill, dtype=dtype)
            array[:old] = getattr(self, name)
            setattr(self, name, array)
        for name in ("acf", "tail", "hist", "recent"):
            current = getattr(self, name)
            array = np.zeros((new,) + current.shape[1:], dtype=current.dtype)
            array[:old] = current
            setattr(self, name, array)
        if self.pcm is not None:
            pcm = np.zeros((new,) + self.pcm.shape[1:], dtype=self.pcm.dtype)
            pcm[:old] = self.pcm
            self.pcm = pcm
        self.taps.grow(new)
        self.capacity = new
        self.free.extend(range(new - 1, old - 1, -1))

    def allocate(self, answered_at: float, config: ClassifierConfig) -> int:
        self.reclaim()
        if not self.free:
            self._grow()
        slot = self.free.pop()
        self.answered_at[slot] = answered_at
        self.vad_min[slot] = config.vad_min_dbfs
        self.harmonicity[slot] = config.voiced_harmonicity
        self.flatness[slot] = config.voiced_flatness
        self.no_packets_after[slot] = config.no_packets_after
        self.restart(slot)
        self.rtp_off[slot] = False
        self.next_reading[slot] = 0.0
        self.last_cn[slot] = np.nan
        return slot

    def restart(self, slot: int) -> None:
        """A fresh history for the slot (new call, or listening again)."""
        self.count[slot] = 0
        self.floor[slot] = F.FLOOR_DBFS
        self.digital_run[slot] = 0
        self.last_packet[slot] = self.last_audio[slot] = self.last_cn[slot] = np.nan
        self.closed[slot] = False
        self.acf_set[slot] = False
        self.opinion_at[slot] = self.opinion[slot] = np.nan
        self.tail[slot] = 0.0
        self.taps.reset(slot, 0)

    def drop_packets(self, slot: int) -> None:
        if slot in self.owners:
            kept = [(p, s) for p, s in zip(self.packets, self.owners) if s != slot]
            self.packets = [p for p, _s in kept]
            self.owners = [s for _p, s in kept]

    def release(self, slot: int) -> None:
        """The CallAudio is gone (garbage-collected): the slot may serve another call.

        A finalizer may run at any allocation (cyclic GC), even in the middle of an
        analysis: it only queues the slot, taken back by `reclaim` at a safe point.
        """
        self.released.append(slot)

    def reclaim(self) -> None:
        while self.released:
            slot = self.released.pop()
            self.drop_packets(slot)
            self.dirty.discard(slot)
            self.closed[slot] = True
            self.free.append(slot)

    def window(self, slot: int, frames: int) -> np.ndarray:
        count = int(self.count[slot])
        n = min(frames, count, self.history)
        end = count % self.history + self.history
        return self.hist[slot, end - n : end]


RECENT = 50  # frames: the second the noise floor is taken over
_POOLS: dict[int, _Pool] = {}


def _pool_for(history: int) -> _Pool:
    pool = _POOLS.get(history)
    if pool is None:
        pool = _POOLS[history] = _Pool(history)
    return pool


def _optional(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


class CallAudio:
    """Audio state of one call while it is being listened to.

    Feed it with `push_payload` (raw G.711 from RTP), `push_pcm` (int16),
    `push_comfort_noise`, and the adapter's `caller_rtp_active` hint. Readings
    and tap groups go to the optional callbacks and to `readings` / `taps`
    (asyncio queues, bounded: the oldest item is dropped if nobody reads).
    Its analysis state lives in a shared pool (one row per call), see _Pool.
    """

    __slots__ = (
        "config", "clock", "codec", "on_reading", "on_taps", "readings", "taps", "_raw", "_pcm",
        "_vad", "_fresh", "_caller_rtp", "_timeline", "_last_reading", "_breath_cache", "closed",
        "_pool", "_slot", "__weakref__",
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
        self.codec = codec
        self.on_reading = on_reading
        self.on_taps = on_taps
        self.readings: asyncio.Queue[AudioReading] | None = asyncio.Queue(queue_size) if queue_size else None
        self.taps: asyncio.Queue[TapInput] | None = asyncio.Queue(queue_size) if queue_size else None
        self._raw = bytearray()
        self._pcm: list[np.ndarray] = []
        self._vad = webrtcvad.Vad(config.vad_mode)
        self._fresh = False  # payload arrived by the fast path since the last analysis
        self._caller_rtp: bool | None = None
        self._timeline: list[list] = []
        self._last_reading: AudioReading | None = None
        self._breath_cache = (-1e9, 0.0)  # (when, breathing score) of the last batched computation
        self.closed = False
        self._pool = _pool_for(int(round(config.history_seconds / FRAME_S)))
        self._slot = self._pool.allocate(clock() if answered_at is None else answered_at, config)
        weakref.finalize(self, self._pool.release, self._slot)

    # ---- pooled state ------------------------------------------------------------------
    @property
    def answered_at(self) -> float:
        return float(self._pool.answered_at[self._slot])

    @answered_at.setter
    def answered_at(self, value: float) -> None:
        self._pool.answered_at[self._slot] = value

    @property
    def _floor(self) -> float:
        return float(self._pool.floor[self._slot])

    @property
    def _digital_run(self) -> int:
        return int(self._pool.digital_run[self._slot])

    @property
    def _filled(self) -> int:
        return min(int(self._pool.count[self._slot]), self._pool.history)

    @property
    def _last_packet(self) -> float | None:
        return _optional(self._pool.last_packet[self._slot])

    @property
    def _last_audio(self) -> float | None:
        return _optional(self._pool.last_audio[self._slot])

    @property
    def _last_cn(self) -> float | None:
        return _optional(self._pool.last_cn[self._slot])

    @property
    def _history(self) -> int:
        return self._pool.history

    # ---- input -------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock() - self.answered_at

    def _mark_packet(self, audio: bool = True) -> None:
        now = self._now()
        self._pool.last_packet[self._slot] = now
        if audio:
            self._pool.last_audio[self._slot] = now

    def push_payload(self, payload: bytes | bytearray | memoryview, codec: str | None = None) -> None:
        """Raw G.711 bytes (any length; whole 20 ms frames are analysed)."""
        if codec is not None and codec != self.codec:
            self._flush_raw_to_pcm()
            self.codec = codec
        self._raw += payload
        if len(self._raw) > MAX_PENDING_BYTES:
            del self._raw[: len(self._raw) - MAX_PENDING_BYTES]
        self._pool.dirty.add(self._slot)
        self._mark_packet()

    def push_payload_fast(self, payload: bytes) -> None:
        """Receiver path: payload in the current codec; its time is taken at analysis."""
        self._raw += payload
        self._fresh = True
        self._pool.dirty.add(self._slot)
        if len(self._raw) > MAX_PENDING_BYTES:  # analysis stalled: keep the newest audio only
            del self._raw[: len(self._raw) - MAX_PENDING_BYTES]

    def push_pcm(self, pcm: np.ndarray) -> None:
        """int16 samples at 8 kHz (decoded elsewhere, or from a file)."""
        self._flush_raw_to_pcm()
        self._pcm.append(np.asarray(pcm, dtype=np.int16).ravel())
        self._pool.dirty.add(self._slot)
        self._mark_packet()

    def push_comfort_noise(self) -> None:
        """An RFC 3389 CN packet: the far end says "silence", not "gone"."""
        self._mark_packet(audio=False)
        self._pool.last_cn[self._slot] = self._pool.last_packet[self._slot]

    def caller_rtp_active(self, active: bool | None) -> None:
        """Adapter hint: is the caller's RTP still reaching Asterisk? None = unknown."""
        self._caller_rtp = active
        self._pool.rtp_off[self._slot] = active is False

    def pending_bytes(self) -> int:
        """Audio bytes (G.711) or samples (PCM) received and not analysed yet."""
        pool = self._pool
        pooled = sum(len(p) - RTP_HEADER_LEN for p, s in zip(pool.packets, pool.owners) if s == self._slot)
        return pooled + len(self._raw) + sum(len(p) for p in self._pcm)

    def _flush_raw_to_pcm(self) -> None:
        if self._raw:
            table = ULAW_DECODE if self.codec == "ulaw" else ALAW_DECODE
            self._pcm.append(table[np.frombuffer(bytes(self._raw), dtype=np.uint8)])
            self._raw.clear()

    def _take_frames(self) -> np.ndarray | None:
        """Whole pending frames, decoded: int16 (k, FRAME)."""
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
        table = ULAW_DECODE if self.codec == "ulaw" else ALAW_DECODE
        data = table[np.frombuffer(bytes(self._raw[: k * FRAME]), dtype=np.uint8)].reshape(k, FRAME)
        del self._raw[: k * FRAME]
        return data

    # ---- analysis ----------------------------------------------------------------------
    def process(self, now: float | None = None) -> list[AudioReading]:
        """Analyse what is pending and emit readings that are due (one-call batch)."""
        return analyse_calls((self,), now).get(self, [])

    def _window(self, frames: int) -> np.ndarray:
        return self._pool.window(self._slot, frames)

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
        w = self._window(self._history)
        if len(w) < _MIN_BREATH_FRAMES:
            return 0.0
        return float(breathing_scores(w[None])[0])

    def _level_dbfs(self, window: np.ndarray) -> float:
        if not len(window):
            return F.FLOOR_DBFS
        return _dbfs(np.mean(10.0 ** (window[:, F.LEVEL] / 10.0)))

    def classify(
        self,
        now: float,
        speech: float | None = None,
        breathing: float | None = None,
        power: float | None = None,
        quantiles: tuple[float, float] | None = None,
        tone: bool | None = None,
    ) -> AudioReading:
        """The state of the line right now (call-relative seconds).

        `speech` / `breathing` / `power` (mean power of the last 25 frames, float32) /
        `quantiles` (p50, p90 of the last second's levels) may come precomputed for
        many calls at once (analyse_calls); otherwise they are computed here when needed.
        `tone`: `_is_tone` of the window, batched (`_are_tones`).
        """
        cfg = self.config
        if self._caller_rtp is False:
            return AudioReading(AudioState.DEAD_LINE, 0.95, now)
        if self._last_packet is None or now - self._last_packet > cfg.no_packets_after:
            # No media is a fact, not a verdict: Asterisk sends nothing in silence.
            confidence = 0.8 if self._caller_rtp else 0.5
            return AudioReading(AudioState.SILENCE, confidence, now)
        window = self._window(50)
        level = self._level_dbfs(window[-25:]) if power is None else _dbfs(power)
        digital_s = self._digital_run * FRAME_S
        if digital_s >= cfg.digital_silence_dead_after:
            return AudioReading(AudioState.DEAD_LINE, 0.8, now, level)
        if digital_s >= 0.5 or len(window) == 0:
            return AudioReading(AudioState.SILENCE, 0.7, now, level)
        if self._last_cn is not None and (self._last_audio is None or self._last_cn >= self._last_audio):
            # The far end switched to comfort noise: silence, not a present caller, not a cut line.
            return AudioReading(AudioState.SILENCE, 0.8, now, level)
        if _is_tone(window) if tone is None else tone:
            # Before the voice: a tone stepping in frequency (SIT) has voiced frames that move like a
            # voice's; most of a second of tonal or constant-envelope frames is never a voice.
            return AudioReading(AudioState.LINE_TONE, 0.8, now, level)
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
        if quantiles is None:
            quantiles = _quantile(window[:, F.LEVEL], 0.5), _quantile(window[:, F.LEVEL], 0.9)
        p50, p90 = quantiles
        if p50 > cfg.silence_dbfs or p90 > cfg.silence_dbfs + 8.0:
            confidence = min(0.5 + (p50 - cfg.silence_dbfs) / 20.0, 0.95)
            return AudioReading(AudioState.BACKGROUND_NOISE, max(confidence, 0.5) * (1 - speech), now, level)
        return AudioReading(AudioState.SILENCE, min(0.6 + (cfg.silence_dbfs - p90) / 20.0, 0.95), now, level)

    def _distress(self) -> bool:
        """Breathing with voice in it, irregular: sobs, moans (cas D/F). A hint only."""
        w = self._window(self._history)
        voiced = self._voiced(w)
        return bool(0.05 <= voiced.mean() <= 0.3 and np.ptp(w[:, F.LEVEL]) > 25.0)

    def _tap_recent(self, now: float) -> bool:
        return self._pool.taps.answering(self._slot, now, self.config.tap_state_hold)

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

    def hears_sound(self, within: float) -> bool:
        """Real sound (not digital silence, not comfort noise) analysed within the last `within`
        seconds. Only the caller's own RTP makes that: a snoop fills the caller's gaps with
        digital silence (res_stasis_snoop.c `snoop->silence`), Asterisk adds nothing else."""
        last = self._last_audio
        return last is not None and self._now() - last <= within and self._digital_run == 0 and (
            self._last_cn is None or self._last_cn < last)

    def reset_taps(self) -> None:
        """Forget taps so far, queued groups included (at the start of an answer window)."""
        self._pool.taps.reset(self._slot, int(self._pool.count[self._slot]))
        while self.taps is not None and not self.taps.empty():
            self.taps.get_nowait()

    def close(self) -> None:
        """Stop analysing (listening stopped). The timeline stays; `resume` restarts."""
        self.closed = True
        self._pool.closed[self._slot] = True
        self._raw.clear()
        self._pcm.clear()
        self._fresh = False
        self._pool.dirty.discard(self._slot)
        self._pool.drop_packets(self._slot)

    def resume(self) -> None:
        """Listen again after `close`: forget the old audio history, keep the timeline."""
        self.closed = False
        self._fresh = False
        self._pool.restart(self._slot)
        self._pool.next_reading[self._slot] = 0.0
        self._breath_cache = (-1e9, 0.0)

    async def next_reading(self, timeout: float) -> AudioReading | None:
        return await _next(self.readings, timeout)

    async def next_taps(self, timeout: float) -> TapInput | None:
        return await _next(self.taps, timeout)


#: Line tones: frames louder than this are checked; a frame is tonal at this prediction gain.
TONE_MIN_DBFS = -55.0
TONE_GAIN_DB = 25.0
TONE_MIN_FRAMES = 10  # 200 ms of tone in the last second (a busy tone's half period is 250 ms or more)
TONE_SHARE = 0.6  # of the frames that carry the tone (see TONE_ON_RANGE_DB)
#: Frames more than this under the second's loudest are a cadence's gap (the line's own floor,
#: a recorded tone's hum), not the tone: the share is taken over the others.
TONE_ON_RANGE_DB = 20.0
TONE_BEAT_GAIN_DB = 20.0
TONE_STEADY_DB = 1.0  # a constant-envelope frame counts when its level is within this of the frame before


def _is_tone(window: np.ndarray) -> bool:
    """The last second is mostly a line's own signal: one or two steady tones (busy, ringback, dial
    tone, SIT, fax CNG/CED, modem answer) or a constant-envelope modem (FSK): not a caller; noted on
    the record's timeline. Why not a Goertzel bank of the known frequencies: every country and modem
    has its own (E.180 lists dozens) and recorded tones drift; what they share is that they are
    predictable (TONAL) or of constant envelope (crest), which a voice, a breath or real noise never
    is for most of a second."""
    gain = window[:, F.TONAL]
    # Every frame counted below reads at least TONE_BEAT_GAIN_DB: most windows stop here (~3 µs).
    if np.count_nonzero(gain >= TONE_BEAT_GAIN_DB) < TONE_MIN_FRAMES:
        return False
    level = window[:, F.LEVEL]
    sounding = (level > TONE_MIN_DBFS) & (level > level.max() - TONE_ON_RANGE_DB)
    # Constant-envelope frames (FSK modems) read as tonal (features.tonality); a vowel may have a
    # frame or two like that, never a steady level over most of a second.
    steady = np.abs(np.diff(level, prepend=level[0])) < TONE_STEADY_DB
    constant = (window[:, F.PEAK] - level <= F.CONSTANT_CREST_DB) & steady
    tonal = (gain >= TONE_GAIN_DB) & ((gain != F.CONSTANT_TONALITY_DB) | constant)
    # Three close tones (400+425+450 Hz) beat at 25 Hz: every other 20 ms frame predicts worse
    # (~23 dB). A frame next to a tonal one counts from TONE_BEAT_GAIN_DB when its level holds (a
    # bird's whistle sweeps and swells).
    beside = np.zeros_like(tonal)
    beside[1:] |= tonal[:-1]
    beside[:-1] |= tonal[1:]
    # Its level alternates with the beat (±2 dB), so "holds" is over two frames (the beat's period).
    repeats = np.zeros_like(steady)
    repeats[2:] = np.abs(level[2:] - level[:-2]) < TONE_STEADY_DB
    tonal = sounding & (tonal | (beside & repeats & (gain >= TONE_BEAT_GAIN_DB)))
    n = int(tonal.sum())
    return n >= TONE_MIN_FRAMES and n >= TONE_SHARE * int(sounding.sum())


def _are_tones(windows: np.ndarray, col: dict) -> np.ndarray:
    """`_is_tone` of many windows (m, n, columns) of the same length at once, test for test."""
    gain = windows[:, :, col[F.TONAL]]
    level = windows[:, :, col[F.LEVEL]]
    sounding = (level > TONE_MIN_DBFS) & (level > level.max(axis=1, keepdims=True) - TONE_ON_RANGE_DB)
    steady = np.abs(np.diff(level, axis=1, prepend=level[:, :1])) < TONE_STEADY_DB
    constant = (windows[:, :, col[F.PEAK]] - level <= F.CONSTANT_CREST_DB) & steady
    tonal = (gain >= TONE_GAIN_DB) & ((gain != F.CONSTANT_TONALITY_DB) | constant)
    beside = np.zeros_like(tonal)
    beside[:, 1:] |= tonal[:, :-1]
    beside[:, :-1] |= tonal[:, 1:]
    repeats = np.zeros_like(steady)
    repeats[:, 2:] = np.abs(level[:, 2:] - level[:, :-2]) < TONE_STEADY_DB
    tonal = sounding & (tonal | (beside & repeats & (gain >= TONE_BEAT_GAIN_DB)))
    n = tonal.sum(axis=1)
    return (np.count_nonzero(gain >= TONE_BEAT_GAIN_DB, axis=1) >= TONE_MIN_FRAMES) & (n >= TONE_MIN_FRAMES) & (n >= TONE_SHARE * sounding.sum(axis=1))


def _dbfs(power: np.float32) -> float:
    return float(max(10.0 * math.log10(power + 1e-12), F.FLOOR_DBFS))


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
    if timeout <= 0:  # a poll: what is queued now, never a wait (wait_for(…, 0) would miss a queued item)
        try:
            return queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
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


def _mark_voiced(pool: _Pool, feats: np.ndarray, frames: np.ndarray, slots: np.ndarray, counts: np.ndarray,
                 calls: list[CallAudio], which: np.ndarray) -> None:
    """Fill VOICED (per-call noise floor, vectorised over the batch) and VAD.

    webrtcvad is asked only about frames that already look voiced: it is a
    second opinion on voicing, and skipping the rest keeps its cost small.
    slots[i] is the slot of calls[which[i]], whose webrtcvad instance is asked (only calls with a
    voiced frame: a list of every call's instance each tick cost more than the questions).
    """
    floor = np.repeat(np.maximum(pool.floor[slots] + 6.0, pool.vad_min[slots]), counts)
    harmonicity = np.repeat(pool.harmonicity[slots], counts)
    flatness = np.repeat(pool.flatness[slots], counts)
    voiced = (feats[:, F.HARMONICITY] > harmonicity) & (feats[:, F.FLATNESS] < flatness) & (feats[:, F.LEVEL] > floor)
    feats[:, F.VOICED] = voiced
    rows = np.flatnonzero(voiced)
    if not len(rows):
        return
    owner = np.repeat(np.arange(len(slots)), counts)
    for r in rows.tolist():
        try:
            feats[r, F.VAD] = calls[which[owner[r]]]._vad.is_speech(frames[r].tobytes(), F.SAMPLE_RATE)
        except Exception:  # webrtcvad raises on odd input; treat as "no"
            feats[r, F.VAD] = 0.0


#: Per-frame weight of new audio in a call's autocorrelation estimate (time constant ~0.6 s).
WHITEN_RATE = 1.0 / 30.0


#: More frames of one call at once than this (a tick carries 1-2, the offline evaluation's push 5)
#: are a late burst (a stalled loop, an ARI handover): they are whitened one frame at a time, as
#: they would have been on time, not with one filter drawn from the whole burst's content (a tap
#: in it was whitened away: the seed example's tap missed under load, issue 12, session 7).
WHITEN_BURST_FRAMES = 5


def _whitening(pool: _Pool, frames: np.ndarray, slots: np.ndarray, starts: np.ndarray, counts: np.ndarray):
    """Each call's whitening filter (updated with these frames) and each frame's previous samples.

    The filter follows the line's spectrum over ~0.6 s: each frame counts once whatever
    its level, so a tap (one or two frames) hardly moves it while a breath does. A late
    burst (more than WHITEN_BURST_FRAMES) is taken one frame at a time.
    """
    acf, r0 = F.autocorrelation(frames)
    valid = (r0 > 0).astype(np.float64)
    if counts.max() <= WHITEN_BURST_FRAMES:
        filters = np.repeat(_whitening_step(pool, acf, valid, slots, starts), counts, axis=0)
    else:
        owner = np.repeat(np.arange(len(slots)), counts)
        # Calls with a normal tick's frames take one step; a burst's frames one step each.
        step = np.where(counts[owner] > WHITEN_BURST_FRAMES, np.arange(len(frames)) - starts[owner], 0)
        filters = np.empty((len(frames), F.LPC_ORDER + 1))
        for k in range(int(step.max()) + 1):
            rows = np.flatnonzero(step == k)  # still grouped by call, in order
            calls, first, n = np.unique(owner[rows], return_index=True, return_counts=True)
            filters[rows] = np.repeat(_whitening_step(pool, acf[rows], valid[rows], slots[calls], first), n, axis=0)
    x = frames[:, -F.LPC_ORDER :].astype(np.float32) * (1.0 / 32768.0)
    previous = np.empty((len(frames), F.LPC_ORDER), dtype=np.float32)
    previous[1:] = x[:-1]
    previous[starts] = pool.tail[slots]
    pool.tail[slots] = x[starts + counts - 1]
    return filters, previous


def _whitening_step(pool: _Pool, acf: np.ndarray, valid: np.ndarray, slots: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """One step of these calls' filters with their frames `acf` (grouped by call from `starts`)."""
    sums = np.add.reduceat(acf * valid[:, None], starts, axis=0)
    n_valid = np.add.reduceat(valid, starts)
    mean = sums / np.maximum(n_valid, 1)[:, None]
    current = np.where(pool.acf_set[slots][:, None], pool.acf[slots], mean)
    keep = (1.0 - WHITEN_RATE) ** n_valid
    updated = np.where((n_valid > 0)[:, None], current * keep[:, None] + mean * (1.0 - keep)[:, None], current)
    changed = n_valid > 0
    pool.acf[slots[changed]] = updated[changed]
    pool.acf_set[slots[changed]] = True
    return F.levinson(updated)


def _consume(pool: _Pool, feats: np.ndarray, slots: np.ndarray, starts: np.ndarray, counts: np.ndarray, now: np.ndarray) -> None:
    """New feature rows of these calls (grouped by call, VAD and VOICED filled in):
    history, noise floor, digital-silence run and the tap detector, for all calls at once."""
    history = pool.history
    owner = np.repeat(np.arange(len(slots)), counts)
    j = np.arange(len(feats)) - starts[owner]  # index of the row among its call's new rows
    count0 = pool.count[slots]
    keep = j >= (counts - history)[owner]  # more than a history at once: the newest rows only
    rows = slots[owner]
    at = (count0[owner] + j) % history
    if not keep.all():
        rows, at, kept = rows[keep], at[keep], feats[keep]
    else:
        kept = feats
    pool.hist[rows, at] = kept
    pool.hist[rows, at + history] = kept
    recent = j >= (counts - RECENT)[owner]
    rows, at = slots[owner[recent]], (count0[owner[recent]] + j[recent]) % RECENT
    for k, column in enumerate((F.LEVEL, F.BLOCK_MEAN)):
        pool.recent[rows, k, at] = pool.recent[rows, k, at + RECENT] = feats[recent, column]
    count = count0 + counts
    pool.count[slots] = count
    # The last second: noise floor (20th percentile of levels) and a lower bound of the
    # 40 ms block means the tap detector uses.
    n = np.minimum(np.minimum(count, history), 50)
    level, block_mean = ring.recent(pool.recent, slots, count).transpose(1, 0, 2)
    if (n == 50).all():
        pool.floor[slots] = np.partition(level, 10, axis=1)[:, 10]  # nearest rank: int(0.2 * 49 + 0.5)
        quiet = block_mean.min(axis=1).astype(np.float64) - 3.0
    else:
        valid = np.arange(50) >= (50 - n)[:, None]
        ranked = np.sort(np.where(valid, level, np.inf), axis=1)
        k = np.minimum((0.2 * (n - 1) + 0.5).astype(np.int64), n - 1)  # nearest rank, as _quantile
        pool.floor[slots] = ranked[np.arange(len(slots)), k]
        quiet = np.where(valid, block_mean, np.inf).min(axis=1).astype(np.float64) - 3.0
    digital = feats[:, F.DIGITAL_SILENCE] > 0
    last_sound = np.maximum.reduceat(np.where(digital, -1, j), starts)
    pool.digital_run[slots] = np.where(last_sound < 0, pool.digital_run[slots] + counts, counts - 1 - last_sound)
    pool.taps.heard(slots, counts - np.add.reduceat(digital.astype(np.int64), starts), now)
    peak = np.maximum.reduceat(feats[:, F.BLOCK_MAX], starts).astype(np.float64)
    pool.taps.push(pool.hist, history, slots, count, peak, quiet, now)


def analyse_calls(
    calls: Iterable[CallAudio], now: float | None = None, max_readings: int | None = None
) -> dict[CallAudio, list[AudioReading]]:
    """Analyse pending audio of many calls in one numpy batch; emit due readings.

    `now` is the injected clock's value (absolute, like `clock()`); by default
    each call's own clock is read. Returns the readings emitted, by call (calls
    that emitted none are left out).

    `max_readings` spreads the readings of many calls over the analysis ticks: when
    more are due, the most overdue go first and the others wait for a later tick,
    never more than MAX_READING_DELAY (readings stay < 0.5 s apart). Calls answered
    together would otherwise all be read in the same tick, every time.
    """
    live = [c for c in calls if not c.closed]
    if not live:
        return {}
    pool = live[0]._pool
    if all(c._pool is pool for c in live):
        return _analyse(pool, live, now, max_readings)
    groups: dict[_Pool, list[CallAudio]] = {}
    for c in live:
        groups.setdefault(c._pool, []).append(c)
    results: dict[CallAudio, list[AudioReading]] = {}
    for p, group in groups.items():
        results.update(_analyse(p, group, now, max_readings))
    return results


#: Longest a due reading may wait for a quieter tick (reading_interval + this < 0.5 s).
MAX_READING_DELAY = 0.2


_PACKET = RTP_HEADER_LEN + FRAME  # the receiver pools only plain headers and 20 ms of μ-law


def _take_packets(pool: _Pool, where: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The receiver's pooled packets of the calls analysed now: (frames, position of their call)."""
    if not pool.packets:
        return None
    owners = np.array(pool.owners, dtype=np.intp)
    position = where[owners]
    mine = position >= 0
    if mine.all():
        packets = pool.packets
        pool.packets, pool.owners = [], []
    else:
        later = ~mine & ~pool.closed[owners]  # other calls' packets wait for their analysis
        packets = [p for p, m in zip(pool.packets, mine.tolist()) if m]
        pool.packets = [p for p, w in zip(pool.packets, later.tolist()) if w]
        pool.owners = owners[later].tolist()
        position = position[mine]
        if not packets:
            return None
    codes = np.frombuffer(b"".join(packets), dtype=np.uint8).reshape(-1, _PACKET)[:, RTP_HEADER_LEN:]
    return np.take(ULAW_DECODE, codes), position  # take: half the time of a fancy index, same values


def _analyse(pool: _Pool, calls: list[CallAudio], now: float | None, max_readings: int | None = None) -> dict[CallAudio, list[AudioReading]]:
    pool.reclaim()
    m = len(calls)
    history = pool.history
    slots = np.fromiter([c._slot for c in calls], dtype=np.intp, count=m)
    if now is None:
        t = np.fromiter([c.clock() for c in calls], dtype=np.float64, count=m)
    else:
        t = np.full(m, float(now))
    t -= pool.answered_at[slots]
    where = np.full(pool.capacity, -1, dtype=np.intp)
    where[slots] = np.arange(m)
    fresh = np.zeros(m, dtype=bool)
    parts, owners = [], []
    taken = _take_packets(pool, where)
    if taken is not None:
        parts.append(taken[0])
        owners.append(taken[1])
        fresh[taken[1]] = True
    if pool.dirty:
        for slot in [s for s in pool.dirty if where[s] >= 0]:
            pool.dirty.discard(slot)
            i = int(where[slot])
            call = calls[i]
            if call._fresh:
                call._fresh = False
                fresh[i] = True
            frames = call._take_frames()
            if frames is not None:
                parts.append(frames)
                owners.append(np.full(len(frames), i, dtype=np.intp))
    if parts:
        frames = np.concatenate(parts) if len(parts) > 1 else parts[0]
        position = np.concatenate(owners) if len(owners) > 1 else owners[0]
        order = np.argsort(position, kind="stable")  # each call's frames together, in arrival order
        frames, position = frames[order], position[order]
        per_call = np.bincount(position, minlength=m)
        which = np.flatnonzero(per_call)
        counts = per_call[which]
        starts = np.zeros(len(which), dtype=np.intp)
        np.cumsum(counts[:-1], out=starts[1:])
        cslots = slots[which]
        # Spectral features only where a frame may be voiced: above its call's voicing floor and,
        # for harmonicity, under its flatness limit (the tests of _mark_voiced).
        voicing_floor = np.repeat(np.maximum(pool.floor[cslots] + 6.0, pool.vad_min[cslots]), counts)
        feats = F.compute_features(frames, _whitening(pool, frames, cslots, starts, counts), voicing_floor,
                                   np.repeat(pool.flatness[cslots], counts))
        loud = np.flatnonzero(feats[:, F.LEVEL] > TONE_MIN_DBFS)
        if loud.size:
            feats[loud, F.TONAL] = F.tonality(frames[loud])
        _mark_voiced(pool, feats, frames, cslots, counts, calls, which)
        if SECOND_OPINION.active():
            _keep_pcm(pool, frames, cslots, starts, counts)
        _consume(pool, feats, cslots, starts, counts, t[which])
    if fresh.any():
        pool.last_packet[slots[fresh]] = t[fresh]
        pool.last_audio[slots[fresh]] = t[fresh]

    # Readings due, and what is decided without audio: media stopped, tap groups closing.
    since = t - pool.last_packet[slots]  # NaN: no packet yet
    due = np.flatnonzero(t >= pool.next_reading[slots])
    if max_readings is not None and due.size > max_readings:
        late = t[due] - pool.next_reading[slots[due]]
        chosen = late > MAX_READING_DELAY
        chosen[np.argsort(-late, kind="stable")[:max_readings]] = True
        due = due[chosen]
    results: dict[CallAudio, list[AudioReading]] = {}
    speech: dict[int, float] = {}
    breathing: dict[int, float] = {}
    tone: dict[int, bool] = {}
    if due.size:
        # classify() looks at the audio only when not settled by hint, absence or digital silence
        needs = ~pool.rtp_off[slots[due]] & (since[due] <= pool.no_packets_after[slots[due]])
        needs &= pool.digital_run[slots[due]] * FRAME_S < 0.5
        speech, breathing, tone = _batched_scores(pool, calls, slots, due[needs], t)
        if speech and SECOND_OPINION.active():
            SECOND_OPINION.review(pool, slots, speech, t)
            _breathing_after_veto(pool, calls, slots, speech, breathing, t)
    taps = pool.taps
    # Media stopped right after a tap: the detector would wait for audio that never comes. Only
    # once it is not a stall (QUIET_CLOSE, as for closing a group): a tap's ring resumed after a
    # stall would otherwise read as a new attack over silence.
    for i in np.flatnonzero((since >= QUIET_CLOSE) & (taps.undecided[slots] > PAD_DB)).tolist():
        slot = int(slots[i])
        taps.flush(pool.hist, history, slot, int(pool.count[slot]), float(pool.last_packet[slot]) + 0.08)
    power: dict[int, np.float32] = {}
    quantiles: dict[int, tuple[float, float]] = {}
    if due.size:
        # The level of the last half second and the median / p90 of the last second
        # (classify's _level_dbfs and _quantile), for all due calls with a full second at once.
        full = due[pool.count[slots[due]] >= 50]
        if full.size:
            fs = slots[full]
            levels = ring.last(pool.hist, history, fs, pool.count[fs], 50)[:, :, F.LEVEL]
            power = dict(zip(full.tolist(), np.mean(10.0 ** (levels[:, 25:] / 10.0), axis=1)))
            ranked = np.partition(levels, (25, 44), axis=1)  # nearest ranks of 0.5 and 0.9 over 50
            quantiles = dict(zip(full.tolist(), zip(ranked[:, 25].tolist(), ranked[:, 44].tolist())))
    for i in due.tolist():
        call = calls[i]
        at = float(t[i])
        reading = call.classify(at, speech.get(i), breathing.get(i), power.get(i), quantiles.get(i), tone.get(i))
        pool.next_reading[slots[i]] = at + call.config.reading_interval
        call._record(reading)
        results[call] = [reading]
        _deliver(call.readings, call.on_reading, reading)
    # A tap group closes on the caller's audio, not on this clock (see callflow/audio/taps.py).
    for i in np.flatnonzero(taps.due(pool.hist, history, slots, pool.count[slots], t)).tolist():
        call = calls[i]
        at = float(t[i])
        count = taps.close_group(int(slots[i]), at)
        if count and call._caller_rtp is not False:
            _deliver(call.taps, call.on_taps, TapInput(count=count, at=at))
    return results


def _batched_scores(pool: _Pool, calls: list[CallAudio], slots: np.ndarray, due: np.ndarray, t: np.ndarray) -> tuple[dict, dict, dict]:
    """Speech and breathing scores of the due calls (positions `due`), and whether their last
    second is a line tone (_is_tone), in a few numpy passes.

    Only the columns a score reads are gathered, and breathing only where
    classify() can use it (speech not already clear, no tap just heard). Calls in their
    first second (10–49 frames) are scored by length, as `speech_score` would one by one.
    """
    speech: dict[int, float] = {}
    breathing: dict[int, float] = {}
    tone: dict[int, bool] = {}
    if not due.size:
        return speech, breathing, tone
    history = pool.history
    filled = np.minimum(pool.count[slots[due]], history)
    window = np.minimum(filled, 50)  # classify's window: the last second, or what the call has
    for n in np.unique(window[window > 0]).tolist():
        group = due[window == n]
        fs = slots[group]
        rows = ring.last(pool.hist, history, fs, pool.count[fs], n)
        gain = rows[:, :, F.TONAL]
        # _is_tone's first test for all; the whole check only where it passes (a few calls).
        maybe = np.count_nonzero(gain >= TONE_BEAT_GAIN_DB, axis=1) >= TONE_MIN_FRAMES
        tones = np.zeros(len(group), dtype=bool)
        if maybe.any():
            tones[maybe] = _are_tones(rows[maybe][:, :, _TONE_COLUMNS], _TONE_INDEX)
        tone.update(zip(group.tolist(), tones.tolist()))
        if n < 10:
            continue  # speech_score() is 0 on less
        floors = np.maximum(pool.floor[fs] + 6.0, pool.vad_min[fs]).astype(np.float32)
        windows = rows[:, :, _SPEECH_COLUMNS]
        speech.update(zip(group.tolist(), speech_scores(windows, floors, _SPEECH_INDEX).tolist()))
    # An 8 s rhythm does not change in a few hundred ms: reuse a score younger than BREATH_REUSE.
    # Calls younger than the history (4–8 s of audio) are scored on what they have, by length.
    stale: dict[int, list[int]] = {}
    for i, n in zip(due[filled >= _MIN_BREATH_FRAMES].tolist(), filled[filled >= _MIN_BREATH_FRAMES].tolist()):
        call = calls[i]
        at = float(t[i])
        if speech.get(i, 0.0) >= 0.75 or call._tap_recent(at):
            continue
        when, score = call._breath_cache
        if n == history and at - when < BREATH_REUSE:
            breathing[i] = score
        else:
            stale.setdefault(n, []).append(i)
    for n, group in stale.items():
        ss = slots[np.array(group, dtype=np.intp)]
        windows = ring.last(pool.hist, history, ss, pool.count[ss], n)[:, :, _BREATH_COLUMNS]
        for i, score in zip(group, breathing_scores(windows, _BREATH_INDEX).tolist()):
            breathing[i] = score
            if n == history:
                calls[i]._breath_cache = (float(t[i]), score)
    return speech, breathing, tone


_MIN_BREATH_FRAMES = 200  # 4 s: breathing_score() is 0 on less


def _breathing_after_veto(pool: _Pool, calls: list[CallAudio], slots: np.ndarray, speech: dict, breathing: dict, t: np.ndarray) -> None:
    """Calls whose clear voice (so no breathing score was taken) the second opinion vetoed:
    classify() will ask for their breathing score; take it for all of them at once, fresh, as
    `breathing_score()` would (the reuse cache is neither read nor written)."""
    history = pool.history
    groups: dict[int, list[int]] = {}
    for i, score in speech.items():
        if score < 0.5 and i not in breathing:
            n = min(int(pool.count[slots[i]]), history)
            if n >= _MIN_BREATH_FRAMES and not calls[i]._tap_recent(float(t[i])):
                groups.setdefault(n, []).append(i)
    for n, group in groups.items():
        ss = slots[np.array(group, dtype=np.intp)]
        windows = ring.last(pool.hist, history, ss, pool.count[ss], n)[:, :, _BREATH_COLUMNS]
        breathing.update(zip(group, breathing_scores(windows, _BREATH_INDEX).tolist()))


def speech_scores_now(calls: list[CallAudio]) -> list[float]:
    """`CallAudio.speech_score()` of many calls at once (the offline evaluation asks every tick)."""
    out = [0.0] * len(calls)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, call in enumerate(calls):
        n = min(50, call._filled)
        if n >= 10:
            groups.setdefault((id(call._pool), n), []).append(i)
    for (_pool, n), group in groups.items():
        pool = calls[group[0]]._pool
        ss = np.fromiter((calls[i]._slot for i in group), dtype=np.intp, count=len(group))
        history = pool.history
        windows = ring.last(pool.hist, history, ss, pool.count[ss], n)
        vad_min = np.fromiter((calls[i].config.vad_min_dbfs for i in group), dtype=np.float64, count=len(group))
        floors = np.maximum(pool.floor[ss] + 6.0, vad_min).astype(np.float32)
        for i, score in zip(group, speech_scores(windows, floors).tolist()):
            out[i] = score
    return out


# ---------------------------------------------------------------------------- second opinion on speech
#: The second opinion judges the last PCM_FRAMES frames (1.04 s; Silero reads the last 1.024 s).
PCM_FRAMES = 52


def _keep_pcm(pool: _Pool, frames: np.ndarray, slots: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> None:
    """Write the new frames (grouped by call) into each call's PCM ring, before `_consume` counts them."""
    if pool.pcm is None or len(pool.pcm) < pool.capacity:
        pool.pcm = np.zeros((pool.capacity, PCM_FRAMES, FRAME), dtype=np.int16)
    owner = np.repeat(np.arange(len(slots)), counts)
    j = np.arange(len(frames)) - starts[owner]
    keep = j >= (counts - PCM_FRAMES)[owner]
    at = (pool.count[slots][owner] + j) % PCM_FRAMES
    pool.pcm[slots[owner[keep]], at[keep]] = frames[keep]


class SecondOpinion:
    """Silero VAD as a second opinion where the classifier says speech (issue 12).

    The classifier's speech score leans on voicing, and a crowd, a school yard or a
    town street *is* voices: on real ambiences it called a quarter of them speech
    where Silero called none (docs/benchmarks.md). Silero is trained on voices near a
    microphone and is the better judge of "a voice or not"; it knows nothing of
    breathing, taps, tones or a dead line, so it never replaces the classifier: it can
    only turn a speech score into a non-speech one.

    Cost decides where it runs (docs/benchmarks.md): on every frame of every call it
    would roughly double the analysis cost, so it runs only when a due reading says
    speech, over the call's last 1.02 s from a fresh state, all such calls in one batch,
    and its verdict is reused for REUSE seconds, REUSE_CONFIRMED when it is sure of a voice (a
    speaking caller costs one Silero pass per 3 s; a silent, breathing or tapping caller nothing).

    Fallback, stated, not silent: with mode "off" (config `media.speech_second_opinion`)
    or when onnxruntime / the silero-vad model is not installed, speech readings are the
    classifier's alone; the controller logs which at start, `state` says it, and the
    receiver exports it (`audio_second_opinion_active`).
    """

    #: A window whose Silero score (85th percentile of its 32 ms chunk probabilities) is under
    #: this is "no voice here" (tuned on dev: see docs/benchmarks.md).
    VETO_BELOW = 0.25
    #: Score a vetoed reading is capped at: under the classifier's 0.5 speech line.
    CAPPED = 0.45
    REUSE = 1.0  # seconds: one Silero pass per second of a doubtful window, about the cost of streaming it
    #: A voice Silero is sure of (score at least CONFIRMED) is reused for REUSE_CONFIRMED: a caller
    #: who keeps talking does not become a crowd within seconds, and the reading stays the
    #: classifier's own (speech or, when its score falls, not). A veto is never kept longer than
    #: REUSE: a caller who starts speaking over a crowd must be heard within a second.
    CONFIRMED = 0.8
    REUSE_CONFIRMED = 3.0
    #: A young call's speech Silero did not hear a voice in: over the classifier's 0.5 speech line,
    #: under SpeechStreak.CONFIDENCE (0.6).
    UNCONFIRMED = 0.55

    def __init__(self, mode: str = "silero") -> None:
        self.mode = mode
        self.state = "not loaded yet" if mode == "silero" else "off (configured)"
        self._ready: bool | None = None if mode == "silero" else False
        self.runs = 0  # batched Silero passes
        self.windows = 0  # call-windows judged
        self.vetoes = 0

    def configure(self, mode: str) -> str:
        """"silero" or "off"; loads the model now (not in the first call's tick). Returns the state."""
        if mode not in ("silero", "off"):
            raise ValueError(f'speech second opinion: "silero" or "off", got {mode!r}')
        self.__init__(mode)
        self.active()
        return self.state

    @property
    def running(self) -> bool:
        """Loaded and judging (False while not loaded yet, off, unavailable or failed)."""
        return self._ready is True

    def active(self) -> bool:
        """Loads the model on first use; False when off or unavailable (stated in `state`, logged)."""
        if self._ready is None:
            from callflow.audio import silero

            try:
                silero.session()
            except silero.SileroUnavailable as exc:
                self._ready = False
                self.state = f"unavailable ({exc}): speech readings are the classifier's alone"
                log.warning("speech second opinion: %s", self.state)
            else:
                self._ready = True
                v = silero.versions()
                self.state = f"silero (onnxruntime {v['onnxruntime']}, silero-vad {v['silero-vad']})"
        return self._ready

    def review(self, pool: _Pool, slots: np.ndarray, speech: dict[int, float], t: np.ndarray) -> None:
        """Cap the speech score of due calls (positions → score) whose last second Silero finds no voice in.

        A young call (a media fork started less than PCM_FRAMES frames ago) is judged on the audio it
        has, and a no is not kept (the next reading is judged again, on more). On so little, a no only
        keeps the reading UNCONFIRMED: still speech, but not yet « the caller talks » (SpeechStreak) nor
        a sign of life by itself. Before, the classifier alone decided a fork's first second, and a
        sobbing caller's first sobs read as the caller talking (seen under load: two speech readings
        before 1.04 s, the caller sent to the agents instead of the emergency line)."""
        from callflow.audio import silero

        # the classifier scores speech from 10 frames on (0.2 s: six of Silero's 32 ms chunks)
        asked = [i for i, score in speech.items() if score >= 0.5 and pool.count[slots[i]] >= 10]
        if not asked or pool.pcm is None:
            return
        frames = np.minimum(pool.count[slots], PCM_FRAMES)
        reuse = np.where(pool.opinion[slots] >= self.CONFIRMED, self.REUSE_CONFIRMED, self.REUSE)  # NaN: REUSE
        fresh = [i for i in asked if not (t[i] - pool.opinion_at[slots[i]] < reuse[i])]  # NaN: never judged
        by_length: dict[int, list[int]] = {}
        for i in fresh:
            by_length.setdefault(int(frames[i]), []).append(i)
        for n, group in by_length.items():
            at = np.array(group, dtype=np.intp)
            ss = slots[at]
            # oldest frame first; a young call's last n are all it has (its ring's rest is another call's)
            order = (pool.count[ss][:, None] + np.arange(PCM_FRAMES - n, PCM_FRAMES)) % PCM_FRAMES
            windows = pool.pcm[ss[:, None], order].reshape(len(ss), -1).astype(np.float32) * (1.0 / 32768.0)
            try:
                scores = silero.window_scores(windows)
            except Exception:  # a broken model must not stop the calls' audio: the classifier alone
                log.exception("speech second opinion failed; the classifier decides alone")
                self._ready = False
                self.state = "failed at run time: speech readings are the classifier's alone"
                return
            pool.opinion[ss] = scores
            # a young call's verdict is kept only when sure of a voice: more audio may tell otherwise
            pool.opinion_at[ss] = np.where((n == PCM_FRAMES) | (scores >= self.CONFIRMED), t[at], np.nan)
            self.runs += 1
            self.windows += len(group)
        for i in asked:
            if pool.opinion[slots[i]] < self.VETO_BELOW:
                speech[i] = min(speech[i], self.CAPPED if frames[i] == PCM_FRAMES else self.UNCONFIRMED)
                self.vetoes += 1


#: The process's second opinion. Offline tools follow the same variable as `callflow run`'s
#: config (media.speech_second_opinion), so `callflow audio eval` scores what the product runs.
SECOND_OPINION = SecondOpinion(os.environ.get("CALLFLOW_MEDIA_SPEECH_SECOND_OPINION", "silero").strip().lower())


BREATH_REUSE = 0.75  # seconds


# Column subsets gathered for the batched scores, and where each column lands.
_SPEECH_COLUMNS = [F.LEVEL, F.VAD, F.VOICED, F.CENTROID]
_SPEECH_INDEX = {c: i for i, c in enumerate(_SPEECH_COLUMNS)}
_BREATH_COLUMNS = [F.LEVEL, F.VOICED]
_BREATH_INDEX = {c: i for i, c in enumerate(_BREATH_COLUMNS)}
_TONE_COLUMNS = [F.TONAL, F.LEVEL, F.PEAK]
_TONE_INDEX = {c: i for i, c in enumerate(_TONE_COLUMNS)}
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


VAD_AGREEMENT = 0.6  # webrtcvad confirms at least this share of a voice's voiced frames


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
    # webrtcvad is asked about voiced frames only: on a voice it confirms nearly all of them
    # (measured: its share ≈ the voiced share on speech), on a ship's horn, a gull or an
    # engine's harmonics it confirms few (real recordings, docs/audio-eval.md).
    agreement = np.minimum(vad_frac / np.maximum(VAD_AGREEMENT * voiced_frac, 1e-9), 1.0)
    score = (
        0.5 * np.minimum(voiced_frac / 0.3, 1.0)
        + 0.25 * np.minimum(vad_frac / 0.5, 1.0)
        + 0.25 * np.minimum(modulation / 4.0, 1.0)
    ) * np.minimum(movement / 60.0, 1.0) * agreement
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
        * np.clip((pause_share(env, p90, np.clip(PAUSE_DEPTH * depth, PAUSE_MIN_DB, PAUSE_DB)) - PAUSE_SHARE_NONE) / (PAUSE_SHARE_FULL - PAUSE_SHARE_NONE), 0.0, 1.0)
    )
    return np.where((p90 < -62.0) | (depth < 5.0) | (ac0 <= 0), 0.0, score)


#: A breath cycle has pauses: between two breaths, and between an inhale and its exhale, the level
#: falls back most of the way to the floor — PAUSE_DEPTH of the envelope's depth (p90 − p10), at most
#: PAUSE_DB — under the breaths' loud level (the envelope's 90th percentile) for PAUSE_FRAMES or
#: more (a faint breath a few dB over a room's noise falls back to that noise). At 0.2–0.5 breaths/s they fill a third of the time or more (inhale and exhale each last
#: ~0.5–2 s); engines, wind, crowds and machines swell and fade but stay within PAUSE_DB of their
#: loud level almost all the time (docs/benchmarks.md, "noise and tones, fourth round").
PAUSE_DB = 12.0
PAUSE_DEPTH = 0.6
PAUSE_MIN_DB = 7.0
PAUSE_FRAMES = 10  # 200 ms of the 100 ms envelope: a dip, not one quiet frame
PAUSE_SHARE_NONE = 0.2  # no more pause than this: not a breathing rhythm
PAUSE_SHARE_FULL = 0.35  # this much: the rhythm is as breathing's


def pause_share(env: np.ndarray, loud: np.ndarray, drop: np.ndarray | float = PAUSE_DB) -> np.ndarray:
    """Share of each envelope row (n, m) inside runs of ≥ PAUSE_FRAMES frames `drop` dB or more under `loud` (n,)."""
    low = (env < (loud - drop)[:, None]).astype(np.int32)
    n, m = low.shape
    if m < PAUSE_FRAMES:
        return np.zeros(n)
    cs = np.concatenate((np.zeros((n, 1), dtype=np.int32), np.cumsum(low, axis=1)), axis=1)
    starts = (cs[:, PAUSE_FRAMES:] - cs[:, :-PAUSE_FRAMES]) == PAUSE_FRAMES  # a full run starts here
    # Frames covered by any such run: a start within the PAUSE_FRAMES before (or at) the frame.
    cs2 = np.concatenate((np.zeros((n, 1), dtype=np.int32), np.cumsum(starts, axis=1)), axis=1)
    j = np.arange(m)
    covered = cs2[:, np.minimum(j + 1, m - PAUSE_FRAMES + 1)] - cs2[:, np.maximum(j - PAUSE_FRAMES + 1, 0)] > 0
    return covered.mean(axis=1)


def verdict(readings: list[AudioReading], tap_counts: list[int] = ()) -> AudioState:
    """One state for a listening window (what a flow's `listen(seconds)` would decide).

    Signs of life win over absence: enough speech → speech; any tap group → taps;
    a quarter of breathing → breathing; line tones (two readings, more than noise);
    then noise, silence, dead line by majority.
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
    if counts[AudioState.LINE_TONE] >= 2 and counts[AudioState.LINE_TONE] >= counts[AudioState.BACKGROUND_NOISE]:
        return AudioState.LINE_TONE  # the network's tones, not a caller (cadenced tones leave silences between)
    if counts[AudioState.DEAD_LINE] > n / 2:
        return AudioState.DEAD_LINE
    if counts[AudioState.BACKGROUND_NOISE] >= counts[AudioState.SILENCE]:
        return AudioState.BACKGROUND_NOISE if counts[AudioState.BACKGROUND_NOISE] else AudioState.SILENCE
    return AudioState.SILENCE

