"""Taps on the handset: onset detection on 2.5 ms block energies, then grouping.

A tap is a sharp rise (≥ TAP_RISE_DB above the background floor within 10 ms,
from a quiet start) whose energy falls back within ~45 ms and that carries no
voicing. Speech onsets also rise sharply, but stay up for a syllable; electrical
clicks are a single block. Onsets closer than REFRACTORY are one tap (a thump
and its ring). A group closes after GROUP_GAP seconds without a new tap and is
reported as one TapInput(count).
"""

from __future__ import annotations

import numpy as np

from callflow.audio.features import BLOCK_SAMPLES, SAMPLE_RATE

BLOCK_SECONDS = BLOCK_SAMPLES / SAMPLE_RATE

TAP_RISE_DB = 15.0  # above the floor, at the attack
TAP_MIN_DBFS = -48.0  # absolute: quieter events are not a tap on the handset
QUIET_BEFORE_BLOCKS = 4  # 10 ms before the attack must be clearly lower
SUSTAIN_DB = 8.0  # "still loud" threshold above the floor
MAX_SUSTAIN_BLOCKS = 18  # 45 ms: longer is speech or a sustained noise
MIN_BODY_BLOCKS = 2  # 5 ms: a one-block spike is an electrical click
LOOKAHEAD_BLOCKS = 32  # 80 ms after the attack needed to decide
REFRACTORY_BLOCKS = 40  # 100 ms: closer onsets belong to the same tap
GROUP_GAP = 1.3  # seconds without a tap that close a group


class TapDetector:
    """Finds taps in a stream of block energies; groups them into counts.

    Feed it with `push(block_db, floor_db, voiced_blocks, end_time)`; it keeps
    only LOOKAHEAD + QUIET_BEFORE blocks of context between calls.
    """

    __slots__ = ("_context", "_context_voiced", "_next_allowed", "_group", "_last_tap", "tap_times")

    def __init__(self) -> None:
        self._context = np.zeros(0, dtype=np.float32)
        self._context_voiced = np.zeros(0, dtype=bool)
        self._next_allowed = 0  # index into the current buffer
        self._group = 0
        self._last_tap: float | None = None
        self.tap_times: list[float] = []  # recent tap times (seconds), trimmed by the caller

    def push(self, block_db: np.ndarray, floor_db: float, voiced: np.ndarray, end_time: float) -> list[float]:
        """Add blocks ending at `end_time` (s); return the times of taps found."""
        blocks = np.concatenate((self._context, block_db))
        voiced_all = np.concatenate((self._context_voiced, voiced))
        onset_level = max(floor_db + TAP_RISE_DB, TAP_MIN_DBFS)
        sustain_level = floor_db + SUSTAIN_DB
        start = max(QUIET_BEFORE_BLOCKS, self._next_allowed)
        found: list[float] = []
        keep_from = max(len(blocks) - LOOKAHEAD_BLOCKS - QUIET_BEFORE_BLOCKS, 0)
        candidates = np.flatnonzero(blocks[start:] > onset_level) + start
        for i in candidates:
            if i < start:
                continue
            if i + LOOKAHEAD_BLOCKS > len(blocks):
                keep_from = min(keep_from, i - QUIET_BEFORE_BLOCKS)
                break
            if blocks[i - QUIET_BEFORE_BLOCKS : i].max() > onset_level - 6.0:
                continue  # not from quiet: inside a louder event
            after = blocks[i : i + LOOKAHEAD_BLOCKS] > sustain_level
            body = int(after[:MAX_SUSTAIN_BLOCKS].sum())
            if body < MIN_BODY_BLOCKS or after[MAX_SUSTAIN_BLOCKS:].any():
                start = i + REFRACTORY_BLOCKS
                continue
            if voiced_all[i : i + LOOKAHEAD_BLOCKS].any():
                start = i + REFRACTORY_BLOCKS
                continue
            found.append(end_time - (len(blocks) - i) * BLOCK_SECONDS)
            start = i + REFRACTORY_BLOCKS
        keep_from = max(keep_from, 0)
        self._context = blocks[keep_from:].copy()
        self._context_voiced = voiced_all[keep_from:].copy()
        self._next_allowed = max(start - keep_from, 0)
        for t in found:
            self._group += 1
            self._last_tap = t
            self.tap_times.append(t)
        return found

    def close_group(self, now: float) -> int:
        """Return the tap count of a group finished by `now` (else 0) and reset it."""
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
