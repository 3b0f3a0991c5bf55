"""Taps on the handset: onset detection on 2.5 ms block energies, then grouping.

A tap is a sharp rise (≥ TAP_MARGIN_DB over the local background, the median
of the 40 ms before it, with the 10 ms before still near that background or
TAP_MARGIN_DB under the attack) that stays up at least 5 ms (a line click is
one sample: one or two very peaky blocks; over a loud bed a short tap may
stay up one block only, a line click's block is peakier), falls back within
~45 ms (longer, i.e. most of the blocks 45–80 ms after the attack still
loud and within TAIL_DROP_DB of it, is a syllable or a noise swell) and is
not mostly voiced. The local background, not a global floor, makes taps count
over traffic swells and breathing. Band-limited beds (breathing) make single
2.5 ms blocks jump ±6 dB around their median, so "still loud" is judged on
most blocks, not any block, and a breath starting under a tap's decay does
not make it "too long". Onsets closer than REFRACTORY are one tap (a thump
and its ring). A group closes after GROUP_GAP seconds without a new tap and
becomes one TapInput(count).
"""

from __future__ import annotations

import numpy as np

from callflow.audio.features import BLOCK_SAMPLES, BLOCKS_PER_FRAME, SAMPLE_RATE

BLOCK_SECONDS = BLOCK_SAMPLES / SAMPLE_RATE

PRESELECT_DB = 10.0  # attack candidates: above the mean of the 40 ms before
TAP_MARGIN_DB = 12.0  # attack: above the local background
TAP_MIN_DBFS = -50.0  # quieter events are not a tap on the handset
SUSTAIN_DB = 6.0  # "still loud": this far above the local background
BACKGROUND_BLOCKS = 16  # 40 ms before the attack give the local background
MIN_BODY_BLOCKS = 2  # 5 ms
CLICK_CREST_DB = 10.5  # a 2-block event this peaky is one sample: a line click, not a tap
SHORT_TAP_CREST_DB = 8.0  # a 1-block event must be less peaky than this to be a (short) tap
MAX_SUSTAIN_BLOCKS = 18  # 45 ms
LOOKAHEAD_BLOCKS = 32  # 80 ms after the attack are needed to decide
REFRACTORY_BLOCKS = 40  # 100 ms
MAX_VOICED_BLOCKS = 24  # a thump can look voiced for a frame or two; a syllable is longer
GROUP_GAP = 1.3  # seconds without a tap that close a group
_CONTEXT = BACKGROUND_BLOCKS + 1
_MEDIAN = BACKGROUND_BLOCKS // 2
BODY_DROP_DB = 30.0  # a tap's body ends this far under its peak (or near the background)
TAIL_DROP_DB = 20.0  # after 45 ms a tap has fallen this far below its attack (a syllable has not)
TAIL_LOUD_BLOCKS = (LOOKAHEAD_BLOCKS - MAX_SUSTAIN_BLOCKS) // 2  # more still loud after 45 ms: too long
_windows = np.lib.stride_tricks.sliding_window_view


class TapDetector:
    """Finds taps in a stream of block energies and groups them into counts.

    Feed it with `push(block_db, voiced, crest, end_time)`; it keeps only the
    context it needs (background before, lookahead after) between calls.
    """

    __slots__ = ("_blocks", "_voiced", "_crest", "_next_allowed", "_undecided_peak", "_group", "_last_tap", "_start_after")

    def __init__(self) -> None:
        self._blocks = np.full(_CONTEXT, -99.0, dtype=np.float32)
        self._voiced = np.zeros(_CONTEXT, dtype=bool)
        self._crest = np.zeros(_CONTEXT, dtype=np.float32)
        self._next_allowed = _CONTEXT  # index into the current buffer
        self._undecided_peak = -99.0  # loudest block still waiting for its lookahead
        self._group = 0
        self._last_tap: float | None = None

    def push(
        self, block_db: np.ndarray, voiced: np.ndarray, crest: np.ndarray, end_time: float, quiet_db: float = 99.0
    ) -> list[float]:
        """Add blocks ending at `end_time` (s); return the times of the taps found.

        `voiced` and `crest` are per frame (BLOCKS_PER_FRAME blocks each).
        `quiet_db`, a lower bound of the recent block energies, enables a fast
        path: when nothing new rises PRESELECT_DB above it, only the context is kept.
        """
        peak = float(block_db.max()) if len(block_db) else -99.0
        if max(peak, self._undecided_peak) < max(quiet_db + PRESELECT_DB, TAP_MIN_DBFS):
            if len(block_db) >= _CONTEXT:
                tail_frames = -(-_CONTEXT // BLOCKS_PER_FRAME)
                self._blocks = block_db[-_CONTEXT:]
                self._voiced = np.repeat(voiced[-tail_frames:], BLOCKS_PER_FRAME)[-_CONTEXT:]
                self._crest = np.repeat(crest[-tail_frames:], BLOCKS_PER_FRAME)[-_CONTEXT:]
            else:
                voiced = np.repeat(voiced, BLOCKS_PER_FRAME)
                crest = np.repeat(crest, BLOCKS_PER_FRAME)
                self._blocks = np.concatenate((self._blocks, block_db))[-_CONTEXT:]
                self._voiced = np.concatenate((self._voiced, voiced))[-_CONTEXT:]
                self._crest = np.concatenate((self._crest, crest))[-_CONTEXT:]
            self._next_allowed = _CONTEXT
            return []
        voiced = np.repeat(voiced, BLOCKS_PER_FRAME)
        crest = np.repeat(crest, BLOCKS_PER_FRAME)
        blocks = np.concatenate((self._blocks, block_db))
        voiced_all = np.concatenate((self._voiced, voiced))
        crest_all = np.concatenate((self._crest, crest))
        n = len(blocks)
        decided_until = n - LOOKAHEAD_BLOCKS  # candidates at or after this wait for more audio
        start = max(self._next_allowed, _CONTEXT)
        found: list[float] = []
        if decided_until > start:
            # Preselect with a cheap running mean of the 40 ms before each block.
            cums = np.concatenate(([0.0], np.cumsum(blocks, dtype=np.float64)))
            idx = np.arange(start, decided_until)
            before = (cums[idx] - cums[idx - BACKGROUND_BLOCKS]) / BACKGROUND_BLOCKS
            attack = blocks[start:decided_until]
            candidates = np.flatnonzero((attack - before >= PRESELECT_DB) & (attack > TAP_MIN_DBFS)) + start
            if candidates.size:
                found += self._confirm(blocks, voiced_all, crest_all, candidates, start, end_time)
                start = self._start_after
            start = max(start, decided_until)
        self._undecided_peak = float(blocks[max(decided_until, 0) :].max())
        keep_from = max(min(start, decided_until) - _CONTEXT, 0)
        self._blocks = blocks[keep_from:]
        self._voiced = voiced_all[keep_from:]
        self._crest = crest_all[keep_from:]
        self._next_allowed = start - keep_from
        for t in found:
            self._group += 1
            self._last_tap = t
        return found

    def _confirm(self, blocks, voiced, crest, candidates, start: int, end_time: float) -> list[float]:
        """Check candidate attacks (vectorised), then apply the refractory period in order."""
        n = len(blocks)
        backgrounds = np.partition(_windows(blocks, BACKGROUND_BLOCKS)[candidates - BACKGROUND_BLOCKS], _MEDIAN, axis=1)
        background = backgrounds[:, _MEDIAN]
        attack = blocks[candidates]
        before = np.maximum(np.maximum(blocks[candidates - 4], blocks[candidates - 3]), blocks[candidates - 2])
        # Loud enough over the local background, and a sharp rise: the blocks just before are
        # near the background or far below the attack (not inside a louder event). Band-limited
        # beds (breathing) make single blocks jump ±6 dB around their median.
        qualified = (attack >= background + TAP_MARGIN_DB) & (
            before <= np.maximum(background + SUSTAIN_DB, attack - TAP_MARGIN_DB)
        )
        candidates, background, attack = candidates[qualified], background[qualified], attack[qualified]
        self._start_after = start
        if not candidates.size:
            return []
        ahead = _windows(blocks, LOOKAHEAD_BLOCKS)[candidates]
        onset_peak = ahead[:, :3].max(axis=1)  # the attack block may hold only the tap's first samples
        # The body lasts while the event stays near the background's top, or (a loud tap over a
        # quiet line rings long) within BODY_DROP_DB of its peak.
        loud = ahead > np.maximum(background + SUSTAIN_DB, onset_peak - BODY_DROP_DB)[:, None]
        body = np.where(loud.all(axis=1), LOOKAHEAD_BLOCKS, np.argmin(loud, axis=1))
        crests = crest[candidates]
        click = (body == MIN_BODY_BLOCKS) & (crests >= CLICK_CREST_DB)
        # A short tap over a loud bed may fall under background + SUSTAIN_DB within one block;
        # a one-sample line click does too, but its block is much peakier. One block is thin
        # evidence: it must stand well clear of the bed.
        short = (body == 1) & (crests < SHORT_TAP_CREST_DB) & (attack >= background + TAP_MARGIN_DB + SUSTAIN_DB)
        mostly_voiced = _windows(voiced, LOOKAHEAD_BLOCKS)[candidates].sum(axis=1) > MAX_VOICED_BLOCKS
        # Still up after 45 ms, near the attack's level (most blocks, not a few blocks of a
        # noisy bed jumping, nor a breath starting under the tap's decay): a syllable or a swell.
        still_up = np.maximum(background + SUSTAIN_DB, onset_peak - TAIL_DROP_DB)
        too_long = (ahead[:, MAX_SUSTAIN_BLOCKS:] > still_up[:, None]).sum(axis=1) > TAIL_LOUD_BLOCKS
        is_tap = (((body >= MIN_BODY_BLOCKS) & (body <= MAX_SUSTAIN_BLOCKS) & ~click) | short) & ~too_long & ~mostly_voiced
        found = []
        for i, tap in zip(candidates.tolist(), is_tap.tolist()):
            if i < start:
                continue  # within REFRACTORY of the previous attack: the same tap ringing
            start = i + REFRACTORY_BLOCKS
            if tap:
                found.append(float(end_time - (n - i) * BLOCK_SECONDS))
        self._start_after = start
        return found

    def flush(self, end_time: float) -> list[float]:
        """The stream stopped (no packets): decide pending attacks as if silence followed."""
        if self._undecided_peak <= -99.0:
            return []
        frames = -(-LOOKAHEAD_BLOCKS // BLOCKS_PER_FRAME)
        quiet = np.full(frames * BLOCKS_PER_FRAME, -99.0, dtype=np.float32)
        found = self.push(quiet, np.zeros(frames, dtype=bool), np.zeros(frames, dtype=np.float32), end_time, quiet_db=-999.0)
        self._undecided_peak = -99.0
        return found

    def close_group(self, now: float) -> int:
        """The tap count of a group finished by `now` (else 0); resets the group."""
        if self._group and self._last_tap is not None and now - self._last_tap >= GROUP_GAP:
            count, self._group = self._group, 0
            return count
        return 0

    @property
    def open_group(self) -> int:
        return self._group

    def last_tap_at(self) -> float | None:
        return self._last_tap

    def reset(self) -> None:
        self.__init__()
