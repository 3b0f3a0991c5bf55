"""Seed 000 « Appel muet – Gestion des silences », phases 1–3 and cas A–F.

Entry point for the controller: ``await run_silent_call(call, deps)``, or
``silent_call_flow(deps)`` where a one-argument ``Flow`` is expected.

The flow reads like the hotliner's script:

* Phase 1 – greeting, then 2–3 s of listening.
* Phase 2 – « Bonjour ? Je ne vous entends pas très bien… », then listening.
* Phase 3 – the case the line sounds like:
  cas A background noise, cas B breathing, cas C dead line, cas D crying,
  cas E foreign language, cas F emergency.

Two things can happen at any point and interrupt the current step (see
callflow/flows/session.py): speech (→ a person, with the diagnosis) and
distress (→ cas F's question first, then cas D).

Choices made where the seed or the issue were silent (product behaviour):

* Cas E trigger. The classifier cannot tell a language, so the caller chooses:
  right after the phase 2 prompt a short line says « For English, press 9 … »,
  and key 9 at any time (listening or any yes/no question) opens the seed's
  « Do you speak English? ¿Habla español? Parli italiano? » menu
  (1 English, 2 español, 3 italiano, 0 français). The choice switches the prompt
  language and the agent group passed to Agents.hand_to_agent. Speech heard
  in any language goes to an agent, who can also do it. No choice: the seed's
  « Je vais essayer de trouver quelqu'un qui parle votre langue » and the
  agent group "multi".
* Taps or keys without breathing in phase 2 are treated like cas B (somebody is
  there and does not speak; seed quiz Q3) but without « je vous entends
  respirer »: the questionnaire starts at « Si vous m'entendez, tapez UNE fois ».
* The system never hangs up a caller who shows a sign of life (safety.py). So
  after a handoff (SMS, email, callback, caregiver) the flow does not hang up as
  the seed's hotliner does (« Parfait, je raccroche maintenant »): it says
  « vous pouvez raccrocher » and waits (timers.after_handoff_wait). A key in
  that time, or a caller still alive at its end, goes to an agent; a line that
  went quiet goes through cas C (final warning, countdown, then hang-up).
* A question left unanswered after every re-prompt (the caller keeps breathing,
  never presses): an agent takes the call with the diagnosis (« respiration,
  pas de réponse au clavier »); if nothing alive was heard for the whole
  dead-line wait, cas C instead.
* Distress with no answer to the emergency question: an agent, marked urgent
  (a person can judge what a keypad cannot). Speech during that question too.
* Cas D callback offer: 1 = « rappel dans 5 minutes », 2 = email, 3 = aidant.
* Cas A: after « tapez une fois si vous m'entendez » → 1: « Parfait. Je vous
  attends… » and the email instructions through the outbox; 2 or 3: they hear
  us, so the keypad questionnaire. Cas A and cas B are offered once per call;
  the second time a person takes over (no endless loops between cases).
* Every call gets a type and a cause, even when the caller leaves before any
  case (what the line sounded like; cause « accidentel » for silence). A silent
  call that ends without another channel or a person gets the section 6
  follow-up email (Handoffs.followup_email; the outbox knows if an email is on file).
* A flow bug or a failing record store never leaves the caller in silence: the
  call goes to an agent (records are written through ResilientRecorder).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable, Optional

from callflow.core.agents import CALLER_STILL_HERE, Agents, DialplanAgents, Diagnosis
from callflow.core.call import Call, CallState
from callflow.core.channel import AudioState, CallerHungUp, DigitInput
from callflow.core.clock import Clock, SystemClock
from callflow.core.handoff import EmergencyLine, Handoffs
from callflow.core.recorder import CallRecorder, CallType, Cause, HungUpBy, ResilientRecorder
from callflow.flows import alternatives
from callflow.flows.keypad import (
    CAREGIVER,
    EMAIL,
    LANGUAGE_KEY,
    NO,
    YES,
    Question,
    ask,
    questionnaire,
    yes_no,
)
from callflow.flows.session import DistressHeard, FlowCall, LanguageRequested, SpeechHeard, Window
from callflow.flows.timers import SilentCallTimers

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[Optional["Step"]]]

# Cas A: « Vous m'entendez ? Tapez une fois sur votre téléphone si oui. »
Q_NOISE_HEARS = yes_no("m_entendez_vous_bruit", "q_noise_hears")
# Cas D: « Tapez une fois si vous voulez que je rappelle » (2 = email, 3 = aidant)
Q_DISTRESS_CALLBACK = Question(
    "rappel_detresse",
    "q_distress_callback",
    keys={"1": alternatives.CALLBACK, "2": EMAIL, "3": CAREGIVER},
    taps={1: alternatives.CALLBACK, 2: EMAIL},
)
# Cas D on a closed line (seed 003): « nous pouvons vous rappeler dès la réouverture », not « dans 5 minutes »
Q_DISTRESS_CALLBACK_CLOSED = replace(Q_DISTRESS_CALLBACK, prompt="q_distress_callback_closed")
# Cas E: « Do you speak English? ¿Habla español? Parli italiano? »
Q_LANGUAGE = Question(
    "langue", "q_language", keys={"1": "en", "2": "es", "3": "it", "0": "fr"}, taps={}, language_key=False
)
# Cas F: « Tapez UNE fois si OUI. Tapez DEUX fois si NON. »
Q_EMERGENCY = Question("urgence_medicale", "q_emergency", keys={"1": YES, "2": NO}, taps={1: YES, 2: NO}, language_key=False)


@dataclass
class SilentCallDeps:
    """What the controller gives the flow (one instance can serve every call)."""

    recorder: CallRecorder
    handoffs: Handoffs
    emergency: EmergencyLine
    agents: Agents = field(default_factory=DialplanAgents)
    timers: SilentCallTimers = field(default_factory=SilentCallTimers)
    agent_name: str = "Jean"  # [PRENOM_HOTLINER]: signs the SMS
    clock: Clock = field(default_factory=SystemClock)
    # seed 003, line closed (callflow/agents/after_hours.py): the personalised message instead of the
    # greeting, and no « je vous passe un conseiller » (the message desk invites to leave a message)
    closed_line: bool = False


async def run_silent_call(call: Call, deps: SilentCallDeps) -> None:
    """Run seed 000 on an answered (or ringing) call until it leaves the flow."""
    await SilentCall(call, deps).run()


def silent_call_flow(deps: SilentCallDeps) -> Callable[[Call], Awaitable[None]]:
    """The flow as the controller's `Flow` (one `Call` argument)."""

    async def flow(call: Call) -> None:
        await run_silent_call(call, deps)

    return flow


class SilentCall:
    def __init__(self, live: Call, deps: SilentCallDeps) -> None:
        self.deps = deps
        self.t = deps.timers
        self.recorder = ResilientRecorder(deps.recorder)  # a broken store must not break the call
        self.call = FlowCall(live, self.recorder, deps.timers, deps.clock)
        self.call.callbacks_at_opening = deps.closed_line
        self.heard = Window(start=0.0)  # phases 1 and 2 together
        self.call_type: CallType | None = None
        self.cause: Cause | None = None
        self.agent_group: str | None = None  # "multi" when no language was chosen
        self.urgent = False
        self.cases_done: set[str] = set()
        self.outcome: tuple[HungUpBy, str] | None = None
        self.started_at = 0.0

    # -- the loop: one step after another, interrupted by speech / distress / 9 --
    async def run(self) -> None:
        call = self.call
        log.info("silent call %s from %s", call.call_id, self.call.state.caller.masked)
        self.started_at = self.deps.clock.time()
        await self.recorder.start(
            call.call_id, number=call.number, started_at=self.started_at, flow="silent_call", language=call.language
        )
        step: Step | None = self.phase_1_greeting
        try:
            while step is not None:
                try:
                    step = await step()
                except SpeechHeard:
                    step = self.speech_heard
                except DistressHeard:
                    step = self.cas_f_emergency
                except LanguageRequested:
                    step = self.cas_e_language
        except CallerHungUp:
            self.outcome = (HungUpBy.CALLER, f"caller hung up ({self._last_step(step)})")
        except asyncio.CancelledError:  # the caller left first, or the controller stops (the rescue hands them to people)
            if self.call.channel.is_up:
                self.outcome = (HungUpBy.AGENT, f"interrupted ({self._last_step(step)})")
            else:
                self.outcome = self.outcome or (HungUpBy.CALLER, f"cancelled ({self._last_step(step)})")
            raise
        except Exception as exc:  # a bug must not leave the caller in silence
            log.exception("silent call %s: flow error", call.call_id)
            await call.note("error", repr(exc))
            if not self.call.guard.emergency:
                try:
                    await self.to_agent(f"erreur du serveur vocal: {exc!r}")()
                except Exception:
                    log.exception("silent call %s: agent handoff failed too", call.call_id)
        finally:
            await call.flush_timeline()
            by, reason = self.outcome or (HungUpBy.CALLER, "unknown")
            await self.document_the_call(by)
            await self.recorder.ended(call.call_id, at=call.now(), hung_up_by=by, reason=reason)

    async def document_the_call(self, by: HungUpBy) -> None:
        """« Hotliner raccroche et documente »: a type and a cause for every call, and the section 6 email."""
        if self.call_type is None:  # the caller left before any case: what did the line sound like?
            if self.heard.heard(AudioState.BREATHING, 2):
                await self.classify(CallType.RESPIRATION, Cause.HANDICAP)
            elif self.heard.heard(AudioState.BACKGROUND_NOISE, 2):
                await self.classify(CallType.BRUIT_DE_FOND, Cause.ACCIDENTEL)  # « appel poche »
            else:
                await self.classify(CallType.MUET_COMPLET, Cause.ACCIDENTEL)
        if by is HungUpBy.AGENT or self.call_type is CallType.PAROLE or self.call.handoffs_done:
            return
        # Section 6: « Appel numi – Nous n'avons pas pu vous entendre », when an email is on file.
        try:
            await alternatives.followup(self.call, self.deps.handoffs, called_at=self.started_at)
        except Exception:
            log.exception("silent call %s: follow-up email request failed", self.call.call_id)

    @staticmethod
    def _last_step(step) -> str:
        return getattr(step, "__name__", "step")

    async def classify(self, call_type: CallType, cause: Cause) -> None:
        """« TYPE » and « CAUSE PROBABLE » of the documentation card."""
        if call_type is not self.call_type:
            self.call_type = call_type
            await self.recorder.set_type(self.call.call_id, call_type)
        await self.set_cause(cause)

    async def set_cause(self, cause: Cause) -> None:
        if cause is not self.cause:
            self.cause = cause
            await self.recorder.set_cause(self.call.call_id, cause)

    # -- Phase 1 : premiers 10 secondes ------------------------------------
    async def phase_1_greeting(self) -> Step | None:
        channel = self.call.channel
        if not channel.is_up:
            await channel.answer()
        # Most callers speak at once: the media fork (as costly to the PBX as the call itself)
        # starts only if the line gets loud during the greeting, else for the listening below.
        await channel.listen_on_voice()
        # « Bonjour, numi.support, [PRENOM_HOTLINER] à l'appareil. Je vous écoute. »
        if self.deps.closed_line:
            # seed 003: « Notre permanence est fermée … relevé et traité dès la réouverture »
            await self.call.say("closed_greeting")
        else:
            await self.call.say("greeting")
        # « Hotliner attend 2–3 secondes (pas de réaction immédiate). »
        window = await self.call.listen(self.t.greeting_listen)
        self._remember(window)
        if window.input is not None:
            return self.phase_3_diagnosis
        return self.phase_2_audio_check

    # -- Phase 2 : vérification audio technique ------------------------------
    async def phase_2_audio_check(self) -> Step | None:
        # « Bonjour ? Je ne vous entends pas très bien. Si vous m'entendez, pouvez-vous
        #   dire quelque chose ? Ou taper sur votre téléphone pour que j'entende un son ? »
        result = await self.call.say("audio_check")
        if result.completed:
            await self.call.say("language_hint")  # cas E: « For English, press 9 … »
        # « Hotliner écoute attentivement : bruits de fond ? respiration ? tapotements ? rien ? »
        window = await self.call.listen(self.t.audio_check_listen)
        self._remember(window)
        return self.phase_3_diagnosis

    def _remember(self, window: Window) -> None:
        self.heard.states.update(window.states)
        self.heard.input = window.input or self.heard.input
        self.heard.distress |= window.distress

    # -- Phase 3 : diagnostic rapide selon signaux ---------------------------
    async def phase_3_diagnosis(self) -> Step | None:
        return self.case_for(self.heard)

    def case_for(self, heard: Window) -> Step:
        """Which case the line sounds like (speech and distress were handled on the way)."""
        caller_input = heard.input
        if isinstance(caller_input, DigitInput) and caller_input.digit == LANGUAGE_KEY:
            return self.cas_e_language
        if caller_input is not None or heard.heard(AudioState.TAPS):
            return self._once("tapotements", self.taps_heard, "tapotements, ne parle pas")
        if heard.heard(AudioState.BREATHING, 2):
            return self._once("B", self.cas_b_breathing, "respiration, ne parle pas")
        if heard.heard(AudioState.BACKGROUND_NOISE, 2):
            return self._once("A", self.cas_a_background_noise, "bruit de fond, pas de réponse")
        return self.cas_c_dead_line

    def _once(self, case: str, step: Step, summary: str) -> Step:
        if case in self.cases_done:
            return self.to_agent(summary)
        self.cases_done.add(case)
        return step

    # -- CAS A – Bruits de fond ----------------------------------------------
    async def cas_a_background_noise(self) -> Step | None:
        await self.classify(CallType.BRUIT_DE_FOND, Cause.ENVIRONNEMENTALE)
        # « Je vous entends, mais il y a beaucoup de bruit autour de vous. … support@numi.support. »
        await self.call.say("cas_a_noise")
        answer = await ask(self.call, Q_NOISE_HEARS)  # « Vous m'entendez ? Tapez une fois … si oui. »
        if answer == YES:
            # « Parfait. Je vous attends par chat ou email, ou rappelez quand vous êtes au calme. »
            await self.call.say("cas_a_ok")
            await alternatives.request(
                self.call, self.deps.handoffs, EMAIL, agent_name=self.deps.agent_name, reason="bruit de fond"
            )
            return self.stay_with_caller
        if answer is not None:
            return self.keypad(ask_hears=False)  # they pressed something: they hear us
        return self.no_answer("bruit de fond, pas de réponse au clavier")

    # -- CAS B – Respiration audible, mais pas de parole ----------------------
    async def cas_b_breathing(self) -> Step | None:
        await self.classify(CallType.RESPIRATION, Cause.HANDICAP)
        # « Je vous entends respirer, donc vous êtes bien là. … On peut communiquer autrement. »
        await self.call.say("cas_b_reassure")
        return self.keypad(ask_hears=True)

    async def taps_heard(self) -> Step | None:
        await self.classify(CallType.RESPIRATION, Cause.HANDICAP)
        return self.keypad(ask_hears=True)

    def keypad(self, *, ask_hears: bool) -> Step:
        async def keypad_questionnaire() -> Step | None:
            self.call.enter(CallState.QUESTIONNAIRE, "keypad questionnaire")
            preference = await questionnaire(self.call, ask_hears=ask_hears)
            await self._cause_from_answers(preference.answers, preference.cannot_hear)
            if preference.channel is None:
                return self.no_answer("respiration, pas de réponse au clavier")
            done = await alternatives.deliver(
                self.call, self.deps.handoffs, preference.channel, agent_name=self.deps.agent_name, reason=self.summary()
            )
            if not done:
                return self.to_agent(f"{self.summary()}; aucun canal possible")
            return self.stay_with_caller

        return keypad_questionnaire

    async def _cause_from_answers(self, answers: dict[str, str], cannot_hear: bool) -> None:
        if self.call_type is not CallType.RESPIRATION:
            return  # cas A / E keep their own cause
        if answers.get("probleme_technique") == YES:
            await self.set_cause(Cause.TECHNIQUE)
        elif cannot_hear or answers.get("difficulte_a_parler") == YES:
            await self.set_cause(Cause.HANDICAP)
        elif answers.get("difficulte_a_parler") == NO:
            await self.set_cause(Cause.ENVIRONNEMENTALE)  # « Ne peut pas parler (au travail…) »

    # -- CAS C – Aucun son, ligne morte ----------------------------------------
    async def cas_c_dead_line(self) -> Step | None:
        call, guard = self.call, self.call.guard
        if guard.showed_life and not guard.alive_within(self.t.dead_line_total_wait):
            return self.went_quiet()  # somebody was there: never a dead line
        if self.call_type is None:
            await self.classify(CallType.MUET_COMPLET, Cause.TECHNIQUE)
        # « Hotliner attend 20–30 secondes au total » (since the last sign of life)
        since = guard.last_sign_of_life or 0.0
        wait = self.t.dead_line_total_wait - (call.now() - since)
        if wait > 0:
            window = await call.listen(wait)
            if window.input is not None or guard.alive_within(wait):
                return self.case_for(window)
        # « Bonjour, je ne vous entends toujours pas. … Je vais raccrocher dans 10 secondes si je n'entends rien. »
        result = await call.say("dead_line_final")
        if result.interrupted_by is not None:
            return self.case_for(await call.listen(0.1))
        guard.final_warning_given()
        # « Compte jusqu'à 10. »
        window = await call.listen(self.t.final_countdown)
        if window.input is not None or guard.final_warning_at is None:
            return self.case_for(window)
        # « Je raccroche maintenant. N'hésitez pas à rappeler ou nous écrire. À bientôt. »
        # A key or a tap during the goodbye still cancels the hang-up (it stops the goodbye).
        result = await call.say("dead_line_goodbye")
        if result.interrupted_by is not None:
            return self.case_for(await call.listen(0.1))
        if await guard.hang_up("ligne morte: aucun son après avertissement"):
            self.outcome = (HungUpBy.SYSTEM, "ligne morte")
            return None
        self.urgent = self.urgent or guard.showed_life
        return self.to_agent("ligne morte, raccrochage refusé")

    # -- CAS D – Client pleure / détresse émotionnelle -------------------------
    async def cas_d_distress(self) -> Step | None:
        await self.classify(CallType.PLEURS, Cause.EMOTIONNELLE)
        # « Bonjour... Je vous entends, et je sens que ça va pas en ce moment. Prenez votre temps. Je ne raccroche pas. »
        await self.call.say("distress_soft")
        # « Hotliner attend en silence (10–20 secondes), laisse le client respirer. »
        await self.call.listen(self.t.distress_silence, stop_on_input=False)
        # « … je peux vous rappeler dans 5 minutes … Tapez une fois si vous voulez que je rappelle. »
        answer = await ask(self.call, Q_DISTRESS_CALLBACK_CLOSED if self.deps.closed_line else Q_DISTRESS_CALLBACK)
        if answer is None:
            return self.to_agent("pleurs / détresse, pas de réponse au clavier")  # « Rester en ligne »
        done = await alternatives.deliver(
            self.call, self.deps.handoffs, answer, agent_name=self.deps.agent_name, reason="détresse émotionnelle"
        )
        return self.stay_with_caller if done else self.to_agent("détresse; aucun canal possible")

    # -- CAS E – Langue étrangère ----------------------------------------------
    async def cas_e_language(self) -> Step | None:
        call = self.call
        # « Je vous entends, mais je ne comprends pas la langue. Do you speak English? … »
        language = await ask(call, Q_LANGUAGE)
        if language is None:
            await self.classify(CallType.LANGUE_ETRANGERE, Cause.LINGUISTIQUE)
            # « Je vais essayer de trouver quelqu'un qui parle votre langue. … support@numi.support »
            await call.say("lang_unknown")
            self.agent_group = "multi"
            return self.to_agent("langue étrangère, langue inconnue")
        if language != "fr":
            await self.classify(CallType.LANGUE_ETRANGERE, Cause.LINGUISTIQUE)
        call.language = language
        await call.note("language", language)
        # « OK, I can try to help you in English. What is your issue? »
        await call.say("lang_ok")
        window = await call.listen(self.t.audio_check_listen)  # speech → an agent of that language
        if isinstance(window.input, DigitInput) and window.input.digit == LANGUAGE_KEY:
            return self.cas_e_language
        return self.keypad(ask_hears=True)

    # -- CAS F – Urgence médicale / danger immédiat -----------------------------
    async def cas_f_emergency(self) -> Step | None:
        call = self.call
        call.listen_for_distress = False  # asked once; cas D follows if « non »
        self.urgent = True
        await call.note("distress", "détresse probable: question urgence")
        # « Est-ce que vous avez besoin d'une aide médicale d'urgence ? Tapez UNE fois si OUI. DEUX fois si NON. »
        answer = await ask(call, Q_EMERGENCY)
        if answer == YES:
            return self.emergency_line
        if answer == NO:
            return self.cas_d_distress
        return self.to_agent("détresse, pas de réponse à la question urgence")

    async def emergency_line(self) -> Step | None:
        call = self.call
        call.guard.latch_emergency()  # « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés »
        await self.classify(CallType.URGENCE, Cause.URGENCE)
        self.outcome = (HungUpBy.AGENT, "urgence: ligne des secours")
        caller_left = False
        try:
            # « D'accord, je vais contacter les secours pour vous immédiatement. Ne raccrochez pas. »
            await call.say("emergency_yes", barge_in=False)
        except CallerHungUp:
            caller_left = True  # they said yes: the emergency line still gets the number
        await call.note("emergency", "EmergencyLine.start")
        await self.deps.emergency.start(
            call.call_id,
            caller_number=call.number,
            situation="Appel muet, personne en détresse, a confirmé un besoin d'aide médicale (touche 1)",
            answers=dict(call.answers),
        )
        if caller_left:
            raise CallerHungUp()
        return None

    # -- Speech at any point → a person ---------------------------------------
    async def speech_heard(self) -> Step | None:
        if self.call_type is None:
            await self.classify_speech()
        if self.call_type is CallType.PLEURS:
            await self.call.say("distress_speaking", barge_in=False)  # « Oui, je vous écoute. Prenez votre temps. »
        return await self.to_agent(f"{self.summary()}; parole entendue")()

    async def classify_speech(self) -> None:
        self.call_type = CallType.PAROLE
        await self.recorder.set_type(self.call.call_id, CallType.PAROLE)

    # -- After a handoff: keep the caller company, never hang up on them -------
    async def stay_with_caller(self) -> Step | None:
        self.call.enter(CallState.HANDOFF, "handoff done; the caller may stay")
        window = await self.call.listen(self.t.after_handoff_wait)
        if window.input is not None:
            return self.to_agent(f"{self.summary()}; appuie encore après l'envoi")
        return self.no_answer(f"{self.summary()}; reste en ligne après l'envoi")

    def no_answer(self, summary: str) -> Step:
        """A question went unanswered: a person if the caller is (or was) there, else cas C."""
        guard = self.call.guard
        if guard.alive_within(self.t.dead_line_total_wait):
            return self.to_agent(summary)
        if guard.showed_life:
            return self.went_quiet(summary)
        return self.cas_c_dead_line

    def went_quiet(self, summary: str | None = None) -> Step:
        """Signs of life, then nothing (a caller who faints): a person, urgently, with the diagnosis."""
        self.urgent = True
        first = self.call.guard.first_sign_of_life or 0.0
        return self.to_agent(f"{summary or self.summary()}; signe de vie à {first:.0f}s puis silence")

    def to_agent(self, summary: str) -> Step:
        async def hand_to_agent() -> Step | None:
            call = self.call
            language = self.agent_group or call.language
            diagnosis = Diagnosis(
                summary=summary,
                call_type=self.call_type.value if self.call_type else None,
                cause=self.cause.value if self.cause else None,
                answers=dict(call.answers),
                urgent=self.urgent,
            )
            await call.note("agent", f"{language}: {summary}")
            self.outcome = (HungUpBy.AGENT, f"agent: {summary}")
            if self.urgent:
                call.state.mark_urgent(summary)
            else:
                call.state.diagnose(summary)
            call.enter(CallState.WAITING_AGENT, "to a person")
            await call.channel.stop_listening()  # the fork costs the PBX: not needed with a person
            if not self.deps.closed_line:
                await call.say("to_agent", barge_in=False)  # « Je vous passe un conseiller. Restez en ligne. »
            left = await self.deps.agents.hand_to_agent(self.call.state, diagnosis, language)
            if left == CALLER_STILL_HERE:  # seed 003: nobody to take the call, the message desk had it
                self.outcome = (HungUpBy.CALLER, "message")
                call.handoffs_done.append("message")
                return self.stay_with_caller
            return None

        return hand_to_agent

    def summary(self) -> str:
        parts = [self.call_type.label if self.call_type else "appel muet"]
        parts += [f"{q}={a}" for q, a in self.call.answers.items()]
        return ", ".join(parts)
