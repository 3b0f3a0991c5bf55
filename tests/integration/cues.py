"""Cue a scripted SIPp caller (callflow.pbx.sipp.Caller.wait_cue): it presses its next keys when told.

A real caller presses after hearing the question. A script on fixed seconds presses too early when a
loaded PBX runs late — the key then lands before the question and is rightly not taken as its answer
(seen in the merged suite: a prompt took 10 s instead of 5, the whole questionnaire shifted by one key).
The test waits for the question — Asterisk's own « Playing '…' » line on the caller's channel, or the
call record's note — then cues the caller.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


async def cue_caller(pbx, ari, channel_id: str) -> None:
    """Send the caller's channel the in-dialog NOTIFY its scenario waits for."""
    name = (await asyncio.to_thread(ari.get, f"channels/{channel_id}"))["name"]
    await asyncio.to_thread(pbx.cli, f"pjsip send notify callflow-test-cue channel {name}")


class PromptWatch:
    """Asterisk's « Playing 'callflow/<lang>/<prompt>… » lines for one channel, each taken once, in order."""

    def __init__(self, log_file: Path) -> None:
        self.path = log_file
        self.pos = log_file.stat().st_size if log_file.exists() else 0

    async def next(self, prompt: str, channel_name: str, *, lang: str = "fr", timeout: float = 60.0,
                   prefix: str | None = None) -> str:
        """prefix: where the sound lives ('' for Asterisk's own, e.g. the recording's beep)."""
        folder = f"callflow/{lang}/" if prefix is None else prefix
        needle = f"Playing '{folder}{prompt}."
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                chunk = fh.read()
            offset = 0
            for raw in chunk.splitlines(keepends=True):
                if not raw.endswith(b"\n"):
                    break  # a line still being written: read it whole next time
                offset += len(raw)
                line = raw.decode(errors="replace")
                if needle in line and channel_name in line:
                    self.pos += offset
                    return line
            await asyncio.sleep(0.1)
        raise AssertionError(f"{needle!r} on {channel_name} not in Asterisk's log within {timeout} s")
