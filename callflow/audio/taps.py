"""Taps on the handset: onset detection on 2.5 ms block energies, then grouping.

A tap is a short broadband impulse with a fast attack, as real ones are recorded
(sticks, rims, woodblocks, claves, key and mouse clicks: tests/audio/real):

- a sharp rise: ≥ TAP_MARGIN_DB over the local background (the median of the 40 ms
  before it), with the 10 ms before still near that background or TAP_MARGIN_DB under
  the attack; and ≥ BED_MARGIN_DB over the bed's loud moments (the 80th percentile of
  the last 2 s), so a fire's crackle or a crowd's claps, no louder than their own bed,
  do not count (a stall's filler, a snoop's digital silence, is no part of that bed: see
  TapBank._bed). How loud the attack is, is judged on its first 7.5 ms (a knock builds up
  over a few blocks); the sharp rise on its first block;
- that decays: its mean power 40–80 ms after the attack is EARLY_DROP_DB under the
  attack and LATE_DROP_DB under it 80–160 ms after, or back near the background. Real
  taps ring for 50–200 ms (the detector of issue 3 wanted them down within 45 ms and
  refused most real ones); a syllable's vowel, a swell or an engine stays up;
- or that rings long and stops: gavels and rim shots ring 160–280 ms near their attack's
  level; such a ring counts when it is seen to end within RING_MAX_BLOCKS, never grows
  louder than its attack and is neither voiced nor tonal (a syllable, a beep);
- with a body: at least 2 blocks, unless a single block stands well clear of the bed
  and is not peaky; a line click is one sample, one or two very peaky blocks (CREST);
- not a steady tone switching on or off (busy, ringback, a beep: TONAL frames around it
  that hold their level; claves and woodblocks are tonal too but die away).

Onsets closer than REFRACTORY are one tap (a thump and its ring); any candidate within
ONSET_SPREAD_BLOCKS (20 ms) of an onset may prove it (a real knock builds up over several
ms: its first preselected block may hold only its first samples). The 40 ms after
listening (re)starts hold no candidate: the line's own sound starting is not a tap.

How a group closes (`TapBank.due`), and why those gaps:

- on the caller's own audio, not the loop's clock: after GROUP_GAP (1.3 s) of the
  call's sounding frames consumed since the last tap's frame. Callers tap 250–800 ms
  apart (the issue's range; a deliberate « non » is two taps well under a second
  apart), so the gap must exceed 0.8 s with margin for a hesitant second tap, while the
  answer must still reach the flow promptly (~1.3 s after the last tap) and a caller who
  taps « oui » and again a few seconds later for the next question must not be merged
  into « non ». Counting frames, not seconds of the clock, makes a stall harmless: when
  the loop, Asterisk or the caller's sender is starved for a second, the second tap's
  packets wait (in the kernel, or in a late burst) and a clock-timed group would close
  before they are read (a « non » heard as two « oui »: seen under load). Digital
  silence does not count as the caller's time: it is what a snoop inserts when the
  caller's RTP stalls (res_stasis_snoop.c), so the second tap may still come after it;
- on the clock only once nothing but digital silence (or nothing at all: a phone with
  silence suppression sends no packet after a tap) has come for QUIET_CLOSE (2.0 s).
  That is 0.7 s more than GROUP_GAP: such an answer reaches the flow ~2 s after the
  caller's last sound instead of 1.3 s, and a stall of up to ~2 s (1–1.5 s were seen on
  the loaded 2-core test machine) still cannot split a group.

A group of more than MAX_GROUP_TAPS is impulsive noise (rails, hammering), not an answer:
dropped; so is a group heard among MAX_IMPULSES sharp onsets that were not taps (a decayed
count), counting only the onsets within IMPULSE_LEVEL_DB of the group's taps (voiced ones,
syllables, within VOICED_RIVAL_DB more): a fire's crackles are as loud as the "taps" among
them, a room's far chirps and clicks are not. A "tap" more than TAP_SPREAD_DB under the
group's loudest (frame levels) is the room, not one of the caller's taps.

The detector's state lives in arrays, one row per call (`TapBank`), and it
reads the block energies from the calls' pooled feature history: a tick costs
a few numpy operations for all calls, and per-call Python only where a block
rose PRESELECT_DB over the 40 ms before it (a candidate attack to check).
Positions are absolute block numbers since the call's history (re)started;
blocks before `origin` (start, `reset`, end of media) read as silence (-99 dB); the bed's
before `bed_from` (the same, but a late burst after the end of media: see `push`).
"""

from __future__ import annotations

import math

import numpy as np

from callflow.audio import ring
from callflow.audio.features import BLOCK_MAX, BLOCK_SAMPLES, BLOCKS, BLOCKS_PER_FRAME, CREST, DIGITAL_SILENCE, FRAME_SECONDS, LEVEL, SAMPLE_RATE, TONAL, VOICED

BLOCK_SECONDS = BLOCK_SAMPLES / SAMPLE_RATE

PRESELECT_DB = 10.0  # attack candidates: above the mean of the 40 ms before
TAP_MARGIN_DB = 12.0  # attack: above the local background
TAP_MIN_DBFS = -50.0  # quieter events are not a tap on the handset
SUSTAIN_DB = 6.0  # "still loud": this far above the local background
BACKGROUND_BLOCKS = 16  # 40 ms before the attack give the local background
MIN_BODY_BLOCKS = 2  # 5 ms
CLICK_CREST_DB = 10.5  # a 2-block event this peaky is one sample: a line click, not a tap
SHORT_TAP_CREST_DB = 8.0  # a 1-block event must be less peaky than this to be a (short) tap
LOOKAHEAD_BLOCKS = 128  # 320 ms after the attack are needed to decide (a long ring must be seen to end)
RING_MIN_BLOCKS = 64  # a ring that outlasts the decay windows (160 ms)...
RING_MAX_BLOCKS = 112  # ...and stops within 280 ms (before a next tap 250 ms later has rung long)
RING_RISE_DB = 3.0  # never louder than its attack by more than this (a vowel, a swell grows)
RING_FADE_BLOCKS, RING_CUT_DB = 4, 6.0  # a ring fades out over its last 10 ms by this much before digital silence, or it was cut
RING_VOICED_MAX = 0.1  # share of its blocks in voiced or tonal frames: a syllable, a beep
RESUMED_RING_DB = 6.0  # a ring cut by a stall resumes within this of its last level (see _resumed_ring)
TONAL_FLAG, VOICED_FLAG = 1, 2  # per-block flags of the frame (see TapBank._gather)
BED_FRAMES = 100  # 2 s of bed before a candidate
BED_QUANTILE = 0.8  # taps of a 3-tap group fill < 10 % of 2 s: the 80th percentile is the bed's
BED_MIN_BLOCKS = 40  # 100 ms of sound make a bed
BED_LOOKBACK_FRAMES = 300  # 6 s: how far back the bed looks for the caller's audio past a stall's filler
FILLER_CUT_DB = 10.0  # a sound cut by a stall's filler ends within this of its frame's median block (see _stall_filler)
BED_MARGIN_DB = 10.0  # a tap's attack stands this far over the bed's loud moments (see docs/audio-eval.md for 16-18)
TONAL_GAIN_DB = 25.0  # a frame this predictable is a steady tone (see features.tonality)
TONAL_BLOCKS = 32  # the 80 ms after the attack
TONE_HOLD = slice(2, 16)  # 5-40 ms after the attack: a tone is as loud 40-80 ms after it...
TONE_HOLD_DB = 4.0  # ...within this (a pitched hit keeps falling: claves lose ~8 dB between the two)
DECAY_EARLY = slice(16, 32)  # 40-80 ms after the attack
DECAY_LATE = slice(32, 64)  # 80-160 ms after the attack
EARLY_DROP_DB = 5.0  # a tap's mean power 40-80 ms after its attack is this far under the attack
LATE_DROP_DB = 10.0  # and this far 80-160 ms after
REFRACTORY_BLOCKS = 40  # 100 ms
LATE_BURST_FRAMES = 5  # more frames of a call at once are a late burst (a tick carries 1-2; classifier.WHITEN_BURST_FRAMES)
BUILD_UP_DB = 3.0  # an attack's first block may be this far short of its next two (see _check)
ONSET_SPREAD_BLOCKS = 8  # 20 ms: the blocks of one attack (a knock or a rim shot builds up over several ms)
GROUP_GAP = 1.3  # seconds of the caller's audio without a tap that close a group
QUIET_CLOSE = 2.0  # seconds of the clock without the caller's sound that close it too (see above)
MAX_GROUP_TAPS = 5  # more in one group is impulsive noise, not a caller's answer
IMPULSE_SECONDS = 2.0  # time constant of the count of sharp onsets that were not taps
MAX_IMPULSES = 2.5  # a group heard among this many of them (decayed count) is impulsive noise
# Only onsets near the group's taps' level are its rivals: a fire's crackles or a train's clacks are
# as loud as the "taps" found among them, while a room's chirps and clicks far from the phone sit
# 20-35 dB under a tap on the handset (real rooms of tests/audio/real: they dropped 10 true groups; 15 dB let a
# crowd's and a voice's quieter onsets through as well).
IMPULSE_LEVEL_DB = 18.0
VOICED_RIVAL_DB = 10.0  # a syllable's onset rivals taps 10 dB further down (speech: a "tap" is a plosive)
TAP_SPREAD_DB = 15.0  # a caller's taps of one answer: the generator's ±3 dB, real callers more; a chirp 15-20 dB under
IMPULSE_RING = 32  # the non-tap onsets kept per call (at ≤ 10 a second, older ones weigh < e^-1.6)
_CONTEXT = BACKGROUND_BLOCKS + 1
_MEDIAN = BACKGROUND_BLOCKS // 2
BODY_DROP_DB = 30.0  # a tap's body ends this far under its peak (or near the background)
_windows = np.lib.stride_tricks.sliding_window_view


NO_TAP = -(1 << 40)  # an empty place in TapBank.group_taps
PAD_DB = -99.0  # what blocks before a call's origin (or after the end of its media) read as


def _check(blocks, tonal_flags, crest, rows, cols, bed=None, known=None, context=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check candidate attacks at blocks[rows, cols] (padded per-call rows), all calls at once.

    Each candidate needs BACKGROUND_BLOCKS before it and LOOKAHEAD_BLOCKS from it within
    its row (`context`: those before it, when given). Returns the qualified candidates
    (rows, cols) and whether each is a tap; the refractory period is applied by the caller, in order.
    """
    if context is None:
        context = blocks[rows[:, None], cols[:, None] + _BEFORE]
    background = np.partition(context, _MEDIAN, axis=1)[:, _MEDIAN]
    attack = blocks[rows, cols]
    before = context[:, -4:-1].max(axis=1)
    # Loud enough over the local background, and a sharp rise: the blocks just before are
    # near the background or far below the attack (not inside a louder event). Band-limited
    # beds (breathing) make single blocks jump ±6 dB around their median.
    # How loud it is, judged on the attack's first 7.5 ms: a knock builds up over a few blocks,
    # and its first one (the sharp rise) may be a dB or two short of what the next two reach
    # (credited up to BUILD_UP_DB: more is a slow swell, an engine's or a crowd's).
    built = np.minimum(np.maximum(np.maximum(attack, blocks[rows, cols + 1]), blocks[rows, cols + 2]), attack + BUILD_UP_DB)
    qualified = (built >= background + TAP_MARGIN_DB) & (
        before <= np.maximum(background + SUSTAIN_DB, attack - TAP_MARGIN_DB)
    )
    if bed is not None:
        # Over the loud moments of the last seconds too, not only the 40 ms before: the
        # crackles of a fire, the clacks of a train or a crowd's claps are sharp onsets as
        # well, but no louder than the bed's own peaks; a tap on the handset is.
        qualified &= built >= bed[rows] + BED_MARGIN_DB
    if not qualified.all():
        rows, cols, background, attack = rows[qualified], cols[qualified], background[qualified], attack[qualified]
        if known is not None:
            known = known[qualified]
    if not rows.size:
        return rows, cols, np.zeros(0, dtype=bool)
    span = cols[:, None] + _AHEAD
    ahead = blocks[rows[:, None], span]
    flags = tonal_flags[rows[:, None], span]
    onset_peak = ahead[:, :3].max(axis=1)  # the attack block may hold only the tap's first samples
    # The body lasts while the event stays near the background's top, or (a loud tap over a
    # quiet line rings long) within BODY_DROP_DB of its peak. Only its start matters now:
    # one or two blocks is a line click or a very short tap (see below).
    loud = ahead > np.maximum(background + SUSTAIN_DB, onset_peak - BODY_DROP_DB)[:, None]
    body = np.where(loud.all(axis=1), LOOKAHEAD_BLOCKS, np.argmin(loud, axis=1))
    crests = crest[rows, cols]
    click = (body == MIN_BODY_BLOCKS) & (crests >= CLICK_CREST_DB)
    # A short tap over a loud bed may fall under background + SUSTAIN_DB within one block;
    # a one-sample line click does too, but its block is much peakier. One block is thin
    # evidence: it must stand well clear of the bed.
    short = (body == 1) & (crests < SHORT_TAP_CREST_DB) & (attack >= background + TAP_MARGIN_DB + SUSTAIN_DB)
    # A tap decays from its attack: real sticks, rims, woodblocks and knuckles ring for
    # 50-200 ms (the old "back down within 45 ms" refused most real taps), but their energy
    # 40-80 ms after the attack is well under the attack's and lower still 80-160 ms after.
    # A syllable's vowel, a swell or an engine stays near its onset level: not a tap. Judged
    # on mean power (a noisy bed makes single blocks jump), or back near the background.
    power = 10.0 ** (ahead / 10.0)
    early = 10.0 * np.log10(power[:, DECAY_EARLY].mean(axis=1))
    late = 10.0 * np.log10(power[:, DECAY_LATE].mean(axis=1))
    floor = background + SUSTAIN_DB
    decays = (early <= np.maximum(onset_peak - EARLY_DROP_DB, floor)) & (late <= np.maximum(onset_peak - LATE_DROP_DB, floor))
    # Or it rings long and stops (gavels, rim shots, some woodblocks ring 160-280 ms at
    # nearly their attack's level, and the old rule, fitted to the studio hits of dev,
    # refused them all: holdout3): its body ends within RING_MAX_BLOCKS, seen in the audio
    # (not cut by the end of the media), never grows louder than its attack, and its frames
    # are neither voiced nor tonal (a syllable is voiced; a beep or a tone burst is tonal).
    within = _AHEAD[None, :] < body[:, None]
    n = np.maximum(body, 1)
    pitched = (((flags & (VOICED_FLAG | TONAL_FLAG)) > 0) & within).sum(axis=1) / n
    rings = ((body >= RING_MIN_BLOCKS) & (body <= RING_MAX_BLOCKS)
             & (np.where(within, ahead, -np.inf).max(axis=1) <= onset_peak + RING_RISE_DB)
             & (pitched <= RING_VOICED_MAX))
    # Seen to stop, not cut: a snoop fills a stalled caller with digital silence, in pieces under
    # load, and a piece of steady breathing cut by it "stops" at its full level. A ring dies away
    # out first (its last block well under the block RING_FADE_BLOCKS before), even over a
    # digitally silent line; a cut piece stops at the level it held, at a frame's end.
    i = np.arange(len(body))
    last = ahead[i, np.clip(body - 2, 0, LOOKAHEAD_BLOCKS - 1)]  # (the body's last block may be cut mid-block)
    after = ahead[i, np.clip(body + 1, 0, LOOKAHEAD_BLOCKS - 1)]  # (the first block after holds the filter's spill)
    earlier = ahead[i, np.clip(body - 2 - RING_FADE_BLOCKS, 0, LOOKAHEAD_BLOCKS - 1)]
    # Rows start at a frame, a snoop inserts whole frames (the first block of zeros may hold the
    # whitening filter's spill, and count in the body).
    at_frame = ((cols + body) % BLOCKS_PER_FRAME == 0) | ((cols + body - 1) % BLOCKS_PER_FRAME == 0)
    rings &= ~((after <= PAD_DB + 0.5) & at_frame & (last > earlier - RING_CUT_DB))
    if known is not None:
        rings &= body < known
    # A line tone switching on or off (busy, ringback) is a sharp edge in the whitened
    # blocks too, but a steady tone follows or precedes it.
    # A pitched hit (claves, a woodblock, a glass) is tonal too, but it dies away from its attack,
    # while a tone, a beep or an in-band key holds its level: tonal after the attack counts only
    # for a sound as loud 40-80 ms after its attack as 5-40 ms after, within TONE_HOLD_DB (both
    # windows span a 25 Hz beat: two-tone ringbacks).
    holds = early >= 10.0 * np.log10(power[:, TONE_HOLD].mean(axis=1)) - TONE_HOLD_DB
    tonal = (((flags[:, :TONAL_BLOCKS] & TONAL_FLAG).mean(axis=1) > 0.5) & holds) | (
        (tonal_flags[rows[:, None], cols[:, None] + _BEFORE] & TONAL_FLAG).mean(axis=1) > 0.5
    )
    is_tap = (((body >= MIN_BODY_BLOCKS) & ~click) | short) & (decays | rings) & ~tonal
    return rows, cols, is_tap


_BEFORE = np.arange(-BACKGROUND_BLOCKS, 0)
_AHEAD = np.arange(LOOKAHEAD_BLOCKS)


class TapBank:
    """Tap detectors of many calls, one row each; blocks come from the calls' feature history.

    `hist` is the pool's history, shape (calls, 2 × history, feature columns): frame f
    of a call is at row f % history (and again at f % history + history). A call's
    state: `scan`, the next block to examine (earlier ones are decided or within the
    refractory period); `origin`, its first frame that counts; `undecided`, the
    loudest block still waiting for its lookahead (for the fast path); `ctx_start`,
    the oldest block a candidate may still look back to; the open group.
    """

    FIELDS = (
        ("scan", np.int64, 0),
        ("origin", np.int64, 0),
        # First frame the bed may read: where listening (re)started, or where the packets came back
        # after a stop (`flush`, `stopped_at`: the frame count then, -1: none), unless in a late burst.
        ("bed_from", np.int64, 0),
        ("stopped_at", np.int64, -1),
        # First block a tap may start at: the 40 ms after listening (re)started have no context
        # before them, and the line's own sound starting there is not a tap (a rise from nothing).
        ("listen_from", np.int64, BACKGROUND_BLOCKS),
        ("ctx_start", np.int64, -_CONTEXT),
        ("undecided", np.float64, PAD_DB),
        ("group", np.int64, 0),
        ("last_tap", np.float64, np.nan),  # clock (call-relative) of the last tap, back-dated from its frame
        # The last tap's frame (absolute, like `scan`), and the clock when a sounding (not
        # digitally silent) frame of the caller last came: see `due`.
        ("tap_frame", np.int64, 0),
        ("tap_block", np.int64, NO_TAP),
        ("sound_at", np.float64, np.nan),
        # Sharp onsets that were not taps (crackles, clacks, claps): a decaying count, when it was
        # last updated, and the most of it seen while the open group's taps were heard.
        ("impulse_next", np.int64, 0),
        # The quietest onset level of the open (or last) group's taps: rivals are onsets near it.
        ("tap_level", np.float64, np.nan),
    )

    def __init__(self, capacity: int = 0) -> None:
        for name, dtype, fill in self.FIELDS:
            setattr(self, name, np.full(capacity, fill, dtype=dtype))
        # The attack blocks of the open group's taps (NO_TAP: none): their rings are not the bed.
        self.group_taps = np.full((capacity, MAX_GROUP_TAPS + 1), NO_TAP, dtype=np.int64)
        self.group_times = np.full((capacity, MAX_GROUP_TAPS + 1), np.nan)  # the clock of each of its taps
        self.group_levels = np.full((capacity, MAX_GROUP_TAPS + 1), PAD_DB)  # its level (dBFS, _onset_level)
        self.group_rival_levels = np.full((capacity, MAX_GROUP_TAPS + 1), PAD_DB)  # its whitened peak (dB)
        # Recent onsets that were not taps: when (clock) and how loud (dB, the onset's peak block).
        self.impulse_at = np.full((capacity, IMPULSE_RING), np.nan)
        self.impulse_level = np.full((capacity, IMPULSE_RING), PAD_DB)

    def grow(self, capacity: int) -> None:
        for name, dtype, fill in self.FIELDS:
            old = getattr(self, name)
            new = np.full(capacity, fill, dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        taps = np.full((capacity, MAX_GROUP_TAPS + 1), NO_TAP, dtype=np.int64)
        taps[: len(self.group_taps)] = self.group_taps
        self.group_taps = taps
        for name, fill in (("group_times", np.nan), ("group_levels", PAD_DB), ("group_rival_levels", PAD_DB), ("impulse_at", np.nan), ("impulse_level", PAD_DB)):
            old = getattr(self, name)
            new = np.full((capacity, old.shape[1]), fill)
            new[: len(old)] = old
            setattr(self, name, new)

    def reset(self, slot: int, frames: int) -> None:
        """Forget taps and context: audio before frame `frames` reads as silence."""
        self.origin[slot] = self.bed_from[slot] = frames
        self.stopped_at[slot] = -1
        self.listen_from[slot] = frames * BLOCKS_PER_FRAME + BACKGROUND_BLOCKS
        self.scan[slot] = frames * BLOCKS_PER_FRAME
        self.ctx_start[slot] = frames * BLOCKS_PER_FRAME - _CONTEXT
        self.undecided[slot] = PAD_DB
        self.group[slot] = 0
        self.group_taps[slot] = NO_TAP
        self.tap_block[slot] = NO_TAP
        self.last_tap[slot] = self.sound_at[slot] = np.nan
        self.tap_level[slot] = np.nan
        self.group_times[slot] = np.nan
        self.group_levels[slot] = self.group_rival_levels[slot] = PAD_DB
        self.impulse_at[slot] = np.nan
        self.impulse_level[slot] = PAD_DB

    @staticmethod
    def _onset_level(hist, history: int, slot: int, at: int, end: int) -> float:
        """How loud the onset at block `at` is, to compare onsets of a call: the level (dBFS) of its
        frame and the next. Not the whitened blocks: the whitening filter follows the line, so the
        same tap reads 15 dB apart after digital silence (no filter yet) and after a ring."""
        frame = at // BLOCKS_PER_FRAME
        frames = [frame, frame + 1] if frame + 1 < end else [frame]  # the next one if heard yet
        return float(hist[slot, np.array(frames) % history, LEVEL].max())

    def _add_impulse(self, slot: int, at: float, level: float) -> None:
        """A sharp onset that was not a tap, at `at` (clock), its peak block `level` dB."""
        i = int(self.impulse_next[slot])
        self.impulse_at[slot, i % IMPULSE_RING] = at
        self.impulse_level[slot, i % IMPULSE_RING] = level
        self.impulse_next[slot] = i + 1

    def _impulses(self, slot: int, at: float, level: float) -> float:
        """The count of non-tap onsets heard by `at` at least `level` dB loud, each decayed over
        IMPULSE_SECONDS from its own time."""
        times = self.impulse_at[slot]
        mine = (times <= at) & (self.impulse_level[slot] >= level)  # NaN (empty): False
        return float(np.exp(-(at - times[mine]) / IMPULSE_SECONDS).sum())

    def _noisy(self, slot: int, now: float) -> float:
        """The most rivals the open group's taps had around them: the count at each tap and at `now`."""
        level = float(self.tap_level[slot]) - IMPULSE_LEVEL_DB
        times = self.group_times[slot]
        return max([self._impulses(slot, now, level)] + [self._impulses(slot, t, level) for t in times[~np.isnan(times)].tolist()])

    def _gather(self, hist, history: int, slots, first_frame, frames: int, real_end):
        """Blocks, tonal flags and crests of `frames` whole frames from `first_frame` on, per call
        (m, frames × BLOCKS_PER_FRAME); frames before the origin or at/after `real_end` (blocks) are silence."""
        frame = first_frame[:, None] + np.arange(frames)
        pad = (frame < self.origin[slots][:, None]) | (frame * BLOCKS_PER_FRAME >= real_end[:, None])
        rows = ring.frames(hist, history, slots, first_frame, frames)  # (m, frames, columns)
        shape = (len(slots), frames * BLOCKS_PER_FRAME)
        blocks = np.where(pad[:, :, None], np.float32(PAD_DB), rows[:, :, BLOCKS : BLOCKS + BLOCKS_PER_FRAME]).reshape(shape)
        flags = ((rows[:, :, TONAL] >= TONAL_GAIN_DB) * TONAL_FLAG + (rows[:, :, VOICED] > 0) * VOICED_FLAG) * ~pad
        tonal_flags = np.repeat(flags.astype(np.uint8), BLOCKS_PER_FRAME, axis=1)
        crest = np.repeat(np.where(pad, np.float32(0.0), rows[:, :, CREST]), BLOCKS_PER_FRAME, axis=1)
        return blocks, tonal_flags, crest

    def _gather_blocks(self, hist, history: int, slots, first_frame, frames: int, real_end, origin=None) -> np.ndarray:
        """The blocks of `_gather` alone (the bed needs no flags nor crests): only the block
        columns are read from the history (before `origin`, by default the calls' origin: silence)."""
        frame = first_frame[:, None] + np.arange(frames)
        origin = self.origin[slots] if origin is None else origin
        pad = (frame < origin[:, None]) | (frame * BLOCKS_PER_FRAME >= real_end[:, None])
        blocks = ring.frames(hist, history, slots, first_frame, frames)[:, :, BLOCKS : BLOCKS + BLOCKS_PER_FRAME]
        return np.where(pad[:, :, None], np.float32(PAD_DB), blocks).reshape(len(slots), frames * BLOCKS_PER_FRAME)

    @staticmethod
    def _stall_filler(hist, history: int, slots, start, window: int, heard, blocks) -> np.ndarray:
        """Which of these frames (`window` from `start` on, per call, `heard` ones) are a stall's
        filler: digital silence in a run that cut the caller's sound. A snoop fills a stalled caller
        with whole frames of zeros (res_stasis_snoop.c): the frame before the run still sounds in its
        last block, at its level (within FILLER_CUT_DB of the frame's median block: breathing's
        blocks jump ±6 dB). The line's own digital silence (a gateway's, between taps) follows a
        sound that died away: its last block is silent or far under the rest of its frame."""
        frame = start[:, None] + np.arange(window)
        digital = heard & (hist[slots[:, None], frame % history, DIGITAL_SILENCE] > 0)
        per_frame = blocks.reshape(len(slots), window, BLOCKS_PER_FRAME)
        last = per_frame[:, :, -1]
        cut = heard & ~digital & (last > PAD_DB + 0.5) & (last >= np.median(per_frame, axis=2) - FILLER_CUT_DB)
        # The last sounding frame at or before each frame (-1: none in the window).
        sounding = np.where(heard & ~digital, np.arange(window), -1)
        before = np.maximum.accumulate(sounding, axis=1)
        return digital & (before >= 0) & np.take_along_axis(cut, np.maximum(before, 0), axis=1)

    def _bed(self, hist, history: int, slots, first_frame, real_end) -> np.ndarray:
        """The loud moments of each call's bed: BED_QUANTILE of the block energies over the
        BED_FRAMES before `first_frame`, of the audio the call has (a call younger than
        BED_MIN_BLOCKS of sound has no bed yet: PAD_DB).

        A stall's filler (`_stall_filler`) is not the caller's bed: the bed is then the caller's
        last BED_FRAMES of audio, up to BED_LOOKBACK_FRAMES back. Counted as the bed, a snoop's
        zeros of 1.5 s or more made it digital silence, and the caller's breathing resuming after
        them stood over it: a sharp onset (its refractory swallowed a tap 20-80 ms later: offline
        replays of the seed example, session 9) or, cut again or fading, a « tap »."""
        # Only a call with digital silence in its last BED_FRAMES may have a filler there: the others'
        # bed is the same over BED_FRAMES (their last BED_FRAMES of audio), at a third of the cost.
        if BED_LOOKBACK_FRAMES > BED_FRAMES:
            recent = ring.frames(hist, history, slots, first_frame - BED_FRAMES, BED_FRAMES)
            back = (recent[:, :, DIGITAL_SILENCE] > 0).any(axis=1)
            if back.all():
                return self._bed_over(hist, history, slots, first_frame, real_end, BED_LOOKBACK_FRAMES)
            if back.any():
                bed = self._bed_over(hist, history, slots, first_frame, real_end, BED_FRAMES)
                bed[back] = self._bed_over(hist, history, slots[back], first_frame[back], real_end[back], BED_LOOKBACK_FRAMES)
                return bed
        return self._bed_over(hist, history, slots, first_frame, real_end, BED_FRAMES)

    def _bed_over(self, hist, history: int, slots, first_frame, real_end, window: int) -> np.ndarray:
        """`_bed` over `window` frames before `first_frame`."""
        # Heard: frames since the call's origin (digital silence is heard, -99 dB, and counts),
        # except a stall's filler.
        start = first_frame - window
        bed_from = self.bed_from[slots]
        blocks = self._gather_blocks(hist, history, slots, start, window, real_end, bed_from)
        frame = start[:, None] + np.arange(window)
        heard_frames = (frame >= bed_from[:, None]) & (frame >= (real_end // BLOCKS_PER_FRAME)[:, None] - history)
        if window > BED_FRAMES:
            heard_frames &= ~self._stall_filler(hist, history, slots, start, window, heard_frames, blocks)
            # The caller's last BED_FRAMES of audio (with no filler in the window, the BED_FRAMES before).
            heard_frames &= np.cumsum(heard_frames[:, ::-1], axis=1)[:, ::-1] <= BED_FRAMES
        heard = np.repeat(heard_frames, BLOCKS_PER_FRAME, axis=1)
        # The open group's own taps are no bed: three rings of 250 ms fill 40 % of 2 s, and
        # their 80th percentile would refuse the third tap (over a quiet line above all).
        tapping = np.flatnonzero(self.group[slots] > 0)
        if tapping.size:
            at = start[tapping][:, None, None] * BLOCKS_PER_FRAME + np.arange(blocks.shape[1])[None, None, :]
            starts = self.group_taps[slots[tapping]][:, :, None]
            ringing = ((at >= starts) & (at < starts + RING_MAX_BLOCKS)).any(axis=1)
            heard[tapping] &= ~ringing
        n = heard.sum(axis=1)
        k = np.minimum(np.maximum(BED_QUANTILE * (n - 1), 0).astype(np.int64), blocks.shape[1] - 1)
        ranked = np.where(heard, blocks, np.inf)  # unheard blocks rank last
        # The k-th smallest: by partition where the whole bed is heard (most calls: one k), not a
        # full sort (4-5x cheaper); the young and the tapping calls (each its own k) by a sort.
        bed = np.empty(len(slots), dtype=blocks.dtype)
        whole = k == k.max()
        if whole.any():
            kth = int(k.max())
            bed[whole] = np.partition(ranked[whole], kth, axis=1)[:, kth]
        if not whole.all():
            rest = np.flatnonzero(~whole)
            bed[rest] = np.sort(ranked[rest], axis=1)[np.arange(rest.size), k[rest]]
        return np.where(n >= BED_MIN_BLOCKS, bed, PAD_DB)

    def push(self, hist, history: int, slots, count, peak, quiet, end_time) -> None:
        """New frames were appended to these calls' history (now `count` frames each).

        `peak`: loudest new block per call; `quiet`: a lower bound of the recent block
        energies (mean over 40 ms). Calls where nothing new rises PRESELECT_DB above it
        only move their scan position (the fast path, ~all calls ~all the time).
        """
        stopped = self.stopped_at[slots]
        if (stopped >= 0).any():
            # The first frames after the packets stopped (`flush`). Held by a stall, they come back late,
            # in one burst, and the caller's audio before the stop is still their bed; coming back at
            # their pace (silence suppression: a stop, not a stall), they are heard over nothing.
            back = np.flatnonzero(stopped >= 0)
            paced = slots[back[count[back] - stopped[back] <= LATE_BURST_FRAMES]]
            self.bed_from[paced] = self.origin[paced]
            self.stopped_at[slots[back]] = -1
        end = count * BLOCKS_PER_FRAME
        threshold = np.maximum(quiet + PRESELECT_DB, TAP_MIN_DBFS)
        fast = np.maximum(peak, self.undecided[slots]) < threshold
        if fast.any():
            self.scan[slots[fast]] = end[fast]
            self.ctx_start[slots[fast]] = end[fast] - _CONTEXT
        if not fast.all():
            slow = ~fast
            self._scan(hist, history, slots[slow], end[slow], end[slow], end_time[slow])

    def _scan(self, hist, history: int, slots, end, real_end, end_time) -> None:
        """Examine candidate attacks up to LOOKAHEAD_BLOCKS before `end` (blocks from `real_end` on read as silence)."""
        scan0 = self.scan[slots]
        ctx0 = self.ctx_start[slots]
        decided_until = end - LOOKAHEAD_BLOCKS
        start = scan0.copy()
        todo = np.flatnonzero(decided_until > scan0)
        if todo.size:
            # Rows start at a frame boundary at least BACKGROUND_BLOCKS before the scan position.
            first_frame = (scan0[todo] - BACKGROUND_BLOCKS) // BLOCKS_PER_FRAME
            base = first_frame * BLOCKS_PER_FRAME
            frames = int((end[todo] - base).max()) // BLOCKS_PER_FRAME
            # Candidates are looked for only before `decided_until` (each needs its lookahead after
            # it): that much is gathered for every call scanned; the whole width, lookahead and all,
            # only for the calls with a candidate (`_gather` below), about one in eight.
            seen = -(-int((decided_until[todo] - base).max()) // BLOCKS_PER_FRAME)
            blocks = self._gather_blocks(hist, history, slots[todo], first_frame, seen, real_end[todo])
            length = blocks.shape[1]
            # Preselect with a cheap running mean of the 40 ms before each block.
            cums = np.zeros((len(todo), length + 1), dtype=np.float64)
            np.cumsum(blocks, axis=1, dtype=np.float64, out=cums[:, 1:])
            rel = np.arange(BACKGROUND_BLOCKS, length)
            before = (cums[:, rel] - cums[:, rel - BACKGROUND_BLOCKS]) / BACKGROUND_BLOCKS
            attack = blocks[:, BACKGROUND_BLOCKS:]
            from_ = (np.maximum(scan0[todo], self.listen_from[slots[todo]]) - base)[:, None]
            limit = (decided_until[todo] - base)[:, None]
            candidate = (attack - before >= PRESELECT_DB) & (attack > TAP_MIN_DBFS) & (rel >= from_) & (rel < limit)
            new_start = np.maximum(scan0[todo], decided_until[todo])
            rows, cols = np.nonzero(candidate)
            if rows.size:
                # Right after a stall's filler a rise from nothing: a candidate only if it rises over the
                # caller's audio before the filler too (see _context).
                context, skipped = self._context(hist, history, slots[todo], base, real_end[todo] // BLOCKS_PER_FRAME, blocks, rows, cols + BACKGROUND_BLOCKS)
                if skipped.any():
                    rises = ~skipped | (blocks[rows, cols + BACKGROUND_BLOCKS] - context.mean(axis=1) >= PRESELECT_DB)
                    rows, cols, context = rows[rises], cols[rises], context[rises]
            if rows.size:
                # Every sharp onset (candidates closer than REFRACTORY are one), tap or not.
                onsets: dict[int, list[int]] = {}
                for r, c in zip(rows.tolist(), (cols + BACKGROUND_BLOCKS).tolist()):
                    mine = onsets.setdefault(r, [])
                    if not mine or c - mine[-1] >= REFRACTORY_BLOCKS:
                        mine.append(c)
                # The bed, flags and crests only of the calls with a candidate: about one in eight
                # of those scanned (_check sees those calls alone; `local` is a row among them).
                having = np.unique(rows)
                bed = self._bed(hist, history, slots[todo[having]], first_frame[having], real_end[todo[having]])
                wide, tonal_flags, crest = self._gather(hist, history, slots[todo[having]], first_frame[having], frames, real_end[todo[having]])
                known = (real_end[todo] - base)[rows] - (cols + BACKGROUND_BLOCKS)
                local, cols, is_tap = _check(wide, tonal_flags, crest, np.searchsorted(having, rows), cols + BACKGROUND_BLOCKS, bed, known, context)
                rows = having[local]
                # A row of `wide` per call of `todo` with a candidate (the others are never read).
                row_of = np.zeros(len(todo), dtype=np.intp)
                row_of[having] = np.arange(having.size)
                # In order, per call: onsets closer than REFRACTORY are one tap (a thump and its ring).
                # A real hit builds up over a few ms: its first block may hold only its first
                # samples, so any candidate within ONSET_SPREAD_BLOCKS of the onset may prove it.
                refractory: dict[int, int] = {}
                onset: dict[int, tuple[int, bool]] = {}
                taps_at: dict[int, list[int]] = {}
                for r, c, tap in zip(rows.tolist(), cols.tolist(), is_tap.tolist()):
                    if c < refractory.get(r, 0):
                        first, counted = onset[r]
                        if not tap or counted or c - first > ONSET_SPREAD_BLOCKS:
                            continue
                        onset[r] = (first, True)
                    else:
                        refractory[r] = c + REFRACTORY_BLOCKS
                        onset[r] = (c, tap)
                        if not tap:
                            continue
                    slot = slots[todo[r]]
                    if self._resumed_ring(hist, history, int(slot), int(base[r] + c), wide[row_of[r]], c):
                        taps_at.setdefault(r, []).append(c)  # the last tap's own ring: no tap, no impulse
                        continue
                    level = float(wide[row_of[r], c : c + 3].max())
                    self.tap_level[slot] = level if self.group[slot] == 0 else min(level, float(self.tap_level[slot]))
                    self.last_tap[slot] = end_time[todo[r]] - (end[todo[r]] - base[r] - c) * BLOCK_SECONDS
                    self.group_taps[slot, min(int(self.group[slot]), MAX_GROUP_TAPS)] = base[r] + c
                    self.group_times[slot, min(int(self.group[slot]), MAX_GROUP_TAPS)] = self.last_tap[slot]
                    self.group_rival_levels[slot, min(int(self.group[slot]), MAX_GROUP_TAPS)] = level
                    self.group_levels[slot, min(int(self.group[slot]), MAX_GROUP_TAPS)] = self._onset_level(hist, history, int(slot), int(base[r] + c), int(real_end[todo[r]]) // BLOCKS_PER_FRAME)
                    self.group[slot] += 1
                    self.tap_frame[slot] = (base[r] + c) // BLOCKS_PER_FRAME
                    self.tap_block[slot] = base[r] + c
                    taps_at.setdefault(r, []).append(c)
                # The onsets that were not taps are the call's impulses (with their level).
                for r, mine in onsets.items():
                    slot = int(slots[todo[r]])
                    tapped = taps_at.get(r, [])
                    h = int(np.searchsorted(having, r))  # its row in `bed` and `tonal_flags`
                    for c in mine:
                        # Not the caller's bed resuming after digital silence (a snoop fills a stalled
                        # caller with zeros, in bursts under load: each resumption is a sharp rise).
                        resumed = (float(wide[h, c - BACKGROUND_BLOCKS : c].min()) <= PAD_DB + 0.5
                                   and base[r] + c - BACKGROUND_BLOCKS >= self.origin[slot] * BLOCKS_PER_FRAME
                                   and float(wide[h, c : c + 3].max()) < bed[h] + BED_MARGIN_DB)
                        if not resumed and not any(abs(c - t) < REFRACTORY_BLOCKS for t in tapped):
                            at = float(end_time[todo[r]] - (end[todo[r]] - base[r] - c) * BLOCK_SECONDS)
                            # A syllable's onset rivals taps further down (VOICED_RIVAL_DB): speech, not a room's far clicks.
                            voiced = (tonal_flags[h, c : c + TONAL_BLOCKS] & VOICED_FLAG).mean() > 0.5
                            self._add_impulse(slot, at, float(wide[h, c : c + 3].max()) + (VOICED_RIVAL_DB if voiced else 0.0))
                for r, after in refractory.items():
                    new_start[r] = max(base[r] + after, decided_until[todo[r]])
            start[todo] = new_start
        self.undecided[slots] = self._undecided(hist, history, slots, decided_until, ctx0, real_end)
        self.scan[slots] = start
        self.ctx_start[slots] = np.maximum(np.minimum(start, decided_until) - _CONTEXT, ctx0)

    def _undecided(self, hist, history: int, slots, decided_until, held_from, real_end) -> np.ndarray:
        """The loudest block still waiting for its lookahead: of the LOOKAHEAD_BLOCKS from
        `decided_until` (a frame boundary), those from `held_from` on (blocks the fast path let
        through are not held); -inf when none. Whole frames by their BLOCK_MAX column (one value
        a frame, not eight: every scanned call, every tick); the frame `held_from` cuts, block by block."""
        frame = decided_until[:, None] // BLOCKS_PER_FRAME + np.arange(LOOKAHEAD_BLOCKS // BLOCKS_PER_FRAME)
        pad = (frame < self.origin[slots][:, None]) | (frame * BLOCKS_PER_FRAME >= real_end[:, None])
        loudest = np.where(pad, np.float32(PAD_DB), ring.frames(hist, history, slots, frame[:, 0], frame.shape[1])[:, :, BLOCK_MAX])
        whole = frame * BLOCKS_PER_FRAME >= held_from[:, None]
        out = np.where(whole, loudest, -np.inf).max(axis=1)
        cut = np.flatnonzero((held_from % BLOCKS_PER_FRAME != 0) & (held_from > frame[:, 0] * BLOCKS_PER_FRAME)
                             & (held_from < (frame[:, -1] + 1) * BLOCKS_PER_FRAME))
        if cut.size:
            first = held_from[cut] // BLOCKS_PER_FRAME
            blocks = self._gather_blocks(hist, history, slots[cut], first, 1, real_end[cut])
            held = np.arange(BLOCKS_PER_FRAME) >= (held_from[cut] % BLOCKS_PER_FRAME)[:, None]
            out[cut] = np.maximum(out[cut], np.where(held, blocks, -np.inf).max(axis=1))
        return out

    def _context(self, hist, history: int, slots, base, counts, blocks, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """The BACKGROUND_BLOCKS before each candidate (blocks[rows, cols], `base`: the rows' first
        block), of the caller's audio: a stall's filler (see _stall_filler) just before an attack is
        skipped. Over those zeros the caller's sound resuming is a sharp rise from nothing; over the
        caller's audio before them it rises only as much as it did (a breath resumed mid-breath, in
        pieces between a snoop's runs of zeros, is no attack; a tap after them is). Returns the
        contexts and which of them skipped a filler."""
        context = blocks[rows[:, None], cols[:, None] + _BEFORE]
        skipped = np.zeros(len(rows), dtype=bool)
        for i in np.flatnonzero((context <= PAD_DB + 0.5).any(axis=1)).tolist():
            slot, at = int(slots[rows[i]]), int(base[rows[i]] + cols[i])
            frame = at // BLOCKS_PER_FRAME  # the attack's frame; the zeros are whole frames before it
            oldest = max(int(self.origin[slot]), int(counts[rows[i]]) - history)  # (older frames are overwritten)
            end = frame  # the run's end: within the context, the attack's frame at the latest
            while end - 1 >= max(oldest, frame - BACKGROUND_BLOCKS // BLOCKS_PER_FRAME) and hist[slot, (end - 1) % history, DIGITAL_SILENCE] <= 0:
                end -= 1
            start = end
            while start - 1 >= oldest and hist[slot, (start - 1) % history, DIGITAL_SILENCE] > 0:
                start -= 1
            if start == end or start - 2 < oldest or at - end * BLOCKS_PER_FRAME >= BACKGROUND_BLOCKS:
                continue  # no run of zeros within the context, or no audio of the caller before it
            cut = hist[slot, (start - 1) % history, BLOCKS : BLOCKS + BLOCKS_PER_FRAME]
            if not (cut[-1] > PAD_DB + 0.5 and cut[-1] >= np.median(cut) - FILLER_CUT_DB):
                continue  # the line's own silence after a sound that died away
            earlier = hist[slot, np.arange(start - 2, start) % history, BLOCKS : BLOCKS + BLOCKS_PER_FRAME].reshape(-1)
            after = blocks[rows[i], cols[i] - (at - end * BLOCKS_PER_FRAME) : cols[i]]
            context[i] = np.concatenate([earlier, after])[-BACKGROUND_BLOCKS:]
            skipped[i] = True
        return context, skipped

    def _resumed_ring(self, hist, history: int, slot: int, at: int, row, c: int) -> bool:
        """Is the attack at block `at` (column `c` of `row`) the last tap's ring coming back after
        a run of digital silence that cut it? A snoop fills the caller's stalled RTP with exact
        zeros (res_stasis_snoop.c), then plays the held frames: the ring stops dead, and resumes
        at the level it had, a sharp rise over silence. A new tap after a ring that faded into
        silence stands well over the ring's last block."""
        last_tap = int(self.tap_block[slot])
        silent = np.flatnonzero(row[c - BACKGROUND_BLOCKS : c] <= PAD_DB + 0.5)
        if last_tap == NO_TAP or not silent.size:
            return False
        frame = (at - BACKGROUND_BLOCKS + int(silent[-1])) // BLOCKS_PER_FRAME  # in the run of silence
        first = max(frame - history + 1, int(self.origin[slot]), last_tap // BLOCKS_PER_FRAME)
        frames = np.arange(first, frame)
        if not frames.size:
            return False
        sounding = np.flatnonzero(hist[slot, frames % history, DIGITAL_SILENCE] <= 0)
        if not sounding.size:
            return False
        before = int(frames[sounding[-1]])
        levels = hist[slot, before % history, BLOCKS : BLOCKS + BLOCKS_PER_FRAME]
        heard = np.flatnonzero(levels > PAD_DB + 0.5)
        if not heard.size:
            return False
        cut_at = before * BLOCKS_PER_FRAME + int(heard[-1])
        return (0 <= cut_at - last_tap <= RING_MAX_BLOCKS
                and float(row[c : c + 3].max()) <= float(levels[heard[-1]]) + RESUMED_RING_DB)

    def heard(self, slots, sounding, now) -> None:
        """These calls' new frames were consumed at `now`; `sounding` of them not digitally silent."""
        some = sounding > 0
        self.sound_at[slots[some]] = now[some]

    def due(self, hist, history: int, slots, counts, now) -> np.ndarray:
        """Which of these calls' open groups are finished by `now` (see the module's doc):
        GROUP_GAP of the caller's sounding audio after the last tap's frame, all of it decided
        by the detector (its lookahead: a tap within the gap may still be pending), or
        QUIET_CLOSE of the clock without any of the caller's sound."""
        open_ = self.group[slots] > 0
        quiet = now - self.sound_at[slots] >= QUIET_CLOSE  # NaN (never heard): False
        due = open_ & quiet
        for i in np.flatnonzero(open_ & ~quiet).tolist():  # the few calls tapping now
            slot = slots[i]
            first, decided = int(self.tap_frame[slot]), min(int(self.scan[slot]) // BLOCKS_PER_FRAME, int(counts[i]))
            n = min(decided - first, history)
            if n * FRAME_SECONDS < GROUP_GAP - 1e-9:
                continue
            rows = (decided - n + np.arange(n)) % history
            sounding = n - np.count_nonzero(hist[slot, rows, DIGITAL_SILENCE] > 0)
            due[i] = sounding * FRAME_SECONDS >= GROUP_GAP - 1e-9
        return due

    def flush(self, hist, history: int, slot: int, frames: int, end_time: float) -> None:
        """The stream stopped (no packets): decide pending attacks as if silence followed."""
        if self.undecided[slot] <= PAD_DB:
            return
        real_end = frames * BLOCKS_PER_FRAME
        end = real_end + LOOKAHEAD_BLOCKS
        if self.undecided[slot] >= TAP_MIN_DBFS:
            s = np.array([slot])
            self._scan(hist, history, s, np.array([end]), np.array([real_end]), np.array([end_time]))
            after = int(self.scan[slot]) - end  # refractory reaching past the silence
        else:
            after = 0
        # What follows is heard after silence: the context before it reads as silence. The bed too,
        # unless it comes back in a late burst (see `push`): the held audio of a stall, over a bed of
        # nothing the caller's sound resuming is a sharp onset whose refractory swallows a tap
        # right after it (or a « tap »).
        self.origin[slot] = frames
        self.stopped_at[slot] = frames
        self.scan[slot] = real_end + max(after, 0)
        self.ctx_start[slot] = real_end - _CONTEXT
        self.undecided[slot] = PAD_DB

    def close_group(self, slot: int, now: float) -> int:
        """The tap count of the call's group, finished (`due`) by `now`; resets the group.

        A group of more than MAX_GROUP_TAPS is not an answer (the seed asks for one or
        two taps) but impulsive noise: a fire's crackle, a train's clacks, hammering.
        It is dropped (0) and forgotten, so it does not keep the state at TAPS either.
        """
        group = int(self.group[slot])
        if group:
            if group <= MAX_GROUP_TAPS:
                # A caller's taps of one answer are made the same way: an onset far under the
                # group's loudest is the room (a chirp, a far click), not one of them.
                group_all = group
                levels = self.group_levels[slot, :group]
                kept = levels >= levels.max() - TAP_SPREAD_DB
                group = int(kept.sum())
                self.tap_level[slot] = self.group_rival_levels[slot, :group_all][kept].min()
                self.group_times[slot, :group_all][~kept] = np.nan
            self.group[slot] = 0
            self.group_taps[slot] = NO_TAP
            # The impulses heard up to the group's end too (onsets after its last tap).
            noisy = self._noisy(slot, now)
            self.group_times[slot] = np.nan
            if group > MAX_GROUP_TAPS or noisy >= MAX_IMPULSES:
                self.last_tap[slot] = np.nan
                return 0
            return group
        return 0

    def answering(self, slot: int, now: float, hold: float) -> bool:
        """A tap was heard within `hold` seconds and its group still looks like an answer: not among
        MAX_IMPULSES sharp onsets of any level (stricter than closing a group: a reading of taps
        is only a hint, and a noise's onsets must not hold the state at TAPS)."""
        last = float(self.last_tap[slot])
        return (not math.isnan(last) and now - last <= hold and int(self.group[slot]) <= MAX_GROUP_TAPS
                and self._impulses(slot, now, -math.inf) < MAX_IMPULSES)
