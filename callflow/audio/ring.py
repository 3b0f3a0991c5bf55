"""Contiguous windows of the classifier's mirrored feature ring, for many calls at once.

The pool keeps each call's feature rows in a ring of H rows written twice (frame f at rows
f % H and f % H + H: classifier._Pool), so any n ≤ H consecutive frames are n consecutive
rows. Read with a fancy index per row and column, a window costs numpy one lookup per
element; read as one block per call (a strided view whose last two axes are a window's rows
and columns), about a third of that (session 9, docs/benchmarks.md). Same values, to the bit.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def windows(hist: np.ndarray, slots: np.ndarray, first_rows: np.ndarray, n: int) -> np.ndarray:
    """Rows first_rows[i] … first_rows[i] + n - 1 of call slots[i]: (m, n, columns).

    `hist` is (calls, 2H, columns); each first row + n must stay within the 2H rows (a window
    of n ≤ H frames starting in the first half always does)."""
    calls, rows, columns = hist.shape
    s0, s1, s2 = hist.strides
    view = as_strided(hist, shape=(calls, rows - n + 1, n, columns), strides=(s0, s1, s1, s2), writeable=False)
    return view[slots, first_rows]


def last(hist: np.ndarray, history: int, slots: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """The last n ≤ H rows of these calls (now `counts` frames each), oldest first: the slice
    ending at row count % H + H."""
    return windows(hist, slots, counts % history + history - n, n)


def recent(small: np.ndarray, slots: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The pool's small ring of the last second (calls, columns, 2R: frame f at f % R and
    f % R + R): these calls' last R values of every column, oldest first, (m, columns, R)."""
    calls, columns, rows = small.shape
    n = rows // 2
    s0, s1, s2 = small.strides
    view = as_strided(small, shape=(calls, columns, n + 1, n), strides=(s0, s1, s2, s2), writeable=False)
    return view[slots, :, counts % n]


def frames(hist: np.ndarray, history: int, slots: np.ndarray, first_frames: np.ndarray, n: int) -> np.ndarray:
    """The rows of frames first_frames[i] … first_frames[i] + n - 1 of call slots[i] (frame f at row
    f % H): (m, n, columns). One block per call when the span fits in the 2H rows; a longer one (a
    very late burst) row by row, as any span of frames wraps the ring."""
    first_rows = first_frames % history
    if first_rows.size and int(first_rows.max()) + n <= 2 * history:
        return windows(hist, slots, first_rows, n)
    return hist[slots[:, None], (first_frames[:, None] + np.arange(n)) % history]
