"""Seed 002: the firm, courteous closing in three steps and the recorded-call notice, on the virtual-clock fake."""

from __future__ import annotations

from callflow.agents import latch
from callflow.agents.legs import CallNotes
from callflow.core.recorder import MemoryRecorder
from callflow.flows.closing import CLOSING_STEPS, firm_closing, recorded_call_notice
from callflow.telephony.fake import CallerScript, FakeChannel, load_prompts


async def _setup(call_id: str, hangs_up_at: float | None = None):
    channel = FakeChannel(CallerScript(hangs_up_at=hangs_up_at), channel_id=call_id, prompts=load_prompts())
    await channel.answer()
    recorder = MemoryRecorder()
    await recorder.start(call_id, number=None, started_at=0, flow="test", language="fr")
    return channel, recorder, CallNotes(recorder, call_id, channel)


async def test_a_caller_who_stays_hears_three_steps_then_the_call_ends():
    channel, recorder, notes = await _setup("close-1")
    assert await firm_closing(channel, "close-1", notes, step_wait=0.01)
    assert channel.prompts() == list(CLOSING_STEPS)
    goodbye = channel.plays("closing_step_3")[0]
    hangup = channel.system_hangups()[0]
    assert goodbye.completed and hangup.at >= goodbye.end  # the goodbye is heard to the end, then BYE
    record = recorder.calls["close-1"]
    assert record.kinds("closing_step") == ["1: closing_step_1", "2: closing_step_2", "3: closing_step_3"]
    assert record.kinds("closing_done") == ["call ended after step 3 (goodbye)"]


async def test_the_seeds_wording():
    fr = {k: v["fr"] for k, v in load_prompts().items()}
    assert "Alors on va terminer cette conversation." in fr["closing_step_1"]
    assert "Je ne peux pas faire plus pour vous." in fr["closing_step_2"]
    assert fr["closing_step_3"].endswith("Au revoir.")


async def test_a_caller_who_hangs_up_after_the_first_step_ends_it_there():
    # step 1 lasts 4 s on the fake; the caller hangs up 1 s later, during the wait
    channel, recorder, notes = await _setup("close-2", hangs_up_at=5.0)
    assert await firm_closing(channel, "close-2", notes, step_wait=60)
    assert channel.prompts() == ["closing_step_1"] and channel.system_hangups() == []
    assert recorder.calls["close-2"].kinds("closing_done") == ["the caller hung up after step 1"]


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
