"""Optional second opinion on speech: Silero VAD (ONNX model of the silero-vad wheel) run with onnxruntime.

Only speech vs non-speech: Silero knows nothing of breathing, taps or a dead
line. Used by `callflow audio eval DIR --backend silero` to compare with the
classifier on the same clips, and by the live classifier as a second opinion on its speech
readings (classifier.SecondOpinion, `window_scores`).

No torch: the `silero-vad` wheel ships `silero_vad/data/silero_vad.onnx` (the v6
model in silero-vad 6.x, same interface as v5); the wheel is installed with
`pip install --no-deps silero-vad` (its declared dependency is torch) and the
model is found without importing the package (whose `__init__` imports torch). The model is run exactly as the package's own
`OnnxWrapper` does at 8 kHz: 256-sample chunks (32 ms) of float32 in [-1, 1),
each with the previous chunk's last 32 samples prepended (zeros before the
first), the LSTM state (2, batch, 128) carried from chunk to chunk, `sr` = 8000,
the last chunk zero-padded. One probability per chunk.

    probs = speech_probabilities(pcm)              # int16 or float PCM, 8 kHz
    probs = speech_probabilities(data, "ulaw")     # G.711 bytes
    clip_score(probs)                              # 85th percentile, see below
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from callflow.audio.g711 import decode

SAMPLE_RATE = 8000
CHUNK = 256  # samples per model call at 8 kHz (32 ms)
CONTEXT = 32  # samples of the previous chunk prepended at 8 kHz
CHUNK_SECONDS = CHUNK / SAMPLE_RATE
MODEL_FILE = "silero_vad.onnx"
INSTALL = "pip install onnxruntime && pip install --no-deps silero-vad"
#: Clip score = this quantile of the chunk probabilities: score ≥ 0.5 means at
#: least 15 % of the clip's 32 ms chunks were speech at p ≥ 0.5, the same share
#: as the classifier's verdict (speech when ≥ 15 % of the readings say speech).
#: The mean would punish the pauses between phrases.
SCORE_QUANTILE = 0.85
THRESHOLD = 0.5


class SileroUnavailable(RuntimeError):
    """onnxruntime or the silero-vad model file is missing."""


def model_path() -> Path:
    """The ONNX model: $CALLFLOW_SILERO_MODEL, else the one in the installed silero-vad wheel."""
    override = os.environ.get("CALLFLOW_SILERO_MODEL")
    if override:
        path = Path(override)
        if not path.is_file():
            raise SileroUnavailable(f"CALLFLOW_SILERO_MODEL={override}: no such file")
        return path
    spec = importlib.util.find_spec("silero_vad")  # locates the package without running its __init__ (torch)
    if spec is None or not spec.submodule_search_locations:
        raise SileroUnavailable(f"the Silero VAD backend needs the silero-vad package (its model file): {INSTALL}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise SileroUnavailable(f"silero-vad is installed but has no data/{MODEL_FILE}; reinstall: {INSTALL}")


_session = None
_lock = threading.Lock()


def session():
    """The one shared InferenceSession (CPU, 1 intra-op and 1 inter-op thread), made on first use."""
    global _session
    if _session is None:
        with _lock:
            if _session is None:
                try:
                    import onnxruntime
                except ImportError as e:
                    raise SileroUnavailable(f"the Silero VAD backend needs the onnxruntime package: {INSTALL}") from e
                path = model_path()
                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.log_severity_level = 3
                _session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return _session


def versions() -> dict[str, str]:
    """onnxruntime, silero-vad and model file (for reports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("onnxruntime", "silero-vad"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    try:
        out["model"] = str(model_path())
    except SileroUnavailable:
        out["model"] = "missing"
    return out


def to_float(audio, codec: str | None = None) -> np.ndarray:
    """8 kHz mono → float32 in [-1, 1). `codec` "ulaw"/"alaw" for G.711 bytes (or a uint8 array);
    int16 PCM is scaled by 1/32768; float PCM is taken as already in [-1, 1]."""
    if codec is not None:
        audio = decode(audio, codec)
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"mono audio expected, got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise ValueError(f"int16 or float PCM expected (or bytes with codec='ulaw'/'alaw'), got {x.dtype}")


def speech_probabilities_batch(clips: list, codec: str | None = None) -> list[np.ndarray]:
    """Speech probability per 32 ms chunk for several clips at once (one model call per
    chunk for all clips: the batch dimension). Shorter clips are zero-padded; each result
    is cut to its clip's own chunk count (ceil(len / 256))."""
    xs = [to_float(c, codec) for c in clips]
    if not xs:
        return []
    counts = [-(-len(x) // CHUNK) for x in xs]
    n = max(counts)
    audio = np.zeros((len(xs), n * CHUNK + CONTEXT), dtype=np.float32)  # CONTEXT zeros ahead of chunk 0
    for row, x in zip(audio, xs):
        row[CONTEXT : CONTEXT + len(x)] = x
    sess = session()
    state = np.zeros((2, len(xs), 128), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    probs = np.empty((len(xs), n), dtype=np.float32)
    for i in range(n):
        chunk = audio[:, i * CHUNK : (i + 1) * CHUNK + CONTEXT]  # previous 32 samples + this chunk
        out, state = sess.run(None, {"input": chunk, "state": state, "sr": sr})
        probs[:, i] = out[:, 0]
    return [probs[k, : counts[k]].copy() for k in range(len(xs))]


def speech_probabilities(audio, codec: str | None = None) -> np.ndarray:
    """Speech probability (0…1) per 32 ms chunk of one 8 kHz clip."""
    return speech_probabilities_batch([audio], codec)[0]


def clip_score(probs: np.ndarray, quantile: float = SCORE_QUANTILE) -> float:
    """One speech score per clip (see SCORE_QUANTILE); 0 for an empty clip."""
    return float(np.quantile(probs, quantile)) if len(probs) else 0.0


def window_scores(windows: np.ndarray) -> np.ndarray:
    """Speech score of many short float32 windows (n, samples), each from a fresh state: the
    SCORE_QUANTILE of its chunk probabilities. The live classifier's second opinion (see
    classifier.SecondOpinion): one model call per 32 ms chunk for all the windows at once."""
    n, samples = windows.shape
    chunks = samples // CHUNK
    audio = np.zeros((n, chunks * CHUNK + CONTEXT), dtype=np.float32)
    audio[:, CONTEXT:] = windows[:, samples - chunks * CHUNK :]
    sess = session()
    state = np.zeros((2, n, 128), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    probs = np.empty((n, chunks), dtype=np.float32)
    for i in range(chunks):
        out, state = sess.run(None, {"input": audio[:, i * CHUNK : (i + 1) * CHUNK + CONTEXT], "state": state, "sr": sr})
        probs[:, i] = out[:, 0]
    return np.quantile(probs, SCORE_QUANTILE, axis=1)
