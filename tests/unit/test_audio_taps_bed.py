"""The tap detector's bed (the 80th percentile of the last 2 s of block energies) by partial sort
gives exactly what the full sort gave (session 7: the sort was most of the detector's cost)."""

import numpy as np
import pytest

from callflow.audio.features import BLOCKS, BLOCKS_PER_FRAME, N_COLUMNS
from callflow.audio.taps import BED_FRAMES, BED_MIN_BLOCKS, BED_QUANTILE, NO_TAP, PAD_DB, RING_MAX_BLOCKS, TapBank


def _bed_by_sort(bank, hist, history, slots, first_frame, real_end):
    """The definition, row by row: the heard blocks (since the origin, not the open group's rings), sorted."""
    out = []
    for slot, ff, end in zip(slots.tolist(), first_frame.tolist(), real_end.tolist()):
        values = []
        for frame in range(ff - BED_FRAMES, ff):
            for b in range(BLOCKS_PER_FRAME):
                block = frame * BLOCKS_PER_FRAME + b
                if frame < bank.origin[slot]:
                    continue
                if any(t != NO_TAP and t <= block < t + RING_MAX_BLOCKS for t in bank.group_taps[slot][: bank.group[slot] + 1].tolist()) and bank.group[slot] > 0:
                    continue
                values.append(PAD_DB if frame * BLOCKS_PER_FRAME >= end else float(hist[slot, frame % history, BLOCKS + b]))  # a frame from the end on reads as silence
        values.sort()
        n = len(values)
        out.append(values[min(max(int(BED_QUANTILE * (n - 1)), 0), len(values) - 1)] if n >= BED_MIN_BLOCKS else PAD_DB)
    return np.array(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bed_by_partial_sort_is_the_sorted_bed(seed):
    rng = np.random.default_rng(seed)
    m, history = 12, 400
    hist = rng.normal(-55, 12, (m, 2 * history, N_COLUMNS)).astype(np.float32)
    bank = TapBank(m)
    slots = np.arange(m)
    first_frame = rng.integers(30, 350, m)
    bank.origin[:] = np.maximum(first_frame - rng.integers(0, 150, m), 0)  # young calls: fewer frames heard
    real_end = first_frame * BLOCKS_PER_FRAME + rng.integers(-400, 400, m)  # some end inside the bed
    for slot in (1, 4, 7):  # an open group: its rings are not the bed
        bank.group[slot] = 2
        bank.group_taps[slot, :2] = first_frame[slot] * BLOCKS_PER_FRAME - np.array([500, 200])
    got = bank._bed(hist, history, slots, first_frame, real_end)
    np.testing.assert_array_equal(got, _bed_by_sort(bank, hist, history, slots, first_frame, real_end).astype(got.dtype))
