"""Languages (seed 000 cas E, issue 16 item 6): agents declare languages; en/es/it callers reach one who speaks it first."""

from __future__ import annotations

import asyncio

import pytest
from test_agents_fakes import Desk, until

from callflow.agents.config import AgentsConfig
from callflow.core.agents import Diagnosis
from callflow.core.call import Call
from callflow.core.errors import ConfigError
from callflow.handoff import templates


async def start(d: Desk, caller, language: str, call_id: str = "call-1"):
    d.calls[call_id] = caller
    await d.recorder.start(call_id, number=caller.caller.number, started_at=0.0, flow="test", language=language)
    ctx = Call(call_id=call_id).attach(caller)
    task = asyncio.ensure_future(d.desk.hand_to_agent(ctx, Diagnosis(summary="parole"), language))
    await asyncio.sleep(0)
    return task


async def test_an_english_caller_skips_the_longest_idle_french_agent():
    d = Desk(languages=["2002:fr/en"], language_wait=5.0)
    caller, english = d.caller(), d.leg("agent2002")
    caller.plan = {"PJSIP/2001": ["no_answer"], "PJSIP/2002": [english]}
    task = await start(d, caller, "en")
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    assert [e[2] for e in d.events if e[0] == "originate"] == ["PJSIP/2002"]  # 2001 idles longer but speaks only French
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_after_the_language_wait_anyone_takes_the_caller():
    d = Desk(languages=["2002:fr/en"], language_wait=0.3, online={"PJSIP/2001"})  # the English speaker is away
    caller, french = d.caller(), d.leg("agent2001")
    caller.plan = {"PJSIP/2001": [french]}
    task = await start(d, caller, "es")
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    assert ("originate", "caller", "PJSIP/2001") in d.events
    caller.leaves()
    await asyncio.wait_for(task, 3)


async def test_a_french_caller_gets_the_longest_idle_agent_whatever_they_speak():
    d = Desk(languages=["2001:en"], language_wait=60)
    caller, agent = d.caller(), d.leg("agent2001")
    caller.plan = {"PJSIP/2001": [agent]}
    task = await start(d, caller, "fr")
    await until(lambda: d.desk.live["call-1"].state == "with_agent")
    caller.leaves()
    await asyncio.wait_for(task, 3)


def test_agents_languages_config():
    assert AgentsConfig(languages=["2001:fr/en", "2003:it"]).validate().spoken() == {
        "2001": ("fr", "en"), "2002": ("fr",), "2003": ("it",)}
    for bad in (["2009:en"], ["2001:de"], ["2001"], ["2001:"]):
        with pytest.raises(ConfigError) as err:
            AgentsConfig(languages=bad).validate()
        assert "agents.languages" in str(err.value)


@pytest.mark.parametrize("language", ["fr", "en", "es", "it"])
def test_sms_texts_exist_in_the_four_languages(language):
    sms = templates.sms_callback_by_text("Camille", language)
    instructions = templates.sms_email_instructions(language)
    assert "Camille" in sms and "numi.support" in sms and templates.SUPPORT_EMAIL in instructions
    if language != "fr":
        assert sms != templates.sms_callback_by_text("Camille", "fr")
        assert instructions != templates.sms_email_instructions("fr")


@pytest.mark.parametrize("language, greeting, day", [("fr", "Bonjour", "aujourd'hui"), ("en", "Hello", "today"),
                                                     ("es", "Hola", "hoy"), ("it", "Buongiorno", "oggi")])
def test_followup_email_in_the_callers_language(language, greeting, day):
    from callflow.handoff.config import SmtpConfig
    from callflow.handoff.email import build_followup

    msg = build_followup(SmtpConfig(), to="a@b.c", called_at=1766151900.0, message_id="m1", now=1766151900.0 + 60,
                         language=language)
    body = msg.get_content()
    assert body.startswith(greeting) and day in body and templates.SUPPORT_EMAIL in body
    assert msg["Subject"] == templates.EMAIL_FOLLOWUP_SUBJECTS[language]
