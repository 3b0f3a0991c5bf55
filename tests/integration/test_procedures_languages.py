"""Issue 16 item 6 on the real PBX (`callflow run` wiring): an English caller reaches the English-speaking agent,
although a French-only agent has been idle longer."""

from __future__ import annotations

import numpy as np
from polling import never

import caller_audio as audio
from caller_audio import prompt_seconds
from callflow.pbx.sipp import Caller, start_sipp

NUMBER = "0612345678"


async def test_an_english_caller_reaches_the_english_speaking_agent(controller_process, phones, tmp_path, asterisk_log):
    controller_process.env["CALLFLOW_AGENTS_LANGUAGES"] = '["2002:fr/en"]'
    controller_process.start()
    french = await phones("2001")  # registered first: the longest idle
    english = await phones("2002")
    # 9 during the listening after the greeting, 1 = English, then the caller speaks (in English)
    key9 = prompt_seconds("greeting") + 1
    speak_at = key9 + 4 + 0.6 + prompt_seconds("lang_ok", "en") + 1.5
    x = np.zeros(int((speak_at + 60) * audio.SR))
    x[int(speak_at * audio.SR): int((speak_at + 6) * audio.SR)] = audio.speech(51, 6)
    caller = Caller().audio(audio.write_ulaw(tmp_path / "english.ulaw", x)).pause(key9).press("9").pause(4).press("1")
    caller.pause(speak_at + 25 - key9 - 4 - 1.2)
    run = await start_sipp(caller.xml(caller_number=NUMBER), name="english-agent", timeout_s=90)
    call = (await controller_process.wait_for_event("call in", timeout=20))["call"]
    assert await run.wait(80) == 0, run.errors()
    assert await english.run.wait(20) == 0, english.run.errors()  # rang, answered, got our BYE
    record = await controller_process.record(call)
    rings = [a["detail"] for a in record["actions"] if a["kind"] == "agent_ring"]
    assert rings and rings[0] == "2002", record["actions"]
    assert "2001" not in rings
    assert [a["detail"] for a in record["actions"] if a["kind"] == "agent_queue"][0].startswith("en")
    await never(lambda: french.run.proc.returncode is not None, "the French-only agent's phone rang", within=0.5)
    await asterisk_log.wait_for("Playing 'callflow/en/to_agent")
