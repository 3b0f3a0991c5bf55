"""Keypad fallback: 1 = oui, 2 = non, 3 = aidant; timeouts, re-prompts, invalid keys, taps, barge-in, bursts."""

from __future__ import annotations

import pytest

from callflow.core.call import Call
from callflow.core.channel import AudioState
from callflow.core.recorder import MemoryRecorder
from callflow.flows.keypad import (
    CAREGIVER,
    EMAIL,
    NO,
    Q_HEARS,
    Q_PREFERENCE,
    Q_TECHNICAL,
    SMS,
    YES,
    ask,
    questionnaire,
)
from callflow.flows.session import FlowCall, LanguageRequested
from callflow.flows.timers import SilentCallTimers
from callflow.telephony.fake import CallerScript, FakeCall, Reply, FakeChannel, Sound, press, tap, typed


async def make_call(script: CallerScript, **timers) -> tuple[FlowCall, FakeChannel, MemoryRecorder]:
    channel = FakeChannel(script)
    recorder = MemoryRecorder()
    ctx = Call(call_id="k-1").attach(channel)
    call = FlowCall(ctx, recorder, SilentCallTimers(**timers).validate(), channel.clock)
    await recorder.start("k-1", number=channel.caller.number, started_at=0.0, flow="test", language="fr")
    await channel.answer()
    return call, channel, recorder


@pytest.mark.parametrize(
    "reply, expected",
    [(press("1"), YES), (press("2"), NO), (press("3"), CAREGIVER), (tap(1), YES), (tap(2), NO)],
)
async def test_yes_no_by_key_or_tap(reply, expected):
    call, channel, recorder = await make_call(CallerScript(replies={"q_technical": [reply]}))
    assert await ask(call, Q_TECHNICAL) == expected
    assert recorder.calls["k-1"].kinds("answer") == [f"probleme_technique={expected}"]
    assert call.answers == {"probleme_technique": expected}


@pytest.mark.parametrize("reply, expected", [(tap(1), SMS), (tap(2), EMAIL), (tap(3), CAREGIVER), (press("3"), CAREGIVER)])
async def test_three_way_choice_accepts_3_taps(reply, expected):
    call, _, _ = await make_call(CallerScript(replies={"q_preference": [reply]}))
    assert await ask(call, Q_PREFERENCE) == expected


async def test_timeout_reprompts_then_gives_up():
    call, channel, recorder = await make_call(CallerScript())
    assert await ask(call, Q_HEARS) is None
    asked = channel.plays("q_hears")
    assert len(asked) == 1 + 3  # the question and 3 re-prompts
    for before, after in zip(asked, asked[1:]):
        assert after.at - before.end == pytest.approx(8.0)  # default question timeout
    record = recorder.calls["k-1"]
    assert record.kinds("timeout") == ["m_entendez_vous"] * 4
    assert record.kinds("no_answer") == ["m_entendez_vous"]


async def test_timeout_and_reprompts_follow_the_timers():
    call, channel, _ = await make_call(CallerScript(), question_timeout=12.0, reprompts=1)
    assert await ask(call, Q_HEARS) is None
    asked = channel.plays("q_hears")
    assert len(asked) == 2 and asked[1].at - asked[0].end == pytest.approx(12.0)


async def test_answer_after_two_timeouts_is_taken():
    # 0–4 ask, 4–12 wait; 12–16 ask again, 16–24 wait; 24–28 third time: the late 1 (4 + 30 = 34) answers it
    call, channel, recorder = await make_call(CallerScript(replies={"q_hears": [press("1", after=30), press("2", after=30)]}))
    assert await ask(call, Q_HEARS) == YES
    assert len(channel.plays("q_hears")) == 3
    assert recorder.calls["k-1"].kinds("timeout") == ["m_entendez_vous"] * 2


async def test_invalid_key_says_je_n_ai_pas_compris_and_asks_again():
    call, channel, recorder = await make_call(CallerScript(replies={"q_technical": [press("7"), press("2")]}))
    assert await ask(call, Q_TECHNICAL) == NO
    assert channel.prompts() == ["q_technical", "not_understood", "q_technical"]
    assert recorder.calls["k-1"].kinds("invalid") == ["probleme_technique: key 7"]


async def test_three_taps_are_invalid_for_a_yes_no_question():
    call, channel, _ = await make_call(CallerScript(replies={"q_technical": [tap(3), tap(1)]}))
    assert await ask(call, Q_TECHNICAL) == YES
    assert "not_understood" in channel.prompts()


async def test_only_invalid_keys_give_up_after_the_reprompts():
    call, channel, _ = await make_call(CallerScript(replies={"q_technical": [press("8")] * 10}))
    assert await ask(call, Q_TECHNICAL) is None
    assert len(channel.plays("q_technical")) == 4


async def test_barge_in_a_key_stops_the_prompt_at_once_and_is_the_answer():
    call, channel, _ = await make_call(CallerScript(replies={"q_preference": [press("2", after=-3)]}))
    assert await ask(call, Q_PREFERENCE) == EMAIL
    (play,) = channel.plays("q_preference")
    assert play.completed is False
    assert play.end == pytest.approx(play.at + 1.0)  # 4 s prompt cut after 1 s


async def test_a_burst_of_the_same_digit_answers_one_question_only():
    script = CallerScript(replies={"q_technical": [press("1", repeat=8)], "q_hears": [press("2")]})
    call, channel, recorder = await make_call(script)
    assert await ask(call, Q_TECHNICAL) == YES
    assert await ask(call, Q_HEARS) == NO  # not the duplicated 1s
    assert channel.plays("q_hears")[0].completed  # the burst did not cut the next question short
    assert len(recorder.calls["k-1"].kinds("ignored")) == 7


async def test_a_burst_spread_over_more_than_half_a_second_still_answers_one_question_only():
    """Seen on the loaded sandbox PBX: one press of 1 reported 8 times over 0.6 s; the last copies
    answered the next question (« problème technique ? » = oui) before its prompt was even heard."""
    script = CallerScript(replies={"q_technical": [Reply(typed="11111111", gap=0.09)], "q_hears": [press("2")]})
    call, channel, recorder = await make_call(script)
    assert await ask(call, Q_TECHNICAL) == YES
    assert await ask(call, Q_HEARS) == NO  # not a duplicated 1
    assert len(recorder.calls["k-1"].kinds("ignored")) == 7


async def test_key_9_asks_for_another_language():
    call, _, _ = await make_call(CallerScript(replies={"q_hears": [press("9")]}))
    with pytest.raises(LanguageRequested):
        await ask(call, Q_HEARS)


# -- the questionnaire, seed order --------------------------------------------------------
SEED = {"q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
        "q_preference": [press("1")], "q_confirm_sms": [press("1")]}


async def test_questionnaire_in_the_seed_order():
    call, channel, _ = await make_call(CallerScript(replies=SEED))
    preference = await questionnaire(call)
    assert preference.channel == SMS
    assert channel.prompts() == [
        "q_hears", "taps_explained", "q_technical", "q_difficulty", "understood", "q_preference", "q_confirm_sms",
    ]
    assert list(preference.answers) == [
        "m_entendez_vous", "probleme_technique", "difficulte_a_parler", "preference", "confirmation_sms",
    ]


async def test_no_to_the_confirmation_offers_the_choice_again():
    replies = dict(SEED, q_preference=[press("1"), press("2")], q_confirm_sms=[press("2")], q_confirm_email=[press("1")])
    call, channel, _ = await make_call(CallerScript(replies=replies))
    assert (await questionnaire(call)).channel == EMAIL
    assert channel.prompts()[-4:] == ["q_preference", "q_confirm_sms", "q_preference", "q_confirm_email"]


async def test_key_3_at_any_yes_no_question_goes_to_the_caregiver():
    replies = {"q_hears": [press("1")], "q_technical": [press("3")], "q_confirm_caregiver": [press("1")]}
    call, channel, _ = await make_call(CallerScript(replies=replies))
    preference = await questionnaire(call)
    assert preference.channel == CAREGIVER
    assert "q_difficulty" not in channel.prompts()


async def test_cannot_hear_skips_the_spoken_questions():
    call, channel, _ = await make_call(CallerScript(replies={"q_hears": [tap(2)]}))
    preference = await questionnaire(call)
    assert preference.channel == SMS and preference.cannot_hear
    assert channel.prompts() == ["q_hears"]


async def test_silence_ends_the_questionnaire_without_a_channel():
    call, _, _ = await make_call(CallerScript(replies={"q_hears": [press("1")]}))
    assert (await questionnaire(call)).channel is None


# -- caregiver end to end (callflow/flows/caregiver.py) ------------------------------------
async def test_caregiver_choice_keys_in_the_number_and_schedules_the_call():
    replies = dict(
        SEED,
        q_preference=[tap(3)],
        q_confirm_caregiver=[press("1")],
        caregiver_enter_number=[typed("0612345678#")],
        caregiver_confirm=[press("1")],
    )
    script = CallerScript(sounds=[Sound(0, AudioState.BREATHING)], replies=replies, hangs_up_at=400)
    fake = await FakeCall(script).run()
    (kind, request), = fake.handoffs.requests
    assert kind == "callback" and request["target"] == "caregiver" and request["number"] == "+33612345678"
    assert fake.record.kinds("handoff")[0].startswith("aidant")
    prompts = fake.channel.prompts()
    assert prompts[prompts.index("caregiver_scheduled") + 1] == "caregiver_sent"
