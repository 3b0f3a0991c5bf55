"""Per-frame audio features, computed for many 20 ms frames at once.

Everything here works on a 2-D int16 array of shape (n_frames, 160): frames of
one call or of a thousand calls stacked together, so the numpy call overhead
is paid once per analysis tick rather than once per packet. The result is a
float32 matrix with one row per frame and the columns named below; per-call
code keeps rows of it in a small history buffer.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
BLOCKS_PER_FRAME = 8  # 2.5 ms blocks: fine enough to see a tap's attack
BLOCK_SAMPLES = FRAME_SAMPLES // BLOCKS_PER_FRAME

#: Quieter frames skip the spectral features (they cost most of the time).
ACTIVE_FLOOR_DBFS = -62.0
FLOOR_DBFS = -99.0

# Column indices of the feature matrix.
LEVEL = 0  # frame RMS in dBFS (full-scale square wave = 0 dBFS)
PEAK = 1  # peak |sample| in dBFS
ZCR = 2  # zero crossings per sample
CENTROID = 3  # spectral centroid in Hz
FLATNESS = 4  # spectral flatness 300–3400 Hz: ~0 tonal, ~1 white
HARMONICITY = 5  # normalised autocorrelation peak at a pitch lag (voicing)
LOW_RATIO = 6  # share of energy below 300 Hz (thumps, rumble)
VAD = 7  # webrtcvad decision, filled in by the caller (features stay pure numpy)
DIGITAL_SILENCE = 8  # 1.0 when the frame is constant (all-zero PCM / μ-law 0xFF)
CREST = 9  # peak²/mean² of the frame's loudest block, dB: ~10 for a one-sample line click
BLOCK_MEAN = 10  # mean of the frame's block energies (dB): the tap detector's quick reference
VOICED = 11  # 1.0 when voiced (set by the classifier: it needs the call's noise floor)
TONAL = 12  # per-frame linear-prediction gain (dB, order LPC_ORDER): ≥ ~30 only for one or two steady tones (set by the classifier)
BLOCK_MAX = 13  # the loudest of the frame's blocks (dB): what the tap detector still waits to decide, per frame
BLOCKS = 14  # first of BLOCKS_PER_FRAME columns: 2.5 ms block energies of a whitened (or high-passed) copy, dB
N_COLUMNS = BLOCKS + BLOCKS_PER_FRAME

_NFFT = 256  # ≥ 160 + the longest pitch lag, so the autocorrelation does not wrap
_FREQS = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
_BAND = (_FREQS >= 300) & (_FREQS <= 3400)
_LOW = _FREQS < 300
# Pitch lags 2.5–12 ms (83–400 Hz); unbiased normalisation for a rectangular frame.
_LAG_MIN, _LAG_MAX = 20, 96
_LAG_NORM = (FRAME_SAMPLES / (FRAME_SAMPLES - np.arange(_LAG_MIN, _LAG_MAX))).astype(np.float32)
_EPS = 1e-12
_MA = 8


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(power + _EPS), FLOOR_DBFS)


#: Rows per numpy pass: a few hundred frames stay in cache; 5,000 at once ran 2× slower.
CHUNK_FRAMES = 512


#: Order of the whitening (linear prediction error) filter used for the tap blocks.
LPC_ORDER = 8
#: Added to the normalised lag-0 autocorrelation: caps the whitening gain (~25 dB).
LPC_FLOOR = 3e-3


def _high_passed(x: np.ndarray) -> np.ndarray:
    """x minus its 8-sample moving average, along the last axis (rows start from zero)."""
    csum = np.cumsum(x, axis=1)
    moving = np.empty_like(x)
    moving[:, _MA:] = (csum[:, _MA:] - csum[:, :-_MA]) / _MA
    moving[:, :_MA] = csum[:, :_MA] / np.arange(1, _MA + 1, dtype=np.float32)
    return x - moving


def autocorrelation(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame autocorrelation, lags 0..LPC_ORDER, normalised to lag 0; and lag 0 itself.

    Rows of constant frames (r0 = 0) come back as [1, 0, …] with r0 = 0.
    """
    x = np.asarray(frames, dtype=np.float32) * (1.0 / 32768.0)
    n = x.shape[0]
    r = np.empty((n, LPC_ORDER + 1), dtype=np.float64)
    r[:, 0] = np.einsum("ij,ij->i", x, x)
    for k in range(1, LPC_ORDER + 1):
        r[:, k] = np.einsum("ij,ij->i", x[:, k:], x[:, :-k])
    r0 = r[:, 0].copy()
    ok = r0 > 0
    r[ok] /= r0[ok, None]
    r[~ok] = 0.0
    r[~ok, 0] = 1.0
    return r, r0


def levinson(acf: np.ndarray) -> np.ndarray:
    """Prediction-error filters [1, a1, …, ap] for many normalised autocorrelations (m, p+1) at once."""
    r = np.array(acf, dtype=np.float64)
    r[:, 0] += LPC_FLOOR
    m, p1 = r.shape
    a = np.zeros((m, p1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, p1):
        acc = r[:, i] + np.einsum("ij,ij->i", a[:, 1:i], r[:, i - 1 : 0 : -1]) if i > 1 else r[:, i].copy()
        k = -acc / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err *= 1.0 - k * k
    return a


#: Floor of the tonality measure's prediction error: G.711 quantisation keeps a clean tone near 35 dB.
TONAL_FLOOR = 1e-5


def prediction_gain_db(acf: np.ndarray) -> np.ndarray:
    """Per-frame order-LPC_ORDER prediction gain in dB from normalised autocorrelations (n, LPC_ORDER+1).

    One or two steady sinusoids (dial tone, ringback, busy, fax, modem answer) are
    predicted almost exactly (the G.711 floor leaves ~30–38 dB); vowels stay ~10–25 dB
    (the glottal pulses are not predictable), noise a few dB.
    """
    r = np.array(acf, dtype=np.float64)
    r[:, 0] += TONAL_FLOOR
    m, p1 = r.shape
    a = np.zeros((m, p1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, p1):
        acc = r[:, i] + np.einsum("ij,ij->i", a[:, 1:i], r[:, i - 1 : 0 : -1]) if i > 1 else r[:, i].copy()
        k = np.clip(-acc / err, -0.9999, 0.9999)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err *= 1.0 - k * k
    return 10.0 * np.log10(r[:, 0] / np.maximum(err, 1e-12))


_HANN = np.hanning(FRAME_SAMPLES).astype(np.float32)


#: A frame whose peak is within this of its RMS has a constant envelope: one sinusoid at a time.
CONSTANT_CREST_DB = 4.5
#: What such a frame's tonality reads: a steady tone's prediction gain through G.711.
CONSTANT_TONALITY_DB = 30.0


def tonality(frames: np.ndarray) -> np.ndarray:
    """Per-frame "line signal" measure in dB: the prediction gain of the Hann-windowed frame
    (~28–32 for one or two steady tones through G.711, under ~22 for voices, breaths and real
    noise: measured, docs/benchmarks.md), or CONSTANT_TONALITY_DB when the frame's envelope is
    constant (peak within CONSTANT_CREST_DB of the RMS: a sine is 3 dB). The second catches FSK
    modems (V.21, V.23, Bell 103/202): one frequency at a time, switching several times per 20 ms
    frame, so an order-8 predictor does poorly on them (~8–24 dB) although nothing about them is a
    caller. Noise, breath and voice frames peak 8–20 dB over their RMS."""
    x = np.asarray(frames, dtype=np.float32)
    acf, r0 = autocorrelation(x * _HANN)
    gain = np.where(r0 > 0, prediction_gain_db(acf), 0.0)
    raw = np.einsum("ij,ij->i", x, x) * (1.0 / (32768.0 * 32768.0 * FRAME_SAMPLES))
    peak = np.max(np.abs(x), axis=1) * (1.0 / 32768.0)
    constant = (raw > 0) & (peak * peak <= raw * 10.0 ** (CONSTANT_CREST_DB / 10.0))
    return np.where(constant, np.maximum(gain, CONSTANT_TONALITY_DB), gain)


def compute_features(
    frames: np.ndarray,
    whiten: tuple[np.ndarray, np.ndarray] | None = None,
    spectral_floor: np.ndarray | None = None,
    voiced_flatness: np.ndarray | None = None,
) -> np.ndarray:
    """int16 frames (n, 160) → float32 feature matrix (n, N_COLUMNS). VAD/VOICED left 0.

    `whiten` = (filters (n, LPC_ORDER+1), previous samples (n, LPC_ORDER)): the tap
    blocks are then taken on the prediction error of each frame (the call's own bed
    whitened: a band-limited breath flattens out, a broadband tap stands out).
    Without it they are taken on a high-passed copy.

    `spectral_floor` (n,): the spectral columns (ZCR, CENTROID, LOW_RATIO, FLATNESS,
    HARMONICITY: two FFTs, most of the cost) are computed only for frames whose LEVEL is
    above it, and left 0 on the others, as on quiet frames. The classifier gives each
    call's voicing floor: those columns serve only to find voiced frames (and the pitch
    movement of voiced frames), and a frame at or under that floor is never voiced.
    `voiced_flatness` (n,): likewise HARMONICITY (the second FFT) only where FLATNESS is
    under it (a flatter frame is never voiced).
    """
    frames = np.asarray(frames)
    if frames.shape[0] <= CHUNK_FRAMES:
        return _compute(frames, whiten, spectral_floor, voiced_flatness)
    return np.concatenate(
        [
            _compute(
                frames[i : i + CHUNK_FRAMES],
                None if whiten is None else (whiten[0][i : i + CHUNK_FRAMES], whiten[1][i : i + CHUNK_FRAMES]),
                None if spectral_floor is None else spectral_floor[i : i + CHUNK_FRAMES],
                None if voiced_flatness is None else voiced_flatness[i : i + CHUNK_FRAMES],
            )
            for i in range(0, frames.shape[0], CHUNK_FRAMES)
        ]
    )


def _compute(frames: np.ndarray, whiten=None, spectral_floor: np.ndarray | None = None, voiced_flatness: np.ndarray | None = None) -> np.ndarray:
    n = frames.shape[0]
    out = np.zeros((n, N_COLUMNS), dtype=np.float32)
    if n == 0:
        return out
    x = frames.astype(np.float32) * (1.0 / 32768.0)
    power = np.einsum("ij,ij->i", x, x) / FRAME_SAMPLES
    out[:, LEVEL] = _db(power)
    out[:, PEAK] = _db(np.max(np.abs(x), axis=1) ** 2)
    out[:, DIGITAL_SILENCE] = frames.max(axis=1) == frames.min(axis=1)
    # Block energies of the call's whitened signal (see compute_features), or of a
    # high-passed copy (x minus its 8-sample moving average, ~ -30 dB at 100 Hz,
    # flat above 1 kHz): rumble (brown noise, traffic) would otherwise make 2.5 ms
    # energies swing with the phase of its slow waves.
    if whiten is None:
        blocks = _high_passed(x).reshape(n, BLOCKS_PER_FRAME, BLOCK_SAMPLES)
    else:
        filters, previous = whiten
        filters = filters.astype(np.float32)
        ext = np.concatenate((previous.astype(np.float32), x), axis=1)
        p = previous.shape[1]
        whitened = x.copy()
        for j in range(1, p + 1):
            whitened += filters[:, j, None] * ext[:, p - j : p - j + FRAME_SAMPLES]
        blocks = whitened.reshape(n, BLOCKS_PER_FRAME, BLOCK_SAMPLES)
    block_power = np.einsum("ijk,ijk->ij", blocks, blocks) / BLOCK_SAMPLES
    out[:, BLOCKS:] = _db(block_power)
    out[:, BLOCK_MEAN] = out[:, BLOCKS:].mean(axis=1)
    out[:, BLOCK_MAX] = out[:, BLOCKS:].max(axis=1)
    # Crest of the loudest block, always on the high-passed copy: whitening would smear
    # a one-sample click over the filter's length and make it look less peaky.
    loudest = np.argmax(block_power, axis=1)
    rows = np.arange(n)
    if whiten is None:
        chosen = blocks[rows, loudest]
        out[:, CREST] = _db(np.max(chosen**2, axis=1)) - _db(np.einsum("ij,ij->i", chosen, chosen) / BLOCK_SAMPLES)
    else:
        # High-pass just that block and the one before it (a click at the end of a block
        # spills into the next one through the whitening filter); the peakier of the two.
        first = loudest * BLOCK_SAMPLES
        cols = first[:, None] + np.arange(-BLOCK_SAMPLES - (_MA - 1), BLOCK_SAMPLES)
        seg = x[rows[:, None], np.maximum(cols, 0)] * (cols >= 0)
        pair = _high_passed(seg)[:, _MA - 1 :].reshape(n, 2, BLOCK_SAMPLES)
        crests = _db(np.max(pair**2, axis=2)) - _db(np.einsum("ijk,ijk->ij", pair, pair) / BLOCK_SAMPLES)
        out[:, CREST] = crests.max(axis=1)

    active = (out[:, LEVEL] > ACTIVE_FLOOR_DBFS) & (out[:, DIGITAL_SILENCE] == 0)
    if spectral_floor is not None:
        active &= out[:, LEVEL] > spectral_floor
    active = np.flatnonzero(active)
    if active.size == 0:
        return out
    xa = x[active]
    signs = np.signbit(xa)
    out[active, ZCR] = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1) / (FRAME_SAMPLES - 1)

    # One FFT serves both the spectral shape and the voicing measure (FFTs are
    # the largest single cost of the analysis). Rectangular window: leakage is
    # far below the speech/noise differences these features look at.
    mag = np.abs(np.fft.rfft(xa, n=_NFFT, axis=1))
    spec = mag * mag
    total = spec.sum(axis=1) + _EPS
    out[active, CENTROID] = (spec @ _FREQS) / total
    out[active, LOW_RATIO] = spec[:, _LOW].sum(axis=1) / total
    band = spec[:, _BAND] + _EPS
    out[active, FLATNESS] = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)

    # Voicing: autocorrelation of the band-limited, magnitude-compressed spectrum
    # (compression keeps brown/rumble noise from looking periodic).
    if voiced_flatness is not None:
        flat_enough = out[active, FLATNESS] < voiced_flatness[active]
        if not flat_enough.all():
            active, mag = active[flat_enough], mag[flat_enough]
            if active.size == 0:
                return out
    mag[:, ~_BAND] = 0.0
    ac = np.fft.irfft(mag, n=_NFFT, axis=1)
    lagged = ac[:, _LAG_MIN:_LAG_MAX] * _LAG_NORM
    out[active, HARMONICITY] = np.clip(lagged.max(axis=1) / (ac[:, 0] + _EPS), 0.0, 1.0)
    return out
