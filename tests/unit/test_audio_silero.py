"""The optional Silero VAD backend (callflow/audio/silero.py): the real ONNX model, run
with onnxruntime (installed by .ci/setup: onnxruntime from the [test] extra, silero-vad
with --no-deps). No skips: a missing package must fail here."""

import argparse
import importlib.util
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from callflow.audio import cli, silero
from callflow.audio.g711 import alaw_encode, ulaw_decode, ulaw_encode
from callflow.audio.offline import load_audio

_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)

JUNE = synth.CLIPS / "speech_fr_june.ulaw"  # Asterisk's recorded fr_CA voice


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


@pytest.fixture(scope="module")
def espeak_wav(tmp_path_factory) -> Path:
    """"Bonjour…" by espeak-ng, resampled to 8 kHz 16-bit by sox (both installed by .ci/setup)."""
    assert shutil.which("espeak-ng") and shutil.which("sox"), "espeak-ng and sox are needed (.ci/setup installs them)"
    d = tmp_path_factory.mktemp("espeak")
    raw, out = d / "raw.wav", d / "bonjour.wav"
    text = "Bonjour, je vous appelle parce que je n'arrive plus à me connecter à mon compte."
    subprocess.run(["espeak-ng", "-v", "fr", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    return out


def reference_probabilities(x: np.ndarray) -> np.ndarray:
    """Chunk by chunk as silero_vad.utils_vad.OnnxWrapper.audio_forward does (torch replaced by numpy)."""
    sess = silero.session()
    pad = (-len(x)) % 256
    x = np.concatenate([x.astype(np.float32), np.zeros(pad, np.float32)])[None, :]
    state, context, out = np.zeros((2, 1, 128), np.float32), np.zeros((1, 32), np.float32), []
    for i in range(0, x.shape[1], 256):
        chunk = np.concatenate([context, x[:, i : i + 256]], axis=1)
        p, state = sess.run(None, {"input": chunk, "state": state, "sr": np.array(8000, dtype=np.int64)})
        context = chunk[:, -32:]
        out.append(p[0, 0])
    return np.array(out)


def test_the_model_is_the_v5_onnx_of_the_wheel():
    path = silero.model_path()
    assert path.name == "silero_vad.onnx" and path.parent.name == "data" and path.parent.parent.name == "silero_vad"
    sess = silero.session()
    assert sess is silero.session()  # one shared session
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("input", "tensor(float)"),
        ("state", "tensor(float)"),
        ("sr", "tensor(int64)"),
    ]
    assert [o.name for o in sess.get_outputs()] == ["output", "stateN"]
    assert sess.get_session_options().intra_op_num_threads == 1
    assert "silero_vad" not in sys.modules  # found, not imported: its __init__ imports torch


def test_recorded_speech_scores_high():
    probs = silero.speech_probabilities(JUNE.read_bytes(), "ulaw")
    assert len(probs) == -(-len(JUNE.read_bytes()) // 256)  # one per 32 ms chunk, last one padded
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert silero.clip_score(probs) > 0.9
    assert probs.mean() > 0.6


def test_espeak_speech_scores_high(espeak_wav):
    pcm = load_audio(espeak_wav)
    assert len(pcm) > 8000
    probs = silero.speech_probabilities(pcm)
    assert silero.clip_score(probs) > 0.9


def test_speech_with_pauses_over_line_noise_is_speech():
    x = synth.talk(3, 8.0, -24.0) + synth.noise(4, 8.0, "pink", -45.0)
    assert silero.clip_score(silero.speech_probabilities(synth.to_pcm(x))) >= silero.THRESHOLD


@pytest.mark.parametrize(
    "name, x",
    [
        ("white noise", synth.noise(1, 6.0, "white", -25.0)),
        ("pink noise", synth.noise(2, 6.0, "pink", -30.0)),
        ("line hiss", synth.hiss(3, 6.0)),
        ("digital silence", np.zeros(6 * 8000)),
        ("breathing", synth.breathing(5, 8.0)),
    ],
)
def test_non_speech_scores_low(name, x):
    probs = silero.speech_probabilities(synth.to_pcm(x))
    assert silero.clip_score(probs) < 0.2, name
    assert probs.mean() < 0.2, name


def test_input_forms_give_the_same_probabilities():
    data = JUNE.read_bytes()
    pcm = ulaw_decode(data)
    from_bytes = silero.speech_probabilities(data, "ulaw")
    from_codes = silero.speech_probabilities(np.frombuffer(data, np.uint8), "ulaw")
    from_int16 = silero.speech_probabilities(pcm)
    from_float = silero.speech_probabilities(pcm.astype(np.float64) / 32768)
    np.testing.assert_array_equal(from_bytes, from_int16)
    np.testing.assert_array_equal(from_codes, from_int16)
    np.testing.assert_allclose(from_float, from_int16, atol=1e-6)
    from_alaw = silero.speech_probabilities(alaw_encode(pcm), "alaw")
    assert silero.clip_score(from_alaw) > 0.9
    with pytest.raises(ValueError):
        silero.speech_probabilities(pcm.astype(np.int32))
    with pytest.raises(ValueError):
        silero.speech_probabilities(data, "g722")


def test_same_as_the_packages_own_chunking_and_batching_changes_nothing():
    speech = ulaw_decode(JUNE.read_bytes()).astype(np.float32) / 32768
    noise = synth.noise(7, 1.0, "white", -30.0).astype(np.float32)  # shorter: padded in the batch
    np.testing.assert_allclose(silero.speech_probabilities(speech), reference_probabilities(speech), atol=1e-5)
    batched = silero.speech_probabilities_batch([speech, noise])
    assert [len(p) for p in batched] == [-(-len(speech) // 256), -(-len(noise) // 256)]
    np.testing.assert_allclose(batched[0], silero.speech_probabilities(speech), atol=1e-5)
    np.testing.assert_allclose(batched[1], silero.speech_probabilities(noise), atol=1e-5)
    assert silero.speech_probabilities_batch([]) == []


def test_clip_score_is_a_high_quantile():
    probs = np.array([0.0] * 80 + [1.0] * 20)  # speech on 20 % of the chunks
    assert silero.clip_score(probs) == 1.0
    assert silero.clip_score(np.array([0.0] * 90 + [1.0] * 10)) == 0.0
    assert silero.clip_score(np.array([])) == 0.0


def test_missing_onnxruntime_names_the_package_and_the_command(monkeypatch):
    monkeypatch.setattr(silero, "_session", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(silero.SileroUnavailable, match=r"onnxruntime.*pip install onnxruntime && pip install --no-deps silero-vad"):
        silero.session()


def test_missing_model_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(silero, "_session", None)
    monkeypatch.setattr(silero.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(silero.SileroUnavailable, match=r"silero-vad.*pip install --no-deps silero-vad"):
        silero.session()
    monkeypatch.setenv("CALLFLOW_SILERO_MODEL", str(tmp_path / "none.onnx"))
    with pytest.raises(silero.SileroUnavailable, match="no such file"):
        silero.model_path()


def parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    cli.register_cli(sub)
    return p


def test_eval_backend_silero_on_a_labelled_tree(tmp_path, capsys, espeak_wav):
    clips = {
        "speech": [ulaw_decode(JUNE.read_bytes()), load_audio(espeak_wav), synth.to_pcm(synth.talk(2, 5.0, -20.0))],
        "background_noise": [synth.to_pcm(synth.noise(3, 5.0, "pink", -30.0))],
        "dead_line": [np.zeros(5 * 8000, np.int16)],
        "silence": [synth.to_pcm(synth.hiss(4, 5.0))],
        "breathing": [synth.to_pcm(synth.breathing(5, 6.0))],
        "taps_2": [synth.to_pcm(synth.taps(6, 2) + synth.hiss(6, 6.0))],
    }
    for label, pcms in clips.items():
        (tmp_path / label).mkdir()
        for i, pcm in enumerate(pcms):
            write_wav(tmp_path / label / f"{label}_{i}.wav", pcm)
    (tmp_path / "speech" / "june.ulaw").write_bytes(ulaw_encode(ulaw_decode(JUNE.read_bytes())))  # raw μ-law file
    args = parser().parse_args(["audio", "eval", str(tmp_path), "--backend", "silero", "-v"])
    assert args.backend == "silero"
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "9 clips, backend silero (onnxruntime " in out
    assert "speech vs non-speech ROC-AUC: 1.000" in out
    assert "speech                 1.00    1.00    4" in out  # precision, recall, n at score >= 0.5
    assert "tap count exact: n/a" in out
    assert "breathing called on other clips: n/a" in out
    assert "dead line reported as a present caller: n/a" in out
    assert "ms per clip-second" in out
    assert out.count("non-speech  score=") == 5  # -v: one line per clip


def test_eval_default_backend_is_the_classifier():
    args = parser().parse_args(["audio", "eval", "somewhere"])
    assert args.backend == "classifier"


def test_eval_backend_silero_without_onnxruntime_fails_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(silero, "_session", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    (tmp_path / "speech").mkdir()
    write_wav(tmp_path / "speech" / "a.wav", np.zeros(8000, np.int16))
    args = parser().parse_args(["audio", "eval", str(tmp_path), "--backend", "silero"])
    assert args.func(args) == 2
    assert "pip install onnxruntime" in capsys.readouterr().err
