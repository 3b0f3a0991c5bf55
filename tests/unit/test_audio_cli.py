"""`callflow audio classify|eval` wiring, on a tiny generated tree."""

import argparse
import importlib.util
import wave
from pathlib import Path

import numpy as np

from callflow.audio import cli
from callflow.audio.g711 import ulaw_encode
from callflow.audio.offline import Evaluation, collect, label_of, load_audio, roc_auc
from callflow.core.channel import AudioState

_spec = importlib.util.spec_from_file_location("audio_synth", Path(__file__).resolve().parents[1] / "audio" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synth)


def parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    cli.register_cli(sub)
    bench = sub.add_parser("bench").add_subparsers(dest="what", required=True)
    cli.register_bench(bench)
    return p


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype("<i2").tobytes())


def test_classify_prints_a_timeline_and_plots(tmp_path, capsys):
    clip = tmp_path / "taps.ulaw"
    clip.write_bytes(ulaw_encode(synth.to_pcm(synth.taps(1, 2) + synth.hiss(1, 6.0))))
    png = tmp_path / "out.png"
    args = parser().parse_args(["audio", "classify", str(clip), "--plot", str(png)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "verdict taps" in out and "taps: 2" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_reports_per_class_figures(tmp_path, capsys):
    for label, x in {
        "speech": synth.talk(2, 5.0, -20.0),
        "background_noise": synth.noise(3, 5.0, "pink", -30.0),
        "dead_line": np.zeros(6 * 8000),
        "taps_2": synth.taps(4, 2) + synth.hiss(4, 6.0),
    }.items():
        (tmp_path / label).mkdir()
        write_wav(tmp_path / label / f"{label}.wav", synth.to_pcm(x))
    args = parser().parse_args(["audio", "eval", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "speech vs non-speech ROC-AUC: 1.000" in out
    assert "tap count exact: 1/1" in out
    assert "dead line reported as a present caller: 0" in out


def test_eval_of_an_empty_tree_fails(tmp_path):
    args = parser().parse_args(["audio", "eval", str(tmp_path)])
    assert args.func(args) == 2


def test_labels_and_loading(tmp_path):
    assert label_of("taps_3") == (AudioState.TAPS, 3)
    assert label_of("breathing") == (AudioState.BREATHING, None)
    (tmp_path / "speech").mkdir()
    (tmp_path / "notalabel").mkdir()
    (tmp_path / "speech" / "a.raw").write_bytes(b"\xff" * 320)
    (tmp_path / "notalabel" / "b.raw").write_bytes(b"\xff" * 320)
    assert [p.name for p, _ in collect(tmp_path)] == ["a.raw"]
    assert load_audio(tmp_path / "speech" / "a.raw").tolist() == [0] * 320


def test_roc_auc_basics():
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert np.isnan(Evaluation().speech_auc())


def test_bench_replay_measures_the_receiver_with_silero_on_and_off(tmp_path, capsys):
    """`callflow bench audio --replay`: every datagram through the receiver on a simulated clock;
    the calls playing speech get Silero's windows only while it is on."""
    from callflow.audio.classifier import SECOND_OPINION

    for label, x in (("speech", synth.talk(3, 6.0, -18.0)), ("background_noise", synth.noise(4, 6.0, "pink", -35.0))):
        (tmp_path / label).mkdir()
        (tmp_path / label / f"{label}.ulaw").write_bytes(ulaw_encode(synth.to_pcm(x)))
    before = SECOND_OPINION.mode
    try:
        args = parser().parse_args(["bench", "audio", "--replay", "--calls", "4", "--seconds", "3", "--clips", str(tmp_path), "--speaking", "0.5"])
        assert args.func(args) == 0
    finally:
        SECOND_OPINION.configure(before)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("replay")]
    assert len(lines) == 2
    assert "(2 speaking)" in lines[0] and "second opinion silero" in lines[0] and "second opinion off" in lines[1]
    assert "Silero judged 0 windows" not in lines[0] and "Silero judged 0 windows" in lines[1]


def test_digest_and_replay_of_a_folder_without_clips_say_so(tmp_path, capsys):
    """A digest of no clips would look like a result (two empty folders gave the same SHA-1), and a
    replay divided by zero: both name the folder and what they expected, and exit 2."""
    (tmp_path / "speech").mkdir()
    args = parser().parse_args(["audio", "digest", str(tmp_path / "missing")])
    assert args.func(args) == 2
    assert "no labelled clips" in capsys.readouterr().err
    args = parser().parse_args(["bench", "audio", "--replay", "--calls", "2", "--seconds", "1", "--clips", str(tmp_path)])
    assert args.func(args) == 2
    assert "found 0 speech and 0 other" in capsys.readouterr().err
