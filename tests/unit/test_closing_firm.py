"""Seed 002: the firm, courteous closing and the recorded-call notice, on the virtual-clock fake channel."""

from __future__ import annotations

from callflow.agents import latch
from callflow.agents.legs import CallNotes
from callflow.core.recorder import MemoryRecorder
from callflow.agents.closing import firm_closing, recorded_call_notice
from callflow.telephony.fake import CallerScript, FakeChannel


async def _setup(call_id: str):
    channel = FakeChannel(CallerScript(), channel_id=call_id)
    await channel.answer()
    recorder = MemoryRecorder()
    await recorder.start(call_id, number=None, started_at=0, flow="test", language="fr")
    return channel, recorder, CallNotes(recorder, call_id, channel)


async def test_closing_prompt_then_the_call_ends():
    channel, recorder, notes = await _setup("close-1")
    assert await firm_closing(channel, "close-1", notes)
    assert channel.prompts() == ["closing_firm"]
    play = channel.plays("closing_firm")[0]
    hangup = channel.system_hangups()[0]
    assert play.completed and hangup.at >= play.end  # the goodbye is heard to the end, then the call ends
    assert recorder.calls["close-1"].kinds("closing") == ["closing_firm"]


async def test_never_closed_during_an_emergency():
    channel, recorder, notes = await _setup("close-emergency")
    latch.latch("close-emergency")
    assert not await firm_closing(channel, "close-emergency", notes)
    assert channel.prompts() == [] and channel.system_hangups() == []
    assert recorder.calls["close-emergency"].kinds("closing_refused")


async def test_recorded_call_notice_is_played_whole():
    channel, recorder, notes = await _setup("notice-1")
    await recorded_call_notice(channel, notes=notes)
    assert channel.prompts() == ["recorded_call_notice"] and channel.plays("recorded_call_notice")[0].completed
