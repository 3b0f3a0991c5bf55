"""Texts known only during the call (the briefing card, an address on file) turned into prompts.

The fixed prompts are rendered ahead of time (`callflow prompts render`). The
supervisor's whisper and the emergency operator's announcement also carry a few
words typed by the agent or read from the client's file: this renders them at
call time with the same offline voice (espeak-ng → 8 kHz μ-law) straight into
the directory Asterisk plays our sounds from, and returns a prompt id
(`dyn/<digest>`) any Channel can play. Disabled (None) unless configured; any
failure just leaves the fixed prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VOICES = {"fr": "fr-fr", "en": "en-gb", "es": "es", "it": "it"}
MAX_CHARS = 400


class RuntimeSpeech:
    def __init__(self, sounds_root: str | Path, *, timeout: float = 10.0) -> None:
        """sounds_root: Asterisk's sounds/<prefix> directory (e.g. …/sounds/callflow), holding <lang>/ folders."""
        self.root = Path(sounds_root)
        self.timeout = timeout

    async def prompt(self, text: str, language: str = "fr") -> str | None:
        text = " ".join(text.split())[:MAX_CHARS]
        if not text or shutil.which("espeak-ng") is None or shutil.which("sox") is None:
            return None
        digest = hashlib.sha256(f"{language}|{text}".encode()).hexdigest()[:20]
        target = self.root / language / "dyn" / f"{digest}.ulaw"
        if not target.exists():
            try:
                await asyncio.wait_for(asyncio.to_thread(self._render, text, language, target), self.timeout)
            except Exception:
                log.exception("runtime prompt not rendered")
                return None
        return f"dyn/{digest}"

    def _render(self, text: str, language: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "tts.wav"
            out = Path(tmp) / "out.ulaw"
            subprocess.run(["espeak-ng", "-v", VOICES.get(language, language), "-s", "160", "-w", str(raw), text],
                           check=True, capture_output=True, timeout=self.timeout)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-t", "ul", str(out), "pad", "0.1", "0.2"],
                           check=True, capture_output=True, timeout=self.timeout)
            shutil.move(str(out), target)  # whole file or nothing: Asterisk never plays half of one
            target.chmod(0o644)


def briefing_text(client: str, probleme: str, demande: str, avis: str = "") -> str:
    parts = [f"Client : {client}." if client else "", f"Problème : {probleme}." if probleme else "",
             f"Demande : {demande}." if demande else "", f"Avis du conseiller : {avis}." if avis else ""]
    return " ".join(p for p in parts if p)
