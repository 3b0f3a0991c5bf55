"""Keypad fallback (seed 000 cas B): closed questions answered by keys or taps.

« Vous répondez en tapant : 1 coup = OUI, 2 coups = NON » — and 3 = aidant
(« Que quelqu'un d'autre appelle pour vous (proche, aidant) »).

Every question: a prompt the caller may cut short with a key (barge-in), a
timeout (timers.question_timeout), up to timers.reprompts re-prompts, « je n'ai
pas compris » on an invalid key, and a burst of the same key taken once.
Key 9 at any yes/no question asks for another language (cas E).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callflow.core.channel import DigitInput, TapInput
from callflow.flows.session import FlowCall, LanguageRequested, describe

YES, NO, CAREGIVER = "oui", "non", "aidant"
SMS, EMAIL = "sms", "email"
LANGUAGE_KEY = "9"


@dataclass(frozen=True)
class Question:
    id: str  # how the answer is recorded: "technique=non"
    prompt: str  # prompt id in sounds/prompts.yaml
    keys: dict[str, str]  # DTMF digit → answer
    taps: dict[int, str]  # tap count → answer
    language_key: bool = True  # 9 → cas E

    def answer_for(self, caller_input) -> str | None:
        if isinstance(caller_input, TapInput):
            return self.taps.get(caller_input.count)
        return self.keys.get(caller_input.digit)


def yes_no(qid: str, prompt: str) -> Question:
    # A tap group of 3 is too easy to get by accident: only the key 3 means aidant.
    return Question(qid, prompt, keys={"1": YES, "2": NO, "3": CAREGIVER}, taps={1: YES, 2: NO})


def choice(qid: str, prompt: str, *answers: str, language_key: bool = True) -> Question:
    keys = {str(i): a for i, a in enumerate(answers, start=1)}
    taps = {i: a for i, a in enumerate(answers, start=1)}
    return Question(qid, prompt, keys=keys, taps=taps, language_key=language_key)


# The seed's questionnaire, in its order.
Q_HEARS = yes_no("m_entendez_vous", "q_hears")  # « Si vous m'entendez, tapez UNE fois… DEUX fois »
Q_TECHNICAL = yes_no("probleme_technique", "q_technical")  # « problème technique (micro, téléphone) ? »
Q_DIFFICULTY = yes_no("difficulte_a_parler", "q_difficulty")  # « difficultés à parler… (santé, handicap, émotion) ? »
Q_PREFERENCE = choice("preference", "q_preference", SMS, EMAIL, CAREGIVER)  # « 1 SMS, 2 email, 3 proche »
Q_CONFIRM = {  # « C'est ok ? »
    SMS: yes_no("confirmation_sms", "q_confirm_sms"),
    EMAIL: yes_no("confirmation_email", "q_confirm_email"),
    CAREGIVER: yes_no("confirmation_aidant", "q_confirm_caregiver"),
}


async def ask(call: FlowCall, q: Question) -> str | None:
    """Ask one question; the answer, or None once every re-prompt went unanswered."""
    asked = 0
    while True:
        asked += 1
        await call.note("question", q.id)
        await call.say(q.prompt)  # a key cuts the prompt short and stays queued
        window = await call.listen(call.timers.question_timeout)
        caller_input = window.input
        if caller_input is None:
            await call.note("timeout", q.id)
        elif q.language_key and isinstance(caller_input, DigitInput) and caller_input.digit == LANGUAGE_KEY:
            await call.swallow_burst()
            raise LanguageRequested()
        elif (answer := q.answer_for(caller_input)) is not None:
            call.answers[q.id] = answer
            await call.note("answer", f"{q.id}={answer}")
            await call.swallow_burst()
            return answer
        else:
            await call.note("invalid", f"{q.id}: {describe(caller_input)}")
            await call.swallow_burst()
        if asked > call.timers.reprompts:
            await call.note("no_answer", q.id)
            return None
        if caller_input is not None:
            await call.say("not_understood")  # « je n'ai pas compris », then the question again


@dataclass
class Preference:
    """Where the questionnaire ended."""

    channel: str | None  # SMS, EMAIL, CAREGIVER; None: the caller stopped answering
    cannot_hear: bool = False  # « Si vous ne m'entendez pas, tapez DEUX fois »
    answers: dict[str, str] = field(default_factory=dict)


async def questionnaire(call: FlowCall, *, ask_hears: bool = True) -> Preference:
    """Cas B from « Si vous m'entendez, tapez UNE fois » to the confirmed channel."""

    def done(channel: str | None, **kw) -> Preference:
        return Preference(channel, answers=dict(call.answers), **kw)

    if ask_hears:
        hears = await ask(call, Q_HEARS)
        if hears is None:
            return done(None)
        if hears == NO:
            # They tap but cannot hear us: only a written channel works.
            return done(SMS, cannot_hear=True)
        if hears == CAREGIVER:
            return await _confirm(call, CAREGIVER, done) or await _choose(call, done)
    # « Parfait, vous m'entendez. … 1 coup = OUI, 2 coups = NON »
    await call.say("taps_explained")
    for q in (Q_TECHNICAL, Q_DIFFICULTY):
        answer = await ask(call, q)
        if answer is None:
            return done(None)
        if answer == CAREGIVER:
            return await _confirm(call, CAREGIVER, done) or await _choose(call, done)
    await call.say("understood")  # « D'accord, je comprends. On va faire autrement. »
    return await _choose(call, done)


async def _choose(call: FlowCall, done) -> Preference:
    for _ in range(call.timers.reprompts + 1):
        preferred = await ask(call, Q_PREFERENCE)
        if preferred is None:
            return done(None)
        confirmed = await _confirm(call, preferred, done)
        if confirmed is not None:
            return confirmed
        # « non » to « C'est ok ? »: offer the three again
    await call.note("no_answer", "preference: never confirmed")
    return done(None)


async def _confirm(call: FlowCall, channel: str, done) -> Preference | None:
    """« C'est ok ? »: the Preference, or None when the caller says « non »."""
    answer = await ask(call, Q_CONFIRM[channel])
    if answer is None:
        return done(None)
    if answer == YES or (answer == CAREGIVER and channel == CAREGIVER):
        return done(channel)
    if answer == CAREGIVER:
        return await _confirm(call, CAREGIVER, done)
    return None
