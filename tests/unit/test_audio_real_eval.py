"""The classifier's evaluation on the real-recording set (issue 12), with floors.

tests/audio/real/ is built by tools/make_real_audio.py from recordings shipped in
Debian packages (sources and licences: tests/audio/real/MANIFEST.md). `dev` is what
the classifier was tuned on; `holdout` was scored once at the end of issue 12's first round
(and again at the end of the second); `holdout2` (other packages) was scored once at the end of
the second round and a second time at the end of the third; `holdout3` (seven more packages) was
never tuned on and scored once, at the end of the third round; `holdout4` (twelve more packages) was
built before the fourth round's tuning and is scored once, by the lead, after the merge (see
UNSCORED). The floors sit just
below the figures reached (docs/benchmarks.md): a change that loses ground fails here.
A dead line is never called a present caller (no slack).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.audio import classifier
from callflow.audio.offline import evaluate
from callflow.core.channel import AudioState

REAL = Path(__file__).resolve().parents[1] / "audio" / "real"

#: split → floor, just below the figures reached (docs/benchmarks.md; Silero's second opinion on, as
#: `callflow run`). Tap figures: the fourth round ("taps, fourth round", tuned on all four splits):
#: dev 46/54, holdout 41/54 (was 42: one 3-tap group over room noise now gains a 4th tap from the room,
#: since the group's own rings no longer raise the bed), holdout2 51/54, holdout3 41/54 (was 25). Session 7 ("taps,
#: session 7"): dev 46/54, holdout 47/54, holdout2 51/54, holdout3 45/54 (floors raised for holdout and holdout3).
#: Noise, breathing and tone figures: the fourth round ("noise and tones, fourth
#: round"): dev macro recall 0.891, noise recall 20/30, noise called speech 1/30, speech 15/16,
#: ROC-AUC 0.999, tones 14/14, none called a caller; holdout 0.877, 19/30, 1/30, 16/16, 0.996, 14/14,
#: 0; holdout2 0.905, 27/30, 1/30, 12/16, 0.953, 14/14, 0; holdout3 (scored once in the third round,
#: tuned on since) 0.883, 24/30, 0/30, 16/16, 0.992, 11/14, 3 called a caller.
FLOORS = {
    "dev": {"tap_exact": 0.84, "noise_as_taps": 0.21, "macro6": 0.88, "noise_recall": 0.65, "noise_as_speech": 0.05, "speech_recall": 0.93,
            "speech_auc": 0.99, "tones": 0.95, "tones_as_caller": 0},
    "holdout": {"tap_exact": 0.86, "noise_as_taps": 0.27, "macro6": 0.87, "noise_recall": 0.62, "noise_as_speech": 0.05, "speech_recall": 0.95,
                "speech_auc": 0.99, "tones": 0.95, "tones_as_caller": 0},
    # holdout2's speech is isolated recorded letters and syllables (KLettres): shorter than a
    # sentence, so fewer speech readings, and Silero doubts some (docs/benchmarks.md).
    "holdout2": {"tap_exact": 0.93, "noise_as_taps": 0.0, "macro6": 0.89, "noise_recall": 0.88, "noise_as_speech": 0.05, "speech_recall": 0.74,
                 "speech_auc": 0.95, "tones": 0.95, "tones_as_caller": 0},
    # holdout3: of its tones, baresip's recorded error tone (a low harmonic buzz) is heard as speech
    # (twice): 2 called a caller. Both branches merged: macro recall 0.927, noise 27/30, tones 12/14. The floors record that state so that it cannot get worse; they
    # are not targets.
    "holdout3": {"tap_exact": 0.82, "noise_as_taps": 0.0, "macro6": 0.91, "noise_recall": 0.86, "noise_as_speech": 0.04, "speech_recall": 0.95,
                 "speech_auc": 0.985, "tones": 0.85, "tones_as_caller": 2},
    # holdout4: built before the fourth round's tuning from twelve packages no other split uses, never
    # tuned on, scored once by the lead after both branches were merged (session 6): taps 47/54 (two
    # « non » heard as one tap), macro recall 0.919, noise 25/30 (2 called speech), speech 16/16, ROC-AUC
    # 0.995, tones 14/14, none called a caller. Floors just below; not targets.
    "holdout4": {"tap_exact": 0.85, "macro6": 0.90, "noise_recall": 0.80, "noise_as_speech": 0.07, "speech_recall": 0.95,
                 "speech_auc": 0.99, "tones": 0.95, "tones_as_caller": 0},
}

#: Splits built but not scored yet: never tuned on, not looked at. The lead scores each once, after the
#: merge, with `callflow audio eval tests/audio/real/<split>` (or by moving it into FLOORS with floors
#: just below the figures it reaches, which runs it here), and then it leaves this tuple.
UNSCORED: tuple[str, ...] = ()

#: Clips per label in every split (tools/make_real_audio.py COUNTS).
COUNTS = {"taps_1": 18, "taps_2": 18, "taps_3": 18, "background_noise": 30, "speech": 16, "breathing": 10,
          "silence": 8, "dead_line": 6, "line_tone": 14}


@pytest.mark.parametrize("split", sorted(set(FLOORS) | set(UNSCORED)))
def test_real_split_is_complete_and_documented(split):
    """Every split has its clips (raw μ-law, 6 s; dead lines 10 s) and a manifest line per clip naming
    real or synthetic and its sources; every package it reads is pinned in PACKAGES.tsv. No scoring."""
    pinned = {line.split("\t")[0] for line in (REAL / "PACKAGES.tsv").read_text().splitlines() if line}
    for label, count in COUNTS.items():
        folder = REAL / split / label
        clips = sorted(folder.glob("*.ulaw"))
        assert len(clips) == count, (folder, len(clips))
        for clip in clips:
            assert clip.stat().st_size == (80000 if label == "dead_line" else 48000), clip
        rows = [line.split("\t") for line in (folder / "MANIFEST.tsv").read_text().splitlines()[1:]]
        assert [r[0] for r in rows] == [c.name for c in clips]
        for name, kind, what, sources in rows:
            assert kind in ("real", "synthetic") and what
            assert kind == "synthetic" or sources != "-", name
            for source in sources.split(","):
                assert source == "-" or source.split("/")[0] in pinned, (name, source)
    assert split not in FLOORS or split not in UNSCORED


@pytest.mark.parametrize("split", sorted(FLOORS))
def test_real_recordings_hold_their_floors(split):
    """One test per split: the split is scored once (all its clips as calls analysed together,
    Silero confirming speech as in `callflow run`), then every figure is checked against its floor."""
    root = REAL / split
    assert root.is_dir(), f"{root} missing: python tools/make_real_audio.py"
    # The figures are those of the product (`callflow run`): Silero's second opinion on speech runs.
    assert classifier.SECOND_OPINION.active(), classifier.SECOND_OPINION.state
    ev = evaluate(root)

    labels = {Path(r[0]).parent.name for r in ev.rows}
    assert labels == {"dead_line", "silence", "background_noise", "breathing", "speech", "taps_1", "taps_2", "taps_3", "line_tone"}
    assert len(ev.rows) >= 130

    floor = FLOORS[split]
    # Safety: no slack on the dead line; tones called a caller at most as often as stated.
    assert ev.dead_line_as_present() == 0, ev.report()
    assert ev.tones_as_caller() <= floor["tones_as_caller"], ev.report()

    ok, n = ev.tap_count_accuracy()
    figures = {
        "tap_exact": ok / n,
        "macro6": ev.macro_recall(),
        "noise_recall": ev.recall(AudioState.BACKGROUND_NOISE),
        "speech_auc": ev.speech_auc(),
        "speech_recall": ev.recall(AudioState.SPEECH),
        "tones": ev.recall(AudioState.LINE_TONE),
    }
    below = {k: v for k, v in figures.items() if v < floor[k]}
    assert not below, f"{split}: below the floor: {below}\n{ev.report()}"
    noise_as_speech = ev.called(AudioState.BACKGROUND_NOISE, {AudioState.SPEECH})
    assert noise_as_speech <= floor["noise_as_speech"], f"{split}: noise called speech {noise_as_speech:.1%}\n{ev.report()}"
    # A tap detector that hears more taps must not hear them in noise: noise called taps, at most as
    # often as stated (session 7; holdout4 has no such line until the lead scores it again).
    noise_as_taps = ev.called(AudioState.BACKGROUND_NOISE, {AudioState.TAPS})
    assert noise_as_taps <= floor.get("noise_as_taps", 1.0), f"{split}: noise called taps {noise_as_taps:.1%}\n{ev.report()}"
