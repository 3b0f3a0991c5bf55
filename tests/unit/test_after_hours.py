"""Seed 003 on the fake channel: the closed line runs seed 000 behind its message and takes messages."""

from __future__ import annotations

import dataclasses

import pytest

from callflow.core.channel import AudioState
from callflow.agents.after_hours import CLOSED_GREETING, HoursHandoffs, MessageDesk
from callflow.store.messages import Messages
from callflow.telephony.fake import CallerScript, FakeCall, FakeHandoffs, Sound, press


# talks at once (the message itself is in the recording), then quiet on the line
TALKS_THEN_QUIET = [Sound(0.0, AudioState.SPEECH, level_dbfs=-20), Sound(5.0, AudioState.SILENCE)]


@pytest.fixture
async def tickets():
    store = await Messages.open(":memory:")
    yield store
    await store.close()


def closed_line(script: CallerScript, tickets: Messages, until_opening: float = 3600.0) -> FakeCall:
    fake = FakeCall(script)
    handoffs = HoursHandoffs(fake.handoffs, lambda: until_opening)
    desk = MessageDesk(tickets=tickets, recorder=fake.recorder, handoffs=handoffs,
                       seconds_until_opening=lambda: until_opening)
    fake.deps = dataclasses.replace(fake.deps, agents=desk, handoffs=handoffs, closed_line=True)
    return fake


async def test_a_caller_who_speaks_leaves_a_confirmed_urgent_message_and_is_called_back_at_opening(tickets):
    script = CallerScript(sounds=TALKS_THEN_QUIET, messages=[12.0],
                          replies={"message_confirm": [press("1")], "message_motive": [press("1")]},
                          hangs_up_at=90.0)
    fake = await closed_line(script, tickets).run()
    prompts = fake.channel.prompts()
    assert prompts[0] == CLOSED_GREETING and "greeting" not in prompts and "to_agent" not in prompts
    assert prompts.index("message_invite") < prompts.index("message_playback") < prompts.index("message_confirm") \
        < prompts.index("message_motive") < prompts.index("message_thanks_urgent")
    assert len(fake.channel.recordings()) == 1
    [ticket] = await tickets.list()
    assert ticket.motive == "urgent" and ticket.confirmed and ticket.source == "closed"
    assert ticket.recording == fake.channel.recordings()[0].detail and ticket.duration == 12.0
    assert ticket.number == "+33612345678"
    kind, req = fake.handoffs.requests[-1]
    assert kind == "callback" and req["delay_seconds"] == 3600.0 and ticket.id in req["reason"]
    assert ticket.callback_id == f"msg-{len(fake.handoffs.requests)}"
    assert ("ticket" in [k for _, k, _ in fake.record.links])
    assert fake.channel.hung_up_by == "caller"  # never hung up by us after the message


async def test_re_record_then_normal_motive_no_callback(tickets):
    script = CallerScript(sounds=TALKS_THEN_QUIET, messages=[5.0, 8.0],
                          replies={"message_confirm": [press("2"), press("1")], "message_motive": [press("2")]},
                          hangs_up_at=120.0)
    fake = await closed_line(script, tickets).run()
    assert len(fake.channel.recordings()) == 2
    [ticket] = await tickets.list()
    assert ticket.motive == "normal" and ticket.duration == 8.0
    assert ticket.recording == fake.channel.recordings()[1].detail
    assert "callback" not in fake.handoffs.kinds()


async def test_a_caller_who_hangs_up_after_speaking_keeps_the_message(tickets):
    # talks 20 s into the recording and hangs up without pressing anything
    script = CallerScript(sounds=TALKS_THEN_QUIET, messages=[60.0], hangs_up_at=30.0)
    fake = await closed_line(script, tickets).run()
    [ticket] = await tickets.list()
    assert not ticket.confirmed and ticket.motive == "normal" and ticket.duration > 10
    assert fake.record.kinds("message_kept") and fake.channel.hung_up_by == "caller"


async def test_a_silent_caller_out_of_hours_still_gets_seed_000(tickets):
    """Never a bare answering machine: audio check, cas C's warnings, a hang-up only after them."""
    script = CallerScript(sounds=[Sound(0.0, AudioState.SILENCE)])
    fake = await closed_line(script, tickets).run()
    prompts = fake.channel.prompts()
    assert prompts[0] == CLOSED_GREETING and "audio_check" in prompts and "dead_line_final" in prompts
    assert fake.channel.hung_up_by == "system" and fake.channel.system_hangups()[0].at >= 30
    assert await tickets.list() == []


async def test_distress_out_of_hours_asks_the_emergency_question(tickets):
    script = CallerScript(sounds=[Sound(0.0, AudioState.SILENCE), Sound(8.0, AudioState.BREATHING, distress=True, level_dbfs=-30)],
                          replies={"q_emergency": [press("1")]})
    fake = await closed_line(script, tickets).run()
    assert "q_emergency" in fake.channel.prompts()
    assert fake.emergency.started  # the emergency line is called whatever the hours


async def test_callbacks_promised_while_closed_are_due_at_opening():
    inner = FakeHandoffs()
    handoffs = HoursHandoffs(inner, lambda: 7200.0)
    await handoffs.schedule_callback("c", "+33612345678", delay_seconds=300, reason="rappel")
    assert inner.requests[0][1]["delay_seconds"] == 7200.0 and "ouverture" in inner.requests[0][1]["reason"]
    open_now = HoursHandoffs(inner, lambda: 0.0)
    await open_now.schedule_callback("c", "+33612345678", delay_seconds=300, reason="rappel")
    assert inner.requests[1][1]["delay_seconds"] == 300


DISTRESS = [Sound(0.0, AudioState.SILENCE), Sound(16.0, AudioState.BREATHING, level_dbfs=-30, distress=True)]


async def test_cas_d_out_of_hours_offers_and_confirms_a_callback_at_the_reopening_never_in_5_minutes(tickets):
    """Seed 003: a callback promised while closed is due at the next opening, and the caller hears so."""
    replies = {"q_emergency": [press("2")], "q_distress_callback_closed": [press("1")]}
    fake = await closed_line(CallerScript(sounds=DISTRESS, replies=replies, hangs_up_at=150.0), tickets).run()
    prompts = fake.channel.prompts()
    assert "q_distress_callback_closed" in prompts and "q_distress_callback" not in prompts, prompts
    assert "callback_sent_opening" in prompts and "callback_sent" not in prompts, prompts
    kind, request = fake.handoffs.requests[0]  # the cas D callback (a later one may come from a message)
    assert kind == "callback" and request["delay_seconds"] == 3600.0 and "détresse" in request["reason"]


async def test_keypad_callback_out_of_hours_is_confirmed_for_the_reopening(tickets):
    replies = {"q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
               "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_fallback": [press("2")]}
    breathing = [Sound(0.0, AudioState.SILENCE), Sound(12.0, AudioState.BREATHING)]
    fake = closed_line(CallerScript(sounds=breathing, replies=replies, number=None, hangs_up_at=150.0), tickets)
    fake.handoffs.refuse = {"sms": "anonymous"}
    await fake.run()
    prompts = fake.channel.prompts()
    assert "callback_sent_opening" in prompts and "callback_sent" not in prompts, prompts


async def test_messages_store_orders_urgent_first_and_marks_done(tickets):
    clock = iter(range(1000, 2000))
    tickets.clock = lambda: float(next(clock))
    a = await tickets.add(call_id="a", number=None, language="fr", source="closed", motive="normal",
                          recording="r1", duration=3.0, confirmed=True)
    b = await tickets.add(call_id="b", number="+33612345678", language="en", source="overflow", motive="urgent",
                          recording="r2", duration=4.0, confirmed=False)
    assert [t.id for t in await tickets.list()] == [b.id, a.id]
    assert await tickets.done(b.id, by="2001", note="rappelé")
    assert not await tickets.done(b.id)
    assert [t.id for t in await tickets.list()] == [a.id]
    assert [t.status for t in await tickets.list(status=None)] == ["done", "open"]
    with pytest.raises(ValueError):
        await tickets.add(call_id="c", number=None, language="fr", source="closed", motive="vital",
                          recording=None, duration=None, confirmed=True)
    assert await tickets.override() == "auto"
    await tickets.set_override("closed", by="sup")
    assert await tickets.override() == "closed"
    with pytest.raises(ValueError):
        await tickets.set_override("maybe")


async def test_a_caller_who_says_nothing_into_three_recordings_stays_with_the_flow(tickets):
    """No message, still on the line: never sent on to a ring group nobody answers out of hours."""
    script = CallerScript(sounds=TALKS_THEN_QUIET, messages=[], hangs_up_at=200.0)
    fake = await closed_line(script, tickets).run()
    recordings = fake.channel.recordings()
    assert len(recordings) >= 3 and fake.channel.prompts().count("message_empty") == len(recordings)
    assert await tickets.list() == []
    assert not [e for e in fake.channel.log if e.kind == "continue"]  # never to the agents' dialplan
    # the caller spoke, so the quiet line is never hung up (issue 11, safety rule B): after three empty
    # recordings the flow goes on and the closed line's « person » — the message desk — takes them again
    assert len(recordings) > 3 and fake.channel.system_hangups() == []
    assert "dead_line_final" not in fake.channel.prompts()
