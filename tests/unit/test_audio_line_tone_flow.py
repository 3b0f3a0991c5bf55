"""Line tones (issue 12): noted on the call record's audio timeline, never a sign of life."""

from __future__ import annotations

from callflow.core.channel import SIGNS_OF_LIFE, AudioState as S
from callflow.telephony.fake import CallerScript, FakeCall, Sound


def test_a_line_tone_is_not_a_sign_of_life():
    assert S.LINE_TONE not in SIGNS_OF_LIFE


async def test_a_busy_tone_on_the_line_shows_on_the_record_timeline():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(6, S.LINE_TONE), Sound(20, S.BREATHING)], hangs_up_at=60)
    record = (await FakeCall(script).run()).record
    states = [segment[2] for segment in record.timeline]
    assert "line_tone" in states
    # The breathing that follows is still heard as a person (the tone did not hide it).
    assert "breathing" in states[states.index("line_tone"):]
