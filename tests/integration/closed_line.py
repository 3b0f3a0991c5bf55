"""Seed 003's closed line on the real PBX: what the ARI and FastAGI closed-line tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import caller_audio as audio
from caller_audio import prompt_seconds
from callflow.pbx.sipp import Caller

NUMBER = "0612345678"


def cli(controller, *args: str) -> subprocess.CompletedProcess:
    """`callflow …` against the controller's own database."""
    return subprocess.run([sys.executable, "-m", "callflow.cli", *args, "--db", controller.env["CALLFLOW_STORE_DATABASE"]],
                          env=controller.env, capture_output=True, text=True,
                          timeout=120)  # the CLI alone took > 30 s at load average 28 (2 cores)


def close_the_line(controller_process) -> None:
    """The supervisor closes the line by hand (`callflow hours close`); it takes effect on the next call."""
    done = cli(controller_process, "hours", "close", "--by", "test")
    assert done.returncode == 0, done.stderr


def message_caller(d: Path, *, speak_at: float, speak_for: float, total: float) -> Path:
    """Talks 3 s at once (a person: the closed line invites to a message), then again into the recording."""
    x = np.zeros(int(total * audio.SR))
    x[: 3 * audio.SR] = audio.speech(21, 3)
    start = int(speak_at * audio.SR)
    x[start: start + int(speak_for * audio.SR)] = audio.speech(22, speak_for)
    return audio.write_ulaw(d / f"message-{speak_at:.0f}.ulaw", x)


def urgent_message_caller(d: Path) -> Caller:
    """Leaves a message, hears it back, confirms it (1), says it is urgent (1), then hangs up."""
    invite = prompt_seconds("message_invite")
    speak_at = 3 + invite + 2  # after the beep, whatever the speech detection's latency (1–3 s)
    hash_at = speak_at + 7
    # « Voici votre message » + the recording played back (from the beep to #) + « Pour le confirmer, tapez 1 »
    confirm_end = hash_at + 1 + prompt_seconds("message_playback") + (hash_at - 3 - invite) + prompt_seconds("message_confirm")
    caller = Caller().audio(message_caller(d, speak_at=speak_at, speak_for=6, total=hash_at + 90))
    caller.pause(hash_at).press("#").pause(confirm_end + 1.5 - hash_at - 0.6)
    caller.press("1").pause(prompt_seconds("message_motive") + 1.5).press("1")
    caller.pause(prompt_seconds("message_thanks_urgent") + 3)
    return caller
