"""Render the prompt source (sounds/prompts.yaml) into Asterisk sound files, offline.

espeak-ng is the only offline French voice in the registries; its output is
resampled to 8 kHz μ-law (`sounds/<lang>/<id>.ulaw`, Asterisk's native format for
our calls: no transcoding per playback). A studio recording saved as
`sounds/<lang>/<id>.wav` (8 kHz mono) replaces the synthetic voice: render
skips that id and removes its .ulaw so Asterisk plays the recording.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from callflow.core.errors import ConfigError

#: the repository's sounds/ (a checkout or an editable install): Asterisk's copy comes from here
CHECKOUT_SOUNDS = Path(__file__).resolve().parents[1] / "sounds"
#: an installed wheel's copy of the prompt source (pyproject's data-files: <prefix>/share/callflow/sounds)
INSTALLED_SOUNDS = Path(sysconfig.get_path("data")) / "share" / "callflow" / "sounds"


def sounds_dir(env: "os._Environ[str] | dict[str, str]" = os.environ) -> Path:
    """Where prompts are rendered: $CALLFLOW_SOUNDS_DIR, else the checkout's sounds/, else the installed copy."""
    if env.get("CALLFLOW_SOUNDS_DIR"):
        return Path(env["CALLFLOW_SOUNDS_DIR"])
    if (CHECKOUT_SOUNDS / "prompts.yaml").exists():
        return CHECKOUT_SOUNDS
    return INSTALLED_SOUNDS


def source_dir(sounds: Path) -> Path:
    """Where prompts.yaml is read: next to the rendered sounds, else the copy installed with the package."""
    for candidate in (sounds, CHECKOUT_SOUNDS, INSTALLED_SOUNDS):
        if (candidate / SOURCE_FILES[0]).exists():
            return candidate
    raise ConfigError("CALLFLOW_SOUNDS_DIR", f"a folder with {SOURCE_FILES[0]} (looked in {sounds}, "
                      f"{CHECKOUT_SOUNDS} and {INSTALLED_SOUNDS}; reinstall callflow)", str(sounds))


SOUNDS = sounds_dir()
VOICES = {"fr": "fr-fr", "en": "en-gb", "es": "es", "it": "it"}
SOURCE_FILES = ("prompts.yaml",)


def load_prompts(sounds_dir: Path = SOUNDS) -> dict[str, dict[str, str]]:
    prompts: dict[str, dict[str, str]] = {}
    for name in SOURCE_FILES:
        path = source_dir(sounds_dir) / name
        data = yaml.safe_load(path.read_text()) or {}
        for prompt_id, texts in data.items():
            if not isinstance(texts, dict) or not all(isinstance(t, str) for t in texts.values()):
                raise ConfigError(f"{name}:{prompt_id}", "a mapping language → text")
            if prompt_id in prompts:
                raise ConfigError(f"{name}:{prompt_id}", "a prompt id defined once")
            prompts[prompt_id] = {lang: text for lang, text in texts.items() if lang != "voice"}
    return prompts


def voice_overrides(sounds_dir: Path = SOUNDS) -> dict[str, str]:
    """Prompts spoken in another language than their file's (`voice:` key), e.g. the English hint of cas E."""
    found = {}
    for name in SOURCE_FILES:
        for prompt_id, texts in (yaml.safe_load((source_dir(sounds_dir) / name).read_text()) or {}).items():
            if isinstance(texts, dict) and "voice" in texts:
                found[prompt_id] = texts["voice"]
    return found


def render(agent_name: str, sounds_dir: Path = SOUNDS, force: bool = False) -> list[Path]:
    """Render every missing or changed prompt; returns the files written."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: apt-get install -y espeak-ng sox")
    voices = voice_overrides(sounds_dir)
    stamps: dict[Path, dict[str, str]] = {}
    todo: list[tuple[str, str, str, Path]] = []  # (prompt id, text, voice, target)
    for prompt_id, texts in load_prompts(sounds_dir).items():
        for lang, text in texts.items():
            voice = voices.get(prompt_id, VOICES.get(lang, lang))
            text = text.replace("{agent_name}", agent_name)
            out_dir = sounds_dir / lang
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{prompt_id}.ulaw"
            if (out_dir / f"{prompt_id}.wav").exists():  # a studio recording wins
                target.unlink(missing_ok=True)
                continue
            stamp = out_dir / ".rendered.json"
            if stamp not in stamps:
                stamps[stamp] = json.loads(stamp.read_text()) if stamp.exists() else {}
            digest = hashlib.sha256(f"{voice}|{text}".encode()).hexdigest()[:16]
            if not force and target.exists() and stamps[stamp].get(prompt_id) == digest:
                continue
            todo.append((prompt_id, text, voice, target))
            stamps[stamp][prompt_id] = digest
    # espeak-ng and sox are one process each per prompt: run them on every core (414 prompts took
    # about a minute one after the other — at every first start, and on each worker's first test)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: _synthesise(job[1], job[2], job[3]), todo))
    for stamp, done in stamps.items():  # only once every file is written: a failure re-renders next time
        if any(job[3].parent == stamp.parent for job in todo):
            stamp.write_text(json.dumps(done, indent=0, sort_keys=True))
    return [job[3] for job in todo]


def _synthesise(text: str, voice: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "tts.wav"
        # -s 150: a calm, clear pace (« voix calme, claire »)
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-t", "ul", str(target), "pad", "0.1", "0.2"],
                       check=True, capture_output=True)
