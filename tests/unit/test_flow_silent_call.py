"""Seed 000 « Appel muet », end to end on the fake channel (virtual clock, no sleeping)."""

from __future__ import annotations

import pytest

from callflow.core.channel import AudioState as S
from callflow.core.recorder import CallType, Cause, HungUpBy
from callflow.flows.timers import SilentCallTimers
from callflow.telephony.fake import CallerScript, FakeCall, Sound, key, press, tap, taps

BREATHING = [Sound(0, S.SILENCE), Sound(12, S.BREATHING)]
PHASE_3 = 25.0  # greeting 0–4, listen 4–7, audio_check 7–11, language_hint 11–15, listen 15–25


def seed_replies(reply):
    """Section 10: 1 (m'entend), 2 (pas technique), 1 (difficulté), 1 (SMS), 1 (confirme), 1 (SMS reçu)."""
    return {
        "q_hears": [reply(1)],
        "q_technical": [reply(2)],
        "q_difficulty": [reply(1)],
        "q_preference": [reply(1)],
        "q_confirm_sms": [reply(1)],
        "q_sms_received": [reply(1)],
    }


def assert_never_hung_up_by_system(fake: FakeCall) -> None:
    assert fake.channel.system_hangups() == []
    assert fake.record.hung_up_by is not HungUpBy.SYSTEM


# -- Section 10: the seed's full example -------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [lambda n: press(str(n)), lambda n: tap(n), lambda n: press(str(n), repeat=8)],
    ids=["keys", "taps", "duplicated-dtmf-bursts"],
)
async def test_seed_example_breathing_to_sms(reply):
    script = CallerScript(sounds=BREATHING, replies=seed_replies(reply), hangs_up_at=120)
    fake = await FakeCall(script).run()

    prompts = fake.channel.prompts()
    assert prompts[:3] == ["greeting", "audio_check", "language_hint"]
    assert prompts[3:] == [
        "cas_b_reassure", "q_hears", "taps_explained", "q_technical", "q_difficulty", "understood",
        "q_preference", "q_confirm_sms", "sms_sent", "q_sms_received", "sms_closing",
    ]
    assert fake.handoffs.kinds() == ["sms"]
    assert fake.handoffs.requests[0][1]["number"] == "+33612345678"
    assert fake.handoffs.requests[0][1]["agent_name"] == "Jean"
    record = fake.record
    assert record.call_type is CallType.RESPIRATION
    assert record.cause is Cause.HANDICAP  # « J'ai une laryngite »
    assert record.kinds("answer") == [
        "m_entendez_vous=oui", "probleme_technique=non", "difficulte_a_parler=oui",
        "preference=sms", "confirmation_sms=oui", "sms_recu=oui",
    ]
    assert record.kinds("handoff") == ["sms msg-1"]
    assert record.links[0][1:] == ("outbox", "msg-1")
    # the caller hangs up after « À tout de suite par message »: not us
    assert record.hung_up_by is HungUpBy.CALLER
    assert_never_hung_up_by_system(fake)


async def test_phase_1_listens_2_to_3_seconds_before_phase_2():
    fake = await FakeCall(CallerScript(hangs_up_at=20)).run()
    greeting, check = fake.channel.plays("greeting")[0], fake.channel.plays("audio_check")[0]
    assert 2.0 <= check.at - greeting.end <= 3.0


# -- Cas C: dead line ----------------------------------------------------------
@pytest.mark.parametrize("total_wait", [20.0, 30.0, 45.0])
async def test_dead_line_warns_counts_down_then_hangs_up(total_wait):
    timers = SilentCallTimers(dead_line_total_wait=total_wait, after_handoff_wait=max(60.0, total_wait))
    fake = await FakeCall(CallerScript(), timers=timers).run()

    assert fake.channel.prompts() == ["greeting", "audio_check", "language_hint", "dead_line_final", "dead_line_goodbye"]
    assert fake.channel.plays("audio_check")[0].at <= 10.0  # « Phase 1 : Premiers 10 secondes »
    final = fake.channel.plays("dead_line_final")[0]
    assert final.at >= total_wait >= 20.0  # « attend 20–30 secondes au total », then « dernier essai »
    (hangup,) = fake.channel.system_hangups()
    assert hangup.at >= final.end + 10.0  # « Compte jusqu'à 10 »
    assert hangup.at >= 30.0
    assert fake.channel.hung_up_by == "system"
    record = fake.record
    assert record.call_type is CallType.MUET_COMPLET and record.cause is Cause.TECHNIQUE
    assert record.hung_up_by is HungUpBy.SYSTEM
    assert record.kinds("hangup") and not record.kinds("hangup_refused")


async def test_dead_line_default_hangs_up_after_the_seed_30_seconds():
    fake = await FakeCall(CallerScript()).run()
    assert fake.channel.plays("dead_line_final")[0].at == pytest.approx(30.0)
    assert fake.channel.system_hangups()[0].at >= 40.0


async def test_dead_line_countdown_cancelled_by_a_breath():
    # breathing starts during « je vais raccrocher dans 10 secondes »' countdown
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(38, S.BREATHING)], hangs_up_at=300)
    fake = await FakeCall(script).run()
    assert "dead_line_goodbye" not in fake.channel.prompts()
    assert "cas_b_reassure" in fake.channel.prompts()
    assert_never_hung_up_by_system(fake)


async def test_dead_line_key_during_final_warning_starts_the_questionnaire():
    script = CallerScript(replies={"dead_line_final": [press("1", after=-3)], "q_hears": [press("1")]}, hangs_up_at=80)
    fake = await FakeCall(script).run()
    assert fake.channel.plays("dead_line_final")[0].completed is False
    assert "q_hears" in fake.channel.prompts()
    assert_never_hung_up_by_system(fake)


# -- Caller-safety invariant ------------------------------------------------------------
async def test_breathing_caller_who_never_presses_is_never_hung_up():
    script = CallerScript(sounds=[Sound(0, S.BREATHING)])  # breathes forever, never hangs up
    fake = await FakeCall(script).run()

    assert_never_hung_up_by_system(fake)
    timers = fake.deps.timers
    asked = fake.channel.plays("q_hears")
    assert len(asked) == 1 + timers.reprompts  # spaced re-prompts…
    for before, after in zip(asked, asked[1:]):
        assert after.at - before.end >= timers.question_timeout
    # … then a person keeps them company, with the diagnosis
    (_, diagnosis, language), = fake.agents.handed
    assert "pas de réponse" in diagnosis.summary and language == "fr"
    assert diagnosis.call_type == CallType.RESPIRATION.value
    assert fake.channel.hung_up_by == "dialplan"
    assert fake.record.hung_up_by is HungUpBy.AGENT


async def test_after_a_handoff_a_caller_still_on_the_line_goes_to_an_agent():
    script = CallerScript(sounds=BREATHING, replies=seed_replies(lambda n: press(str(n))))
    fake = await FakeCall(script).run()
    assert fake.handoffs.kinds() == ["sms"]
    assert_never_hung_up_by_system(fake)
    assert "reste en ligne" in fake.agents.handed[0][1].summary


async def test_after_a_handoff_a_line_gone_quiet_goes_to_a_person_urgent_never_hung_up():
    """Issue 11 B: the caller answered keys, then went quiet: never a dead line, a person (urgent)."""
    script = CallerScript(
        sounds=[Sound(0, S.SILENCE), Sound(12, S.BREATHING), Sound(100, S.SILENCE)],
        replies=seed_replies(lambda n: press(str(n))),
    )
    fake = await FakeCall(script).run()
    assert_never_hung_up_by_system(fake)
    (_, diagnosis, _), = fake.agents.handed
    assert diagnosis.urgent and "signe de vie" in diagnosis.summary
    assert "dead_line_goodbye" not in fake.channel.prompts()


async def test_a_key_after_the_handoff_brings_a_person_at_once():
    replies = dict(seed_replies(lambda n: press(str(n))), sms_closing=[press("0", after=5)])
    fake = await FakeCall(CallerScript(sounds=BREATHING, replies=replies)).run()
    closing = fake.channel.plays("sms_closing")[0]
    assert fake.channel.plays("to_agent")[0].at == pytest.approx(closing.end + 5)
    assert "appuie encore" in fake.agents.handed[0][1].summary


async def test_loud_breathing_in_short_bursts_is_not_distress():
    sounds = [Sound(0, S.SILENCE)] + [
        Sound(t, S.BREATHING, level_dbfs=-25 if t % 4 == 0 else -50) for t in range(12, 300, 2)
    ]
    fake = await FakeCall(CallerScript(sounds=sounds, hangs_up_at=60)).run()
    assert "q_emergency" not in fake.channel.prompts()
    assert "cas_b_reassure" in fake.channel.prompts()


async def test_caller_hangs_up_mid_questionnaire_is_recorded_as_caller():
    script = CallerScript(sounds=BREATHING, replies={"q_hears": [press("1")]}, hangs_up_at=45)
    fake = await FakeCall(script).run()
    assert fake.record.hung_up_by is HungUpBy.CALLER
    assert fake.record.duration == pytest.approx(45.0)
    assert_never_hung_up_by_system(fake)


# -- Speech at any point → a person ------------------------------------------------------
async def test_speech_during_phase_1_goes_straight_to_an_agent():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH)])
    fake = await FakeCall(script).run()
    assert fake.channel.prompts() == ["greeting", "to_agent"]
    (_, diagnosis, language), = fake.agents.handed
    assert language == "fr" and "parole" in diagnosis.summary
    assert fake.record.call_type is CallType.PAROLE
    assert fake.channel.log[-1].detail == "agents,s,1"


async def test_speech_mid_questionnaire_goes_to_an_agent_with_the_answers():
    script = CallerScript(
        sounds=[Sound(0, S.SILENCE), Sound(12, S.BREATHING), Sound(45, S.SPEECH)],
        replies={"q_hears": [press("1")], "q_technical": [press("2", after=0.5)]},
    )
    fake = await FakeCall(script).run()
    (_, diagnosis, _), = fake.agents.handed
    assert diagnosis.answers.get("m_entendez_vous") == "oui"
    assert diagnosis.call_type == CallType.RESPIRATION.value
    assert_never_hung_up_by_system(fake)


async def test_a_single_low_confidence_speech_reading_is_not_speech():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH, confidence=0.3), Sound(5.4, S.SILENCE)])
    fake = await FakeCall(script).run()
    assert fake.agents.handed == []
    assert "audio_check" in fake.channel.prompts()


# -- Cas A: background noise ------------------------------------------------------------
async def test_cas_a_noise_tap_once_then_email_instructions():
    script = CallerScript(sounds=[Sound(0, S.BACKGROUND_NOISE)], replies={"q_noise_hears": [tap(1)]}, hangs_up_at=70)
    fake = await FakeCall(script).run()
    prompts = fake.channel.prompts()
    assert prompts[3:6] == ["cas_a_noise", "q_noise_hears", "cas_a_ok"]
    assert fake.handoffs.kinds() == ["email"]
    assert fake.record.call_type is CallType.BRUIT_DE_FOND and fake.record.cause is Cause.ENVIRONNEMENTALE
    assert_never_hung_up_by_system(fake)


async def test_cas_a_steady_noise_without_answer_ends_as_dead_line():
    fake = await FakeCall(CallerScript(sounds=[Sound(0, S.BACKGROUND_NOISE, level_dbfs=-40)])).run()
    assert len(fake.channel.plays("q_noise_hears")) == 4
    assert fake.channel.prompts()[-2:] == ["dead_line_final", "dead_line_goodbye"]
    assert len(fake.channel.system_hangups()) == 1


async def test_cas_a_noise_that_changes_is_a_sign_of_life():
    sounds = [Sound(t, S.BACKGROUND_NOISE, level_dbfs=-40 if (t // 5) % 2 else -25) for t in range(0, 200, 5)]
    fake = await FakeCall(CallerScript(sounds=sounds)).run()
    assert_never_hung_up_by_system(fake)
    assert "bruit de fond" in fake.agents.handed[0][1].summary


# -- Cas B: keys and taps only ------------------------------------------------------------
async def test_taps_in_phase_2_start_the_questionnaire_without_breathing_words():
    script = CallerScript(inputs=[taps(17, 1)], replies={"q_hears": [tap(1)]}, hangs_up_at=50)
    fake = await FakeCall(script).run()
    prompts = fake.channel.prompts()
    assert "cas_b_reassure" not in prompts
    assert prompts[3:5] == ["q_hears", "taps_explained"]


async def test_cas_b_caller_who_cannot_hear_gets_an_sms():
    script = CallerScript(sounds=BREATHING, replies={"q_hears": [tap(2)], "q_sms_received": [tap(1)]}, hangs_up_at=90)
    fake = await FakeCall(script).run()
    assert fake.handoffs.kinds() == ["sms"]
    assert "taps_explained" not in fake.channel.prompts()
    assert fake.record.cause is Cause.HANDICAP


async def test_cas_b_technical_problem_sets_the_cause_and_email_works():
    replies = {
        "q_hears": [press("1")], "q_technical": [press("1")], "q_difficulty": [press("2")],
        "q_preference": [press("2")], "q_confirm_email": [press("1")],
    }
    fake = await FakeCall(CallerScript(sounds=BREATHING, replies=replies, hangs_up_at=120)).run()
    assert fake.handoffs.kinds() == ["email"]
    assert "email_sent" in fake.channel.prompts()
    assert fake.record.cause is Cause.TECHNIQUE


async def test_anonymous_caller_sms_refused_is_offered_email_callback_or_agent():
    replies = {
        "q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
        "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_fallback": [press("2")],
    }
    script = CallerScript(sounds=BREATHING, replies=replies, number=None, hangs_up_at=150)
    fake = await FakeCall(script, refuse={"sms": "anonymous"}).run()
    assert fake.handoffs.kinds() == ["sms", "callback"]
    assert fake.record.kinds("handoff_refused") == ["sms: anonymous"]
    assert fake.record.kinds("handoff")[0].startswith("rappel")
    assert "handoff_refused" in fake.channel.prompts() and "callback_sent" in fake.channel.prompts()


async def test_every_handoff_refused_ends_with_an_agent():
    replies = {
        "q_hears": [press("1")], "q_technical": [press("2")], "q_difficulty": [press("1")],
        "q_preference": [press("1")], "q_confirm_sms": [press("1")], "q_fallback": [press("1")],
    }
    script = CallerScript(sounds=BREATHING, replies=replies, number=None)
    fake = await FakeCall(script, refuse={"sms": "anonymous", "email": "anonymous"}).run()
    assert fake.handoffs.kinds() == ["sms", "email"]
    assert "aucun canal" in fake.agents.handed[0][1].summary
    assert_never_hung_up_by_system(fake)


# -- Cas D / F: distress, emergency first ---------------------------------------------
DISTRESS = [Sound(0, S.SILENCE), Sound(16, S.BREATHING, level_dbfs=-30, distress=True)]


async def test_distress_asks_the_emergency_question_first_and_1_starts_the_emergency_line():
    script = CallerScript(sounds=DISTRESS, replies={"q_emergency": [tap(1)]})  # never hangs up
    fake = await FakeCall(script).run()
    prompts = fake.channel.prompts()
    first_after_distress = prompts[3]
    assert first_after_distress == "q_emergency"
    assert prompts[-1] == "emergency_yes"
    (started,) = fake.emergency.started
    assert started["caller_number"] == "+33612345678"
    assert started["answers"] == {"urgence_medicale": "oui"}
    assert fake.record.call_type is CallType.URGENCE and fake.record.cause is Cause.URGENCE
    # « Ne JAMAIS raccrocher »: nothing hung up, the channel is still up for the emergency bridge
    assert_never_hung_up_by_system(fake)
    assert fake.channel.is_up


async def test_emergency_yes_then_caller_hangs_up_still_starts_the_emergency_line():
    q_end = 16.5 + 4.0
    script = CallerScript(sounds=DISTRESS, replies={"q_emergency": [press("1")]}, hangs_up_at=q_end + 3)
    fake = await FakeCall(script).run()
    assert len(fake.emergency.started) == 1
    assert fake.record.hung_up_by is HungUpBy.CALLER


async def test_distress_no_emergency_goes_to_cas_d_and_a_callback_in_5_minutes():
    replies = {"q_emergency": [tap(2)], "q_distress_callback": [tap(1)]}
    fake = await FakeCall(CallerScript(sounds=DISTRESS, replies=replies, hangs_up_at=120)).run()
    prompts = fake.channel.prompts()
    i = prompts.index("distress_soft")
    assert prompts[i + 1] == "q_distress_callback"
    soft, question = fake.channel.plays("distress_soft")[0], fake.channel.plays("q_distress_callback")[0]
    assert 10.0 <= question.at - soft.end <= 20.0  # « attend en silence (10–20 secondes) »
    (kind, request), = fake.handoffs.requests
    assert kind == "callback" and request["delay_seconds"] == 300.0 and request["target"] == "agents"
    assert fake.emergency.started == []
    assert fake.record.call_type is CallType.PLEURS and fake.record.cause is Cause.EMOTIONNELLE
    assert_never_hung_up_by_system(fake)


async def test_long_voice_energy_without_words_counts_as_distress():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(15, S.BREATHING, level_dbfs=-25)], hangs_up_at=40)
    fake = await FakeCall(script).run()
    assert "q_emergency" in fake.channel.prompts()
    assert "cas_b_reassure" not in fake.channel.prompts()


async def test_distress_without_answer_to_emergency_question_goes_to_an_agent_marked_urgent():
    fake = await FakeCall(CallerScript(sounds=DISTRESS)).run()
    (_, diagnosis, _), = fake.agents.handed
    assert diagnosis.urgent
    assert fake.emergency.started == []
    assert_never_hung_up_by_system(fake)


async def test_distress_then_speech_hears_the_caller_out_and_goes_to_an_agent():
    sounds = DISTRESS + [Sound(45, S.SPEECH)]
    fake = await FakeCall(CallerScript(sounds=sounds, replies={"q_emergency": [tap(2)]})).run()
    prompts = fake.channel.prompts()
    assert prompts[-2:] == ["distress_speaking", "to_agent"]  # « Oui, je vous écoute. Prenez votre temps. »
    assert fake.agents.handed[0][1].urgent


# -- Cas E: language ------------------------------------------------------------------
async def test_cas_e_key_9_then_1_switches_to_english():
    script = CallerScript(
        sounds=BREATHING,
        inputs=[key(17, "9")],
        replies={"q_language": [press("1")], "q_hears": [press("1")]},
        hangs_up_at=60,
    )
    fake = await FakeCall(script).run()
    plays = [e for e in fake.channel.log if e.kind == "play"]
    i = [e.detail for e in plays].index("lang_ok")
    assert all(e.language == "en" for e in plays[i:])
    assert [e.detail for e in plays[i:i + 2]] == ["lang_ok", "q_hears"]
    assert fake.record.call_type is CallType.LANGUE_ETRANGERE and fake.record.cause is Cause.LINGUISTIQUE


async def test_cas_e_speech_after_choice_goes_to_the_agent_group_of_that_language():
    script = CallerScript(
        sounds=[Sound(0, S.SILENCE), Sound(40, S.SPEECH)],
        inputs=[key(17, "9")],
        replies={"q_language": [press("2")]},
    )
    fake = await FakeCall(script).run()
    (_, _, language), = fake.agents.handed
    assert language == "es"


async def test_cas_e_no_choice_goes_to_a_multilingual_agent():
    fake = await FakeCall(CallerScript(sounds=BREATHING, inputs=[key(17, "9")])).run()
    assert "lang_unknown" in fake.channel.prompts()
    assert fake.agents.handed[0][2] == "multi"


async def test_cas_e_0_keeps_french():
    script = CallerScript(sounds=BREATHING, inputs=[key(17, "9")], replies={"q_language": [press("0")]}, hangs_up_at=60)
    fake = await FakeCall(script).run()
    assert all(e.language == "fr" for e in fake.channel.log if e.kind == "play")
    assert fake.record.call_type is not CallType.LANGUE_ETRANGERE


async def test_key_9_during_a_question_opens_the_language_menu():
    script = CallerScript(sounds=BREATHING, replies={"q_hears": [press("9")], "q_language": [press("3")]}, hangs_up_at=70)
    fake = await FakeCall(script).run()
    assert "q_language" in fake.channel.prompts()
    assert fake.channel.plays("lang_ok")[0].language == "it"


# -- A bug never leaves the caller in silence ----------------------------------------------
async def test_a_flow_error_hands_the_call_to_an_agent():
    class Broken:
        async def send_sms(self, *a, **kw):
            raise RuntimeError("outbox down")

    script = CallerScript(sounds=BREATHING, replies=seed_replies(lambda n: press(str(n))))
    fake = FakeCall(script)
    fake.deps.handoffs = Broken()
    await fake.run()
    assert fake.record.kinds("error")
    assert "erreur" in fake.agents.handed[0][1].summary
    assert_never_hung_up_by_system(fake)


# -- Documentation card: every call recorded --------------------------------------------------
async def test_every_path_leaves_a_complete_record():
    scripts = [
        CallerScript(),
        CallerScript(sounds=BREATHING, replies=seed_replies(lambda n: press(str(n))), hangs_up_at=150),
        CallerScript(sounds=DISTRESS, replies={"q_emergency": [tap(1)]}),
        CallerScript(sounds=[Sound(0, S.BACKGROUND_NOISE)], replies={"q_noise_hears": [tap(1)]}, hangs_up_at=70),
    ]
    for script in scripts:
        record = (await FakeCall(script).run()).record
        assert record.call_type is not None and record.cause is not None
        assert record.duration is not None and record.hung_up_by is not None
        assert record.actions and record.timeline
        assert record.number == "+33612345678"


async def test_a_broken_record_store_does_not_break_the_call():
    class Broken:
        def __getattr__(self, name):
            async def fail(*a, **kw):
                raise OSError("disk full")

            return fail

    fake = FakeCall(CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH)]))
    fake.deps.recorder = Broken()
    await fake.run()
    assert fake.channel.prompts() == ["greeting", "to_agent"]
    assert fake.channel.hung_up_by == "dialplan"


async def test_sms_not_received_offers_email_callback_or_agent():
    replies = dict(seed_replies(lambda n: press(str(n))), q_sms_received=[press("2")], q_fallback=[press("1")])
    fake = await FakeCall(CallerScript(sounds=BREATHING, replies=replies, hangs_up_at=150)).run()
    assert fake.handoffs.kinds() == ["sms", "email"]
    prompts = fake.channel.prompts()
    assert prompts[prompts.index("q_sms_received") + 1:][:3] == ["sms_not_received", "q_fallback", "email_sent"]


# -- « Hotliner raccroche et documente » + section 6 follow-up email ------------------------
async def test_dead_line_asks_for_the_section_6_followup_email():
    fake = await FakeCall(CallerScript()).run()
    assert fake.handoffs.kinds() == ["followup_email"]
    assert fake.handoffs.requests[0][1]["called_at"] == fake.record.started_at
    assert fake.record.kinds("followup_email") == ["msg-1"]


async def test_caller_leaving_before_any_case_is_still_documented():
    fake = await FakeCall(CallerScript(hangs_up_at=6)).run()
    record = fake.record
    assert (record.call_type, record.cause) == (CallType.MUET_COMPLET, Cause.ACCIDENTEL)
    assert record.hung_up_by is HungUpBy.CALLER and record.duration == pytest.approx(6.0)
    assert fake.handoffs.kinds() == ["followup_email"]


async def test_no_followup_email_after_a_handoff_or_a_person():
    sms = CallerScript(sounds=BREATHING, replies=seed_replies(lambda n: press(str(n))), hangs_up_at=120)
    talk = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH)])
    assert (await FakeCall(sms).run()).handoffs.kinds() == ["sms"]
    assert (await FakeCall(talk).run()).handoffs.kinds() == []


async def test_followup_refused_for_an_anonymous_caller_is_recorded():
    fake = await FakeCall(CallerScript(number=None), refuse={"followup_email": "anonymous"}).run()
    assert fake.record.kinds("followup_email_refused") == ["anonymous"]


async def test_silent_call_flow_is_a_controller_flow():
    from callflow.flows.silent_call import silent_call_flow

    fake = FakeCall(CallerScript(sounds=[Sound(0, S.SILENCE), Sound(5, S.SPEECH)]))
    await silent_call_flow(fake.deps)(fake.call)
    assert fake.channel.prompts() == ["greeting", "to_agent"]


async def test_distress_heard_before_a_key_still_asks_the_emergency_question_first():
    # Sobs since 10 s; during the language hint the caller presses 1 (« je vous entends »).
    # The key must not send a caller in distress down the questionnaire: cas F first.
    sounds = [Sound(0, S.SILENCE), Sound(10, S.BREATHING, level_dbfs=-30, distress=True)]
    script = CallerScript(sounds=sounds, inputs=[key(13.0, "1")], replies={"q_emergency": [tap(1)]})
    fake = await FakeCall(script).run()
    prompts = fake.channel.prompts()
    assert "q_emergency" in prompts
    assert "q_hears" not in prompts[: prompts.index("q_emergency")]
    assert len(fake.emergency.started) == 1
    assert_never_hung_up_by_system(fake)


async def test_a_single_distress_flicker_on_calm_breathing_is_not_distress():
    # Seen live: one distress reading in half a minute of calm breathing. Not sobs: cas B, not cas F.
    sounds = [Sound(0, S.SILENCE), Sound(4, S.BREATHING, level_dbfs=-40),
              Sound(20, S.BREATHING, level_dbfs=-40, distress=True), Sound(20.4, S.BREATHING, level_dbfs=-40)]
    fake = await FakeCall(CallerScript(sounds=sounds, hangs_up_at=60)).run()
    prompts = fake.channel.prompts()
    assert "q_emergency" not in prompts
    assert "cas_b_reassure" in prompts


# -- Listening only while it matters (issue 3: the fork costs the PBX as much as the call) --
def listen_events(fake: FakeCall) -> list[tuple[float, str]]:
    return [(e.at, e.detail) for e in fake.channel.log if e.kind == "listen"]


async def test_a_silent_caller_is_forked_only_after_the_greeting():
    fake = await FakeCall(CallerScript(hangs_up_at=20)).run()
    greeting = fake.channel.plays("greeting")[0]
    events = listen_events(fake)
    assert events[0] == (0.0, "on voice")  # armed before the greeting, nothing forked yet
    assert events[1] == (greeting.end, "start")  # phase 1's listening needs the classifier


async def test_a_caller_who_speaks_during_the_greeting_is_forked_at_once_and_released_before_the_agent():
    script = CallerScript(sounds=[Sound(0, S.SILENCE), Sound(1.5, S.SPEECH, level_dbfs=-25)], hangs_up_at=30)
    fake = await FakeCall(script).run()
    events = listen_events(fake)
    assert events[:2] == [(0.0, "on voice"), (1.5, "start on voice")]
    greeting = fake.channel.plays("greeting")[0]
    assert not greeting.completed and greeting.end == 2.5  # two speech readings (2.0, 2.5 s): we stop talking
    assert events[-1][1] == "stop"
    to_agent = fake.channel.plays("to_agent")[0]
    assert events[-1][0] <= to_agent.at  # no fork while « Je vous passe un conseiller » plays
    assert fake.agents.handed, "speech goes to a person"
    assert fake.record.call_type is CallType.PAROLE


async def test_quiet_breathing_during_the_greeting_does_not_start_the_fork():
    script = CallerScript(sounds=[Sound(0, S.BREATHING, level_dbfs=-50)], hangs_up_at=20)
    fake = await FakeCall(script).run()
    greeting = fake.channel.plays("greeting")[0]
    assert listen_events(fake)[1] == (greeting.end, "start")
