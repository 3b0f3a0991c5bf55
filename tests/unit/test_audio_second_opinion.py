"""Silero VAD as the live classifier's second opinion on speech (classifier.SecondOpinion, issue 12):
it turns a crowd's or a farm's "speech" into noise, keeps a voice a voice, and its absence is
stated (state, log, receiver metric), never silent. The real model (installed by .ci/setup)."""

import logging
from pathlib import Path

import pytest

from callflow.audio import classifier, silero
from callflow.audio.classifier import CallAudio, SecondOpinion
from callflow.audio.offline import load_audio, run_offline
from callflow.audio.receiver import RtpReceiver
from callflow.config import ConfigError, load
from callflow.core.channel import AudioState, SpeechStreak

CLIPS = Path(__file__).resolve().parents[1] / "audio"
JUNE = CLIPS / "clips" / "speech_fr_june.ulaw"
#: dev clips the classifier alone calls speech and Silero does not: animals and voices of a real farm
#: recording (a third, farm 011, is still called speech: docs/benchmarks.md)
FARM = [CLIPS / "real" / "dev" / "background_noise" / f"background_noise_dev_{i:03d}.ulaw" for i in (20, 29)]


def run_with(monkeypatch, opinion: SecondOpinion, path: Path):
    monkeypatch.setattr(classifier, "SECOND_OPINION", opinion)
    return run_offline(load_audio(path))


@pytest.mark.parametrize("path", FARM, ids=lambda p: p.name)
def test_a_farm_is_not_a_voice_once_silero_is_asked(monkeypatch, path):
    alone = run_with(monkeypatch, SecondOpinion("off"), path)
    assert alone.verdict is AudioState.SPEECH  # what the classifier alone says (the failure fixed)
    opinion = SecondOpinion("silero")
    checked = run_with(monkeypatch, opinion, path)
    assert checked.verdict is AudioState.BACKGROUND_NOISE
    assert opinion.vetoes > 0 and opinion.windows > 0


def test_a_voice_stays_a_voice_and_costs_few_runs(monkeypatch):
    opinion = SecondOpinion("silero")
    result = run_with(monkeypatch, opinion, JUNE)
    assert result.verdict is AudioState.SPEECH
    assert opinion.vetoes == 0
    seconds = len(load_audio(JUNE)) / 8000
    # judged only on speech readings, each verdict reused for REUSE seconds
    assert 0 < opinion.windows <= seconds / SecondOpinion.REUSE + 1


def test_without_silero_the_fallback_is_stated(monkeypatch, caplog):
    def missing():
        raise silero.SileroUnavailable("the Silero VAD backend needs the onnxruntime package")

    monkeypatch.setattr(silero, "session", missing)
    opinion = SecondOpinion("silero")
    with caplog.at_level(logging.WARNING, logger="callflow.audio.classifier"):
        state = opinion.configure("silero")
    assert "unavailable" in state and "classifier's alone" in state
    assert any("classifier's alone" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(classifier, "SECOND_OPINION", opinion)
    assert RtpReceiver().stats()["audio_second_opinion_active"] == 0.0
    # and the classifier still works alone
    assert run_offline(load_audio(JUNE)).verdict is AudioState.SPEECH


def test_configured_off_and_on(monkeypatch):
    opinion = SecondOpinion("silero")
    assert opinion.configure("off") == "off (configured)" and not opinion.active()
    assert opinion.configure("silero").startswith("silero (onnxruntime")
    monkeypatch.setattr(classifier, "SECOND_OPINION", opinion)
    assert RtpReceiver().stats()["audio_second_opinion_active"] == 1.0


def test_config_key_and_its_expected_form():
    assert load(env={}).media.speech_second_opinion == "silero"
    assert load(env={"CALLFLOW_MEDIA_SPEECH_SECOND_OPINION": "off"}).media.speech_second_opinion == "off"
    with pytest.raises(ConfigError, match="media.speech_second_opinion"):
        load(env={"CALLFLOW_MEDIA_SPEECH_SECOND_OPINION": "maybe"})


def first_second_streak(monkeypatch, opinion: SecondOpinion, path: Path, start: float) -> float | None:
    """Feed a media fork's first 1.04 s as the live receiver does (20 ms at a time): when SpeechStreak
    (the flows' « the caller talks ») is confirmed, or None."""
    monkeypatch.setattr(classifier, "SECOND_OPINION", opinion)
    x = load_audio(path)[int(start * 8000):]
    now = [0.0]
    call = CallAudio(clock=lambda: now[0], queue_size=0)
    streak = SpeechStreak()
    for i in range(0, classifier.PCM_FRAMES * 160, 160):
        call.push_pcm(x[i : i + 160])
        now[0] += 0.02
        for reading in call.process():
            if streak.add(reading, reading.at):
                return reading.at
    return None


def test_a_forks_first_second_is_not_the_caller_talking_until_silero_hears_a_voice(monkeypatch):
    """A fork's first second used to be the classifier's alone (Silero judged only full 1.04 s windows):
    a sobbing caller's first sobs then read as the caller talking. A young call is judged on what it has."""
    noise = CLIPS / "real" / "dev" / "background_noise" / "background_noise_dev_000.ulaw"
    assert first_second_streak(monkeypatch, SecondOpinion("off"), noise, 2.0) is not None  # the failure
    assert first_second_streak(monkeypatch, SecondOpinion("silero"), noise, 2.0) is None
    # a voice is not made to wait for a full window
    alone = first_second_streak(monkeypatch, SecondOpinion("off"), JUNE, 0.0)
    assert alone is not None
    assert first_second_streak(monkeypatch, SecondOpinion("silero"), JUNE, 0.0) == alone
