"""The receiver's cheaper paths (issue 12, session 7) give exactly what the paths they replace gave:
the tap detector's bed by partition over the block columns (was: a full sort of whole gathered
rows), the first second's speech scores and the tone check batched over the due calls (were:
one call at a time in classify), and the fast path's plain-int counters (were: a Counter per packet)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from callflow.audio import ring
from callflow.audio.classifier import RECENT, CallAudio, _batched_scores, _breathing_after_veto, _is_tone, analyse_calls
from callflow.audio.features import BLOCK_MAX, BLOCKS, BLOCKS_PER_FRAME, DIGITAL_SILENCE, N_COLUMNS
from callflow.audio.offline import ManualClock
from callflow.audio.receiver import RtpReceiver
from callflow.audio.rtp import build_rtp
from callflow.audio.taps import BED_FRAMES, BED_LOOKBACK_FRAMES, BED_MIN_BLOCKS, BED_QUANTILE, LOOKAHEAD_BLOCKS, MAX_GROUP_TAPS, NO_TAP, RING_MAX_BLOCKS, TapBank


_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def reference_bed(bank: TapBank, hist, history, slots, first_frame, real_end) -> np.ndarray:
    """The bed as it was computed before session 7: whole rows gathered, then a full sort."""
    blocks, _t, _c = bank._gather(hist, history, slots, first_frame - BED_FRAMES, BED_FRAMES, real_end)
    frames = np.clip(first_frame - np.maximum(first_frame - BED_FRAMES, bank.origin[slots]), 0, BED_FRAMES)
    heard = np.arange(blocks.shape[1]) >= (BED_FRAMES - frames)[:, None] * BLOCKS_PER_FRAME
    tapping = np.flatnonzero(bank.group[slots] > 0)
    if tapping.size:
        at = (first_frame[tapping] - BED_FRAMES)[:, None, None] * BLOCKS_PER_FRAME + np.arange(blocks.shape[1])[None, None, :]
        starts = bank.group_taps[slots[tapping]][:, :, None]
        heard[tapping] &= ~((at >= starts) & (at < starts + RING_MAX_BLOCKS)).any(axis=1)
    n = heard.sum(axis=1)
    k = np.maximum(BED_QUANTILE * (n - 1), 0).astype(np.int64)
    ranked = np.sort(np.where(heard, blocks, np.inf), axis=1)
    bed = ranked[np.arange(len(slots)), np.minimum(k, blocks.shape[1] - 1)]
    return np.where(n >= BED_MIN_BLOCKS, bed, -99.0)


def random_history(rng, history: int, capacity: int) -> np.ndarray:
    """A pool's feature ring of random levels, with ties (rounded) and digital silence (-99 dB) in the
    blocks, mirrored as the pool writes it (frame f at rows f % H and f % H + H)."""
    hist = np.round(rng.uniform(-99.0, -5.0, (capacity, 2 * history, N_COLUMNS)), int(rng.integers(0, 3))).astype(np.float32)
    hist[:, :, BLOCKS : BLOCKS + BLOCKS_PER_FRAME][rng.random((capacity, 2 * history, BLOCKS_PER_FRAME)) < 0.1] = -99.0
    hist[:, history:] = hist[:, :history]
    return hist


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 40))
def test_the_bed_by_partition_is_the_bed_by_sort(seed, calls):
    """Young calls (origin inside the 2 s), calls with an open group (their rings left out), calls
    heard whole; levels with ties (rounded) and digital silence (-99 dB)."""
    rng = np.random.default_rng(seed)
    history, capacity = 400, calls + 3
    hist = random_history(rng, history, capacity)
    bank = TapBank(capacity)
    slots = rng.permutation(capacity)[:calls]
    first_frame = rng.integers(0, 3000, calls)
    bank.origin[slots] = np.maximum(first_frame - rng.integers(0, 2 * BED_FRAMES, calls), 0)
    bank.bed_from[slots] = bank.origin[slots]  # listening (re)started there (`reset` sets both)
    for i, slot in enumerate(slots):
        if rng.random() < 0.3:  # an open group: 1-3 taps within the bed's 2 s
            taps = int(rng.integers(1, 4))
            bank.group[slot] = taps
            bank.group_taps[slot] = NO_TAP
            bank.group_taps[slot, :taps] = (first_frame[i] - rng.integers(1, BED_FRAMES, taps)) * BLOCKS_PER_FRAME
    assert bank.group_taps.shape[1] == MAX_GROUP_TAPS + 1
    real_end = (first_frame + rng.integers(1, 30, calls)) * BLOCKS_PER_FRAME
    got = bank._bed(hist, history, slots, first_frame, real_end)
    want = reference_bed(bank, hist, history, slots, first_frame, real_end)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 40))
def test_the_bed_looks_back_only_for_calls_with_digital_silence_and_it_changes_nothing_for_the_others(seed, calls):
    """`_bed` looks back BED_LOOKBACK_FRAMES (past a stall's filler) only for the calls with digital
    silence in their last BED_FRAMES (session 9: every call of a batch did when one had): the others'
    bed is what the look-back gives them too. Runs of zeros after sounds cut or faded, young calls,
    open groups."""
    rng = np.random.default_rng(seed)
    history = 400
    capacity = calls + 3
    hist = np.round(rng.uniform(-80.0, -5.0, (capacity, 2 * history, N_COLUMNS)), 1).astype(np.float32)
    hist[:, :, DIGITAL_SILENCE] = 0.0
    for slot in range(capacity):  # runs of digital silence here and there
        for _ in range(int(rng.integers(0, 4))):
            at, n = int(rng.integers(0, history)), int(rng.integers(1, 120))
            rows = (at + np.arange(n)) % history
            hist[slot, rows, DIGITAL_SILENCE] = 1.0
            hist[slot, rows, BLOCKS : BLOCKS + BLOCKS_PER_FRAME] = -99.0
    hist[:, history:] = hist[:, :history]
    bank = TapBank(capacity)
    slots = rng.permutation(capacity)[:calls]
    first_frame = rng.integers(BED_LOOKBACK_FRAMES, 3000, calls)
    bank.origin[slots] = bank.bed_from[slots] = np.maximum(first_frame - rng.integers(0, 2 * BED_LOOKBACK_FRAMES, calls), 0)
    for i, slot in enumerate(slots):
        if rng.random() < 0.3:
            bank.group[slot] = 1
            bank.group_taps[slot] = NO_TAP
            bank.group_taps[slot, 0] = (first_frame[i] - int(rng.integers(1, BED_FRAMES))) * BLOCKS_PER_FRAME
    real_end = (first_frame + rng.integers(1, 30, calls)) * BLOCKS_PER_FRAME
    got = bank._bed(hist, history, slots, first_frame, real_end)
    np.testing.assert_array_equal(got, bank._bed_over(hist, history, slots, first_frame, real_end, BED_LOOKBACK_FRAMES))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 40))
def test_what_is_still_undecided_by_frame_maxima_is_the_loudest_held_block(seed, calls):
    """The detector's `undecided` (session 9: whole frames by their BLOCK_MAX column, the frame the
    held part starts in block by block) is what gathering all the LOOKAHEAD_BLOCKS gave: held from
    anywhere (before the window, in a frame, on a frame's edge, after the window: -inf), young calls
    (origin inside the window), a stream that ended inside it (a flush), ties and digital silence."""
    rng = np.random.default_rng(seed)
    history, capacity = 400, calls + 3
    hist = random_history(rng, history, capacity)
    hist[:, :, BLOCK_MAX] = hist[:, :, BLOCKS : BLOCKS + BLOCKS_PER_FRAME].max(axis=2)  # as features.py writes it
    bank = TapBank(capacity)
    slots = rng.permutation(capacity)[:calls]
    decided_until = rng.integers(20, 3000, calls) * BLOCKS_PER_FRAME
    bank.origin[slots] = np.maximum(decided_until // BLOCKS_PER_FRAME - rng.integers(-20, 40, calls), 0)
    held_from = decided_until + rng.integers(-60, LOOKAHEAD_BLOCKS + 20, calls)
    real_end = decided_until + LOOKAHEAD_BLOCKS - np.where(rng.random(calls) < 0.2, rng.integers(0, 17, calls) * BLOCKS_PER_FRAME, 0)
    tail = bank._gather_blocks(hist, history, slots, decided_until // BLOCKS_PER_FRAME, LOOKAHEAD_BLOCKS // BLOCKS_PER_FRAME, real_end)
    held = decided_until[:, None] + np.arange(LOOKAHEAD_BLOCKS) >= held_from[:, None]
    want = np.where(held, tail, -np.inf).max(axis=1)  # the code it replaces
    np.testing.assert_array_equal(bank._undecided(hist, history, slots, decided_until, held_from, real_end), want)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 30), n=st.integers(1, 60))
def test_ring_windows_are_the_rows_a_fancy_index_gathered(seed, calls, n):
    """callflow/audio/ring.py (session 9) reads the mirrored rings by blocks: the same values as
    the fancy indexes it replaced, for the feature ring (last n rows, any window) and the small
    ring of the last second; and the frames reader the tap detector uses (ring.frames), also for a span longer than the
    ring allows (a very late burst: read row by row, as before)."""
    rng = np.random.default_rng(seed)
    history, capacity = 64, calls + 2
    hist = rng.standard_normal((capacity, 2 * history, N_COLUMNS)).astype(np.float32)
    hist[:, history:] = hist[:, :history]
    slots = rng.permutation(capacity)[:calls]
    counts = rng.integers(0, 10_000, calls)
    rows = counts[:, None] % history + history - n + np.arange(n)
    np.testing.assert_array_equal(ring.last(hist, history, slots, counts, n), hist[slots[:, None], rows])
    small = rng.standard_normal((capacity, 2, 2 * RECENT)).astype(np.float32)
    small[:, :, RECENT:] = small[:, :, :RECENT]
    cols = counts[:, None] % RECENT + np.arange(RECENT)
    got = ring.recent(small, slots, counts)
    np.testing.assert_array_equal(got[:, 0], small[slots[:, None], 0, cols])
    np.testing.assert_array_equal(got[:, 1], small[slots[:, None], 1, cols])
    for frames in (n, 2 * history + 1):  # within the ring; longer than it allows
        first = counts - rng.integers(0, 3 * history, calls)
        want = hist[slots[:, None], (first[:, None] + np.arange(frames)) % history]
        np.testing.assert_array_equal(ring.frames(hist, history, slots, first, frames), want)


def test_first_second_speech_scores_and_tone_check_batched_are_those_of_each_call():
    """Calls 10-49 frames old (their first second) and older ones: the batched speech score is
    `speech_score()` of each call alone, and the batched tone check is `_is_tone` of each window."""
    clock = ManualClock()
    rng = np.random.default_rng(5)
    t = np.arange(8000 * 3) / 8000
    tone = synth.to_pcm(0.1 * np.sin(2 * np.pi * 425 * t))
    sources = [synth.to_pcm(synth.talk(41, 3.0, -20.0)), synth.to_pcm(synth.noise(42, 3.0, "pink", -35.0)), tone,
               synth.to_pcm(synth.talk(43, 3.0, -28.0) + synth.hiss(43, 3.0))]
    calls, lengths = [], [3, 10, 17, 25, 33, 49, 50, 80]
    for k, frames in enumerate(lengths):
        for source in sources:
            call = CallAudio(clock=clock, answered_at=0.0, queue_size=0)
            start = 160 * k
            call.push_pcm(source[start : start + 160 * frames])
            calls.append(call)
    clock.now = 2.0
    analyse_calls(calls)
    pool = calls[0]._pool
    slots = np.array([c._slot for c in calls], dtype=np.intp)
    speech, _breathing, tone = _batched_scores(pool, calls, slots, np.arange(len(calls)), np.full(len(calls), 2.0))
    for i, call in enumerate(calls):
        filled = call._filled
        assert speech.get(i, 0.0) == call.speech_score(), (i, filled)
        if filled >= 10:
            assert i in speech
        assert tone[i] == _is_tone(call._window(50)), (i, filled)
    assert any(tone.values()) and not all(tone.values())
    assert any(score >= 0.5 for score in speech.values())


def test_fast_path_counts_every_packet_when_read():
    """The fast path counts in plain ints; `counters` (and `stats`) fold them in whenever read."""
    now = [0.0]
    receiver = RtpReceiver(clock=lambda: now[0])
    receiver.register("a", source=("127.0.0.1", 4000), clock=lambda: now[0], answered_at=0.0, queue_size=0)
    payload = bytes(range(160))
    for seq in range(10):
        receiver.datagram_received(build_rtp(payload, sequence=seq, timestamp=seq * 160, ssrc=7), ("127.0.0.1", 4000))
        assert receiver.counters["packets"] == seq + 1
        assert receiver.counters["accepted"] == seq + 1
    receiver.datagram_received(build_rtp(payload, sequence=3, timestamp=480, ssrc=7), ("127.0.0.1", 4000))  # a late one
    receiver.datagram_received(build_rtp(payload, sequence=11, timestamp=1760, ssrc=7), ("127.0.0.1", 4001))  # unknown
    stats = receiver.stats()
    assert stats["rtp_packets_total"] == 12 and stats["rtp_accepted_total"] == 10
    assert stats["rtp_late_total"] == 1 and stats["rtp_unknown_source_total"] == 1
    assert receiver.streams["a"].accepted == 10


def test_breathing_after_a_veto_is_each_calls_own_breathing_score():
    """A clear voice vetoed by the second opinion had no breathing score taken; the batch taken after
    the veto is `breathing_score()` of each call (fresh: the reuse cache untouched)."""
    clock = ManualClock()
    sources = [synth.to_pcm(synth.breathing(51, 9.0) + synth.hiss(51, 9.0)), synth.to_pcm(synth.noise(52, 9.0, "pink", -35.0)),
               synth.to_pcm(synth.talk(53, 9.0, -20.0)), synth.to_pcm(synth.breathing(54, 9.0))]
    calls = []
    for seconds in (5.0, 8.0, 9.0):
        for source in sources:
            call = CallAudio(clock=clock, answered_at=0.0, queue_size=0)
            call.push_pcm(source[: int(seconds * 8000)])
            calls.append(call)
    clock.now = 9.0
    analyse_calls(calls)
    pool = calls[0]._pool
    slots = np.array([c._slot for c in calls], dtype=np.intp)
    caches = [c._breath_cache for c in calls]
    speech = {i: 0.45 for i in range(len(calls))}  # every one vetoed
    breathing: dict[int, float] = {}
    _breathing_after_veto(pool, calls, slots, speech, breathing, np.full(len(calls), 9.0))
    assert sorted(breathing) == list(range(len(calls)))
    assert [breathing[i] for i in range(len(calls))] == [c.breathing_score() for c in calls]
    assert any(score >= 0.5 for score in breathing.values())
    assert [c._breath_cache for c in calls] == caches


def test_the_columns_left_to_voicing_frames_are_read_by_voicing_alone():
    """compute_features leaves ZCR, CENTROID, LOW_RATIO, FLATNESS and HARMONICITY at 0 on frames that
    cannot be voiced (under their call's voicing floor; HARMONICITY also over its flatness limit).
    That is exact only while nothing else reads them: the voicing test (_mark_voiced) and the
    pitch movement of voiced frames (speech_scores). A module that starts reading them elsewhere
    (the tap detector, say) must first compute them for its frames: this test says where."""
    import re

    audio = Path(__file__).resolve().parents[2] / "callflow" / "audio"
    gated = re.compile(r"\b(ZCR|CENTROID|LOW_RATIO|FLATNESS|HARMONICITY)\b")
    for module in sorted(audio.glob("*.py")):
        if module.name in ("features.py", "classifier.py"):
            continue
        assert not gated.search(module.read_text()), f"{module.name} reads a column features.py gates (spectral_floor)"
    uses = [line.strip() for line in (audio / "classifier.py").read_text().splitlines() if gated.search(line)]
    assert all("F.HARMONICITY" in u or "F.CENTROID" in u for u in uses), uses
    assert len(uses) == 3, uses  # _mark_voiced's test, the speech columns, the voiced frames' movement
