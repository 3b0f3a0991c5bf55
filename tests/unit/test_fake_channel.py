"""The fake channel keeps its promises: virtual time, barge-in, queued keys, caller hang-up."""

from __future__ import annotations

import pytest

from callflow.core.channel import AudioState, CallerHungUp, Channel
from callflow.telephony.fake import CallerScript, FakeChannel, FakeMisuse, Sound, burst, key, press, taps


def test_it_is_a_channel():
    assert isinstance(FakeChannel(), Channel)


async def test_prompts_and_waits_advance_the_virtual_clock():
    channel = FakeChannel(prompt_seconds={"greeting": 3.5})
    await channel.answer()
    await channel.play("greeting")
    assert channel.now == 3.5
    assert await channel.next_input(8.0) is None
    assert channel.now == 11.5


async def test_next_input_returns_the_key_at_its_time():
    channel = FakeChannel(CallerScript(inputs=[key(5.0, "1"), taps(6.0, 2)]))
    got = await channel.next_input(10.0)
    assert got.digit == "1" and channel.now == 5.0
    assert (await channel.next_input(10.0)).count == 2


async def test_taps_can_be_refused():
    channel = FakeChannel(CallerScript(inputs=[taps(1.0, 2), key(2.0, "#")]))
    assert (await channel.next_input(5.0, accept_taps=False)).digit == "#"


async def test_barge_in_stops_the_prompt_and_leaves_the_key_queued():
    channel = FakeChannel(CallerScript(inputs=[key(1.5, "2")]))
    result = await channel.play("q", barge_in=True)
    assert not result.completed and result.interrupted_by.digit == "2"
    assert channel.now == 1.5
    assert (await channel.next_input(0)).digit == "2"


async def test_without_barge_in_the_prompt_plays_to_the_end():
    channel = FakeChannel(CallerScript(inputs=[key(1.5, "2")]))
    assert (await channel.play("q", barge_in=False)).completed
    assert channel.now == 4.0
    assert (await channel.next_input(0)).digit == "2"


async def test_replies_answer_a_prompt():
    channel = FakeChannel(CallerScript(replies={"q": [press("1", after=2.0)]}))
    await channel.play("q")
    got = await channel.next_input(10)
    assert got.digit == "1" and got.at == 6.0


async def test_flush_forgets_a_burst():
    channel = FakeChannel(CallerScript(inputs=burst(1.0, "1", n=5)))
    assert (await channel.next_input(5)).at == 1.0
    await channel.play("q", barge_in=False)  # time moves past the burst
    channel.flush_input()
    assert await channel.next_input(5) is None


async def test_readings_every_half_second_while_listening_only():
    channel = FakeChannel(CallerScript(sounds=[Sound(0, AudioState.SILENCE), Sound(2, AudioState.BREATHING)]))
    assert await channel.next_reading(1.0) is None
    await channel.start_listening()
    states = []
    while channel.now < 3.0:
        states.append((await channel.next_reading(1.0)).state)
    # listening from t=1.0: readings at 1.5, 2.0, 2.5, 3.0
    assert states == [AudioState.SILENCE] + [AudioState.BREATHING] * 3


async def test_readings_missed_during_a_prompt_are_queued():
    channel = FakeChannel()
    await channel.start_listening()
    await channel.play("long")
    readings = []
    while (r := await channel.next_reading(0)) is not None:
        readings.append(r.at)
    assert readings == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


async def test_caller_hang_up_interrupts_a_wait():
    channel = FakeChannel(CallerScript(hangs_up_at=3.0))
    with pytest.raises(CallerHungUp):
        await channel.next_input(10.0)
    assert channel.now == 3.0 and channel.hung_up_by == "caller"
    with pytest.raises(CallerHungUp):
        await channel.play("greeting")


async def test_system_hang_up_is_logged():
    channel = FakeChannel()
    await channel.answer()
    await channel.hang_up("ligne morte")
    assert [e.detail for e in channel.system_hangups()] == ["ligne morte"]
    assert not channel.is_up


async def test_using_the_channel_after_the_dialplan_took_it_is_a_bug():
    channel = FakeChannel()
    await channel.continue_in_dialplan("agents")
    with pytest.raises(FakeMisuse):
        await channel.play("greeting")


async def test_a_call_that_never_ends_fails_instead_of_hanging():
    channel = FakeChannel(max_seconds=60)
    with pytest.raises(FakeMisuse):
        while True:
            await channel.next_input(8.0)
