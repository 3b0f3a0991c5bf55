"""Line tones heard on a real call (issue 12, item 3): a real Asterisk, a SIPp caller whose RTP is a
busy tone, the same wiring as `callflow run`. The record's audio timeline says « line_tone », the
tone is never taken for a caller (no speech, taps or breathing), and the call ends as a line with
nobody on it, after the seed's wait (« attend 20–30 secondes au total »)."""

from __future__ import annotations

import caller_audio as audio
import numpy as np
from callflow.pbx.sipp import Caller, start_sipp

NUMBER = "0612345678"


def busy_tone(seconds: float, level_dbfs: float = -20.0) -> np.ndarray:
    """The French busy tone (440 Hz, 0.5 s on / 0.5 s off) over the line's hiss."""
    t = np.arange(audio.seconds(seconds)) / audio.SR
    on = (t % 1.0) < 0.5
    tone = np.sin(2 * np.pi * 440 * t) * on * np.sqrt(2) * 10 ** (level_dbfs / 20)
    return tone + audio.synth.hiss(31, seconds)


async def test_a_busy_tone_on_the_line_is_noted_and_never_taken_for_a_caller(controller, tmp_path):
    # The procedure takes ~112 s here (greeting, audio check, cas A's question asked four times, the final
    # warning and its 10 s): the tone lasts longer than that, and the wait leaves room for a loaded PBX.
    f = audio.write_ulaw(tmp_path / "busy.ulaw", busy_tone(160))
    caller = Caller().audio(f)  # sends the tone and waits for our BYE
    run = await start_sipp(caller.xml(caller_number=NUMBER, hang_up=False), name="busy-tone", timeout_s=220)
    assert await run.wait(180) == 0, run.errors()  # the caller got our BYE
    call = await controller.wait_for_event("call in")
    record = await controller.record(call["call"])
    states = [segment["state"] for segment in record["audio"]]
    assert "line_tone" in states, record["audio"]
    assert not {"speech", "taps", "breathing"} & set(states), record["audio"]
    # Nobody there: the dead-line procedure ran to its end (final warning, then the hang-up).
    assert record["hung_up_by"] == "system", record["actions"]
    assert record["call_type"] == "muet_complet", record["call_type"]
    kinds = [(a["kind"], a["detail"]) for a in record["actions"]]
    assert ("prompt", "dead_line_final") in kinds, kinds
    assert record["duration"] >= 30
