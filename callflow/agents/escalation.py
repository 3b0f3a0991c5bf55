"""Seed 001 « Client demande un responsable »: escalation to a supervisor.

Phase 3A, as the hotliner does it:

1. The briefing card is filled (client, problème, demande, raison, avis,
   sensibilité, options) — through the API, or a minimal one when the agent
   escalates from the keypad.
2. « Je vais vous mettre en conférence avec [PRENOM_SUPERVISEUR]… (Petite
   attente, 30 secondes maximum) »: the caller hears that, then music on hold;
   the agent stays in the call's bridge.
3. The supervisor's phone rings (escalations queue up: urgent first, then the
   oldest). On answer the supervisor first hears the briefing summary (the
   whisper; the caller does not hear it), then joins the caller and the agent
   (« METTRE EN CONFÉRENCE ») or takes the caller alone (« TRANSFÉRER »).
4. Nobody answers within the 30 seconds: the agent takes the caller back with
   an explanation, and a supervisor callback is scheduled.

Everything lands on the call's record.
"""

from __future__ import annotations

import asyncio
import logging
import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from callflow.agents.bridges import Bridges
from callflow.agents.config import EscalationConfig
from callflow.agents.legs import CallNotes, drop_late_leg, originate_while_up
from callflow.agents.pool import Presence
from callflow.core.call import REGISTRY
from callflow.core.guard import Guard
from callflow.core.channel import Channel, CallerHungUp, OriginateResult
from callflow.core.handoff import Handoffs

log = logging.getLogger(__name__)

CONFERENCE, TRANSFER = "conference", "transfer"
WAITING, RINGING, CONNECTED, NO_ANSWER, ENDED, CANCELLED = "waiting", "ringing", "connected", "no_answer", "ended", "cancelled"

# caller prompts (sounds/prompts.yaml)
WAIT_PROMPTS = {CONFERENCE: "escalation_wait", TRANSFER: "escalation_wait_transfer"}
NO_ANSWER_PROMPT = "escalation_no_answer"
# Asterisk ends the supervisor's ring at the 30 s (the originate's own timeout); on a loaded PBX its word
# can come late or, across an ARI reconnect, not at all: our own clock ends the wait RING_GRACE s later.
RING_GRACE = 1.0
# « Le superviseur n'est pas disponible… » lasts ~8 s; a prompt whose end Asterisk has not reported
# within this bound is not waited for: the caller goes back to the agent, who explains it anyway.
EXPLANATION_BOUND = 12.0

BRIEFING_FIELDS = ("client", "probleme", "demande", "raison", "avis", "sensibilite")
MAX_FIELD = 2000

# Phase 2 « Vous me demandez un superviseur parce que : A) … B) … C) … D) »
MOTIFS = {
    "A": "pense que le superviseur peut faire ce que le hotliner ne peut pas",
    "B": "ne croit pas le hotliner / ne lui fait pas confiance",
    "C": "pense que la réponse n'est pas juste / équitable",
    "D": "autre raison",
}
# Phase 2 « MATRICE DE DÉCISION – ESCALADE JUSTIFIÉE ? »: situation → (verdict, the seed's words)
OUI, NON, PEUT_ETRE, REDIRECTION = "oui", "non", "peut_etre", "redirection"
MATRIX = {
    "ne_croit_pas": (OUI, "Client ne croit pas le hotliner (« Vous me mentez »)"),
    "exception": (OUI, "Hotliner a dit « Non » mais client pense mériter exception"),
    "technique": (OUI, "Problème technique complexe (hors compétences hotliner)"),
    "hors_perimetre": (REDIRECTION, "Demande hors-périmètre validée"),
    "agressif": (PEUT_ETRE, "Client très agressif/hostile (sécurité hotliner)"),
    "repete": (NON, "Client répète même question (déjà répondu 3x)"),
    "exception_possible": (OUI, "Demande légitime avec exception possible"),
    "teste": (NON, "Client « teste » le système"),
    "litige": (OUI, "Litige/compensation demandée"),
    "satisfaction_basse": (PEUT_ETRE, "Satisfaction client basse (mais problème identifié)"),
}
# Phase 4 « OPTIONS SUPERVISEUR »
DECISIONS = ("approuvee", "alternative", "refusee", "escaladee")


def justified(situation: str) -> str | None:
    """The matrix's verdict for a situation (None when the hotliner gave none)."""
    return MATRIX[situation][0] if situation in MATRIX else None


@dataclass
class Briefing:
    """Seed 001's « BRIEFING ESCALADE SUPERVISEUR » card."""

    client: str = ""  # Nom, ID, ancienneté, historique
    probleme: str = ""  # PROBLÈME PRINCIPAL
    demande: str = ""  # DEMANDE DU CLIENT
    raison: str = ""  # RAISON ESCALADE (dépasse autorité / exception / litige…)
    avis: str = ""  # MON AVIS (hotliner)
    sensibilite: str = ""  # SENSIBILITÉ CLIENT (frustration, risque churn, ton, agressivité)
    options: list[str] = field(default_factory=list)  # OPTIONS POUR SUPERVISEUR
    hotliner: str = ""
    urgent: bool = False
    motif: str = ""  # A–D (phase 2)
    situation: str = ""  # a MATRIX key: « Escalade justifiée ? »

    @property
    def justifiee(self) -> str | None:
        return justified(self.situation)

    @classmethod
    def minimal(cls, *, hotliner: str, summary: str = "", urgent: bool = False) -> "Briefing":
        """Escalated from the keypad: no time to type; the card says so."""
        return cls(probleme=summary or "escalade depuis le poste (briefing à compléter)",
                   demande="parler à un superviseur", raison="demandée par le conseiller (touche)",
                   hotliner=hotliner, urgent=urgent)

    @classmethod
    def from_json(cls, data: Any, *, hotliner: str = "") -> "Briefing":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError("the briefing is a JSON object")
        known = set(BRIEFING_FIELDS) | {"options", "urgent", "hotliner", "mode", "priority", "motif", "situation"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown briefing field(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name in BRIEFING_FIELDS + ("hotliner",):
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > MAX_FIELD:
                raise ValueError(f"briefing field {name!r} is a text of at most {MAX_FIELD} characters")
            values[name] = value.strip()
        options = data.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) and len(o) <= MAX_FIELD for o in options) or len(options) > 10:
            raise ValueError("briefing 'options' is a list of at most 10 texts")
        urgent = data.get("urgent", data.get("priority") == "urgent")
        if not isinstance(urgent, bool):
            raise ValueError("briefing 'urgent' is true or false")
        values["hotliner"] = values["hotliner"] or hotliner
        motif = str(data.get("motif") or "").upper()
        if motif and motif not in MOTIFS:
            raise ValueError("briefing 'motif' is A, B, C or D (seed 001 phase 2)")
        situation = str(data.get("situation") or "")
        if situation and situation not in MATRIX:
            raise ValueError(f"briefing 'situation' is one of {', '.join(MATRIX)}")
        return cls(options=[o.strip() for o in options], urgent=urgent, motif=motif, situation=situation, **values)

    def summary(self) -> str:
        parts = [f"{label}: {getattr(self, name)}" for name, label in
                 (("client", "client"), ("probleme", "problème"), ("demande", "demande"), ("raison", "raison"),
                  ("sensibilite", "sensibilité")) if getattr(self, name)]
        if self.motif:
            parts.append(f"motif {self.motif}: {MOTIFS[self.motif]}")
        if self.situation:
            parts.append(f"justifiée ? {self.justifiee} ({MATRIX[self.situation][1]})")
        return "; ".join(parts) or "escalade"


def whisper_prompts(briefing: Briefing, mode: str) -> list[str]:
    """What the supervisor hears before joining: the briefing summary, from rendered prompts."""
    prompts = ["whisper_escalation", "whisper_urgent" if briefing.urgent else "whisper_normal"]
    reason = f"{briefing.raison} {briefing.demande}".lower()
    if briefing.justifiee in (NON, PEUT_ETRE) and briefing.situation in ("repete", "teste"):
        prompts.append("whisper_reason_insists")  # Phase 3C: « escalade inutile mais demandée »
    elif "litige" in reason or briefing.situation == "litige":
        prompts.append("whisper_reason_dispute")
    elif any(w in reason for w in ("exception", "compensation", "rembours", "geste", "crédit", "credit")):
        prompts.append("whisper_reason_exception")
    elif any(w in reason for w in ("autorit", "technique", "complexe")):
        prompts.append("whisper_reason_authority")
    elif any(w in reason for w in ("insiste", "inutile", "persist")):
        prompts.append("whisper_reason_insists")
    else:
        prompts.append("whisper_reason_other")
    feel = briefing.sensibilite.lower()
    if "agress" in feel or "hostile" in feel:
        prompts.append("whisper_aggressive")
    if "churn" in feel and any(w in feel for w in ("haut", "élevé", "eleve", "critique", "rouge", "red", "🔴")):
        prompts.append("whisper_churn")
    prompts.append("whisper_transfer" if mode == TRANSFER else "whisper_conference")
    prompts.append("whisper_briefing_on_screen")
    return prompts


@dataclass
class Escalation:
    id: str
    call_id: str
    briefing: Briefing
    mode: str
    seq: int
    created_at: float  # epoch
    agent: str | None = None
    state: str = WAITING
    outcome: str = ""
    answered_at: float | None = None
    ended_at: float | None = None
    connected_at: float | None = None
    decision: dict | None = None  # the supervisor's outcome (phase 4–6)
    taken_by: str = ""  # the console's [Prendre l'appel]: the supervisor's own phone, rung at once
    line_skipped: bool = False  # nobody at the supervisors' line: it waits for a take (console) instead

    @property
    def urgent(self) -> bool:
        return self.briefing.urgent

    def as_dict(self) -> dict:
        data = asdict(self)
        data["priority"] = "urgent" if self.urgent else "normal"
        return data


LINE, TAKEN = "line", "taken"  # how an escalation got a supervisor (SupervisorQueue.wait_turn)


class SupervisorQueue:
    """Seed 001 §3.1 « ESCALADES EN ATTENTE »: urgent before normal, then the oldest; one supervisor line.

    A supervisor may also take a waiting escalation from the console ([Prendre l'appel]): it
    leaves the queue at once and rings that supervisor's own phone, the shared line or not.
    """

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self._seq = itertools.count(1)
        self.waiting: list[Escalation] = []
        self.active: Escalation | None = None  # ringing or talking with the supervisor
        self.taken: list[Escalation] = []  # taken from the console: ringing or talking with that supervisor
        self.history: list[Escalation] = []
        self._cond = asyncio.Condition()

    def new(self, call_id: str, briefing: Briefing, mode: str, agent: str | None) -> Escalation:
        seq = next(self._seq)
        esc = Escalation(id=f"esc-{seq}", call_id=call_id, briefing=briefing, mode=mode, seq=seq,
                         created_at=self.clock(), agent=agent)
        self.waiting.append(esc)
        return esc

    def ordered(self) -> list[Escalation]:
        return sorted(self.waiting, key=lambda e: (not e.urgent, e.seq))

    def _next_for_line(self) -> Escalation | None:
        return next((e for e in self.ordered() if not e.line_skipped), None)

    async def wait_turn(self, esc: Escalation, timeout: float) -> str | None:
        """LINE once `esc` holds the supervisor line, TAKEN once a supervisor took it from the console
        (ring `esc.taken_by`); None (and out of the queue) on timeout."""
        def turn() -> bool:
            return bool(esc.taken_by) or (not esc.line_skipped and self.active is None and self._next_for_line() is esc)

        async with self._cond:
            self._cond.notify_all()  # a newcomer may reorder the queue
            try:
                await asyncio.wait_for(self._cond.wait_for(turn), max(0.0, timeout))
            except asyncio.TimeoutError:
                self._drop(esc)
                self._cond.notify_all()
                return None
            except BaseException:
                self._drop(esc)
                self._cond.notify_all()
                raise
            self.waiting.remove(esc)
            if esc.taken_by:
                self.taken.append(esc)
                return TAKEN
            self.active = esc
            return LINE

    async def skip_line(self, esc: Escalation) -> None:
        """Nobody at the supervisors' line (phone not registered): free it, and wait for a take instead."""
        async with self._cond:
            if self.active is esc:
                self.active = None
            esc.line_skipped = True
            if esc not in self.waiting:
                self.waiting.append(esc)
            self._cond.notify_all()

    async def take(self, esc_id: str, endpoint: str) -> dict | None:
        """A supervisor takes this escalation from the console ([Prendre l'appel]): the escalation's
        own task rings `endpoint` (that supervisor's phone) at once, with the whisper as usual."""
        async with self._cond:
            for esc in ([self.active] if self.active else []) + self.taken:
                if esc.id == esc_id:
                    return esc.as_dict()  # already ringing or connected
            for esc in self.waiting:
                if esc.id == esc_id:
                    esc.taken_by = endpoint
                    self._cond.notify_all()
                    return esc.as_dict()
        return None

    def _drop(self, esc: Escalation) -> None:
        if esc in self.waiting:
            self.waiting.remove(esc)

    async def release(self, esc: Escalation, state: str, outcome: str = "") -> None:
        async with self._cond:
            self._drop(esc)
            if self.active is esc:
                self.active = None
            if esc in self.taken:
                self.taken.remove(esc)
            if esc.ended_at is None:
                esc.state = state
                esc.outcome = outcome or esc.outcome
                esc.ended_at = self.clock()
                self.history.append(esc)
                del self.history[:-200]
            self._cond.notify_all()

    def find(self, esc_id: str) -> Escalation | None:
        for esc in [*self.waiting, *([self.active] if self.active else []), *self.taken, *self.history]:
            if esc.id == esc_id:
                return esc
        return None

    def snapshot(self) -> dict:
        return {
            "waiting": [e.as_dict() for e in self.ordered()],
            "active": self.active.as_dict() if self.active else None,
            "taken": [e.as_dict() for e in self.taken],
            "history": [e.as_dict() for e in self.history[-50:]],
        }


@dataclass
class EscalationDeps:
    config: EscalationConfig
    queue: SupervisorQueue
    bridges: Bridges
    handoffs: Handoffs
    presence: Presence
    speech: object = None  # callflow.agents.speech.RuntimeSpeech: the card's own words in the whisper


@dataclass
class EscalationResult:
    escalation: Escalation
    supervisor_leg: Channel | None  # in the call's bridge when connected
    agent_released: bool  # transfer: the agent is out of the bridge; the desk ends their leg


async def escalate(deps: EscalationDeps, *, caller: Channel, call_id: str, bridge_id: str, agent_leg: Channel | None,
                   briefing: Briefing, mode: str, agent: str | None, notes: CallNotes,
                   notify=None) -> EscalationResult:
    """Run phase 3A → phase 4 (or the no-answer path). The caller stays on the line throughout."""
    cfg = deps.config
    esc = deps.queue.new(call_id, briefing, mode, agent)
    priority = "urgent" if briefing.urgent else "normal"
    await notes("escalation", f"{esc.id} {mode} {priority}: {briefing.summary()}")
    deadline = time.monotonic() + cfg.supervisor_answer_timeout
    got_line = False
    supervisor: Channel | None = None
    guard = Guard(REGISTRY.open(call_id), notes, notes.now)
    # the card's own words are rendered while the caller waits and the phone rings, not out of the
    # supervisor's 30 s once they answer (espeak on a loaded machine takes seconds)
    whisper = asyncio.ensure_future(_whisper(deps, briefing, mode))
    whisper.add_done_callback(lambda f: f.cancelled() or f.exception())  # a failure is seen where awaited
    try:
        # « Je vais vous mettre en conférence avec [PRENOM_SUPERVISEUR]… Petite attente, 30 secondes maximum »
        await guard.remove_caller(deps.bridges, bridge_id, caller, "escalation: the caller waits for the supervisor")
        await _within(caller.play(WAIT_PROMPTS[mode], barge_in=False), deadline)
        await caller.start_moh()
        turn = await deps.queue.wait_turn(esc, deadline - time.monotonic())
        while turn == LINE and not await deps.presence.registered(cfg.endpoint):
            # nobody at the supervisors' line: it stays in « ESCALADES EN ATTENTE » for the rest of the
            # promised 30 s, where a supervisor can take it to their own phone from the console
            await notes("escalation_supervisor", f"{esc.id} supervisor phone not registered: waits to be taken")
            await deps.queue.skip_line(esc)
            turn = await deps.queue.wait_turn(esc, deadline - time.monotonic())
        got_line = turn is not None
        result = None
        if got_line:
            endpoint = esc.taken_by if turn == TAKEN else cfg.endpoint
            if turn == TAKEN:
                await notes("escalation_taken", f"{esc.id} taken from the console: {endpoint}")
            if turn == LINE or await deps.presence.registered(endpoint):
                esc.state = RINGING
                await notes("escalation_ringing", f"{esc.id} {endpoint}")
                result = await _ring_until(caller, endpoint, deadline, caller_id=f'"Escalade {priority}" <{cfg.supervisor}>')
                await notes("escalation_supervisor", f"{esc.id} {result.cause}")
            else:
                await notes("escalation_supervisor", f"{esc.id} {endpoint} not registered")
        else:
            await notes("escalation_supervisor", f"{esc.id} no supervisor free for the whole wait")
        if result is not None and result.answered and result.channel is not None:
            supervisor = result.channel
            esc.answered_at = time.time()
            # the whisper: the supervisor hears the briefing, the caller does not. « 30 secondes maximum »
            # covers the caller's whole hold: at the deadline the conference starts, whisper heard or not
            for prompt in await whisper:
                remaining = deadline - time.monotonic()
                if not supervisor.is_up or remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(supervisor.play(prompt, language="fr", barge_in=False), remaining)
                except asyncio.TimeoutError:  # the cancelled playback stops (AriChannel.play)
                    await notes("escalation_whisper_cut", f"{esc.id}: the 30 s hold is over")
                    break
            if not supervisor.is_up:
                raise _SupervisorLeft()
            await caller.stop_moh()
            await deps.bridges.add(bridge_id, caller, supervisor)
            released = False
            if mode == TRANSFER and agent_leg is not None:
                await guard.remove_leg(deps.bridges, bridge_id, agent_leg)  # the desk ends the agent's leg
                released = True
            esc.state = CONNECTED
            esc.connected_at = time.time()
            await notes("escalation_connected", f"{esc.id} {mode} after {esc.connected_at - esc.created_at:.1f}s on hold")
            return EscalationResult(esc, supervisor, released)
        raise _SupervisorLeft()
    except _SupervisorLeft:
        # « Le superviseur n'est pas disponible… » — the agent takes the caller back
        if got_line:
            await deps.queue.release(esc, NO_ANSWER, "no answer within the wait")
        else:
            await deps.queue.release(esc, NO_ANSWER, "line busy within the wait")
        await caller.stop_moh()
        if not await _within(caller.play(NO_ANSWER_PROMPT, barge_in=False), time.monotonic() + EXPLANATION_BOUND):
            await notes("escalation_explanation_cut", f"{esc.id}: the PBX did not end the prompt within {EXPLANATION_BOUND:.0f}s")
        await deps.bridges.add(bridge_id, caller)
        await notes("escalation_back_to_agent", esc.id)
        callback = await deps.handoffs.schedule_callback(call_id, caller.caller.number, delay_seconds=cfg.callback_delay,
                                                         reason=f"escalade superviseur sans réponse: {briefing.summary()}"[:500],
                                                         target="supervisor")
        detail = f"{esc.id} supervisor callback " + (f"scheduled {callback.message_id}" if callback.accepted else f"refused: {callback.reason}")
        await notes("callback", detail)
        esc.outcome = detail
        if notify is not None:
            await notify("escalation_missed", call_id, f"{esc.id}: {briefing.summary()}")
        return EscalationResult(esc, None, False)
    except asyncio.CancelledError:
        # the desk is stopped (SIGTERM, a handler error) mid-escalation: the caller waits outside the bridge
        # and the supervisor may be hearing the whisper. A stop is never worse than a crash: the caller goes
        # back to the agent, with the supervisor who answered, and the controller watches that bridge.
        await deps.queue.release(esc, CANCELLED, "the desk stopped")
        if caller.is_up:
            await _together(deps.bridges, bridge_id, caller, supervisor, notes, esc.id)
        raise
    except CallerHungUp:
        await deps.queue.release(esc, CANCELLED, "caller left")
        raise


async def _together(bridges: Bridges, bridge_id: str, caller: Channel, supervisor: Channel | None, notes: CallNotes,
                    esc_id: str) -> None:
    """Caller, agent and (if answered) supervisor in the call's bridge, whatever step was cut."""
    try:
        await caller.stop_moh()
    except Exception:
        pass
    try:
        members = await bridges.members(bridge_id) if bridge_id else []
        joining = [c for c in (caller, supervisor) if c is not None and c.is_up and c.id not in members]
        if bridge_id and joining:
            await bridges.add(bridge_id, *joining)
        await notes("escalation_interrupted", f"{esc_id}: the desk stopped; caller back with the agent"
                    + (" and the supervisor" if supervisor is not None and supervisor.is_up else ""))
    except Exception:
        log.exception("escalation: could not bring the caller back to the bridge", extra={"bridge": bridge_id})


@dataclass
class Outcome:
    """Phase 6 « FICHE DE SUIVI POST-ESCALADE »: what the supervisor decided."""

    decision: str  # approuvee / alternative / refusee / escaladee (« escalader encore »)
    valeur_eur: float | None = None  # the exception's value (« Coût moyen exception »)
    motif_decision: str = ""
    prochaines_etapes: list[str] = field(default_factory=list)
    justifiee: bool | None = None  # the supervisor's view of the escalation (« Escalades inutiles »)
    satisfaction: int | None = None  # 1–5, « Satisfaction post-escalade »
    feedback_hotliner: str = ""  # §4.1 email to the hotliner
    superviseur: str = ""

    @classmethod
    def from_json(cls, data: Any) -> "Outcome":
        if not isinstance(data, dict):
            raise ValueError("the outcome is a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown outcome field(s): {', '.join(sorted(unknown))}")
        decision = data.get("decision")
        if decision not in DECISIONS:
            raise ValueError(f"outcome 'decision' is one of {', '.join(DECISIONS)}")
        value = data.get("valeur_eur")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100000):
            raise ValueError("outcome 'valeur_eur' is a number of euros")
        satisfaction = data.get("satisfaction")
        if satisfaction is not None and (isinstance(satisfaction, bool) or not isinstance(satisfaction, int)
                                         or not 1 <= satisfaction <= 5):
            raise ValueError("outcome 'satisfaction' is a whole number from 1 to 5")
        just = data.get("justifiee")
        if just is not None and not isinstance(just, bool):
            raise ValueError("outcome 'justifiee' is true or false")
        texts = {}
        for name in ("motif_decision", "feedback_hotliner", "superviseur"):
            v = data.get(name, "")
            if not isinstance(v, str) or len(v) > MAX_FIELD:
                raise ValueError(f"outcome {name!r} is a text of at most {MAX_FIELD} characters")
            texts[name] = v.strip()
        steps = data.get("prochaines_etapes", [])
        if not isinstance(steps, list) or len(steps) > 5 or not all(isinstance(x, str) and len(x) <= 500 for x in steps):
            raise ValueError("outcome 'prochaines_etapes' is a list of at most 5 texts")
        return cls(decision=decision, valeur_eur=None if value is None else float(value), justifiee=just,
                   satisfaction=satisfaction, prochaines_etapes=[x.strip() for x in steps], **texts)


async def _whisper(deps: EscalationDeps, briefing: Briefing, mode: str) -> list[str]:
    prompts = whisper_prompts(briefing, mode)
    if deps.speech is not None:
        from callflow.agents.speech import briefing_text

        text = briefing_text(briefing.client, briefing.probleme, briefing.demande, briefing.avis)
        spoken = await deps.speech.prompt(text, "fr") if text else None
        if spoken:
            prompts.insert(len(prompts) - 2, spoken)  # before « vous rejoignez l'appel… »
    return prompts


async def _ring_until(caller: Channel, endpoint: str, deadline: float, *, caller_id: str) -> OriginateResult:
    """Ring the supervisor until the seed's 30 s are over, by Asterisk's word or, if that is late, by ours.

    Past the deadline nobody waits for this leg any more: if it still answers it is hung up at once
    (the caller is already back with the agent)."""
    remaining = max(1.0, deadline - time.monotonic())
    ringing = asyncio.ensure_future(originate_while_up(caller, endpoint, timeout=remaining, caller_id=caller_id))
    try:
        return await asyncio.wait_for(asyncio.shield(ringing), remaining + RING_GRACE)
    except asyncio.TimeoutError:
        ringing.add_done_callback(drop_late_leg)
        return OriginateResult(answered=False, cause="no_answer (the PBX had not ended the ring at the deadline)")
    except BaseException:
        ringing.cancel()  # stopped from outside: as before, a leg that answers later is the controller's
        raise


async def _within(playing, deadline: float) -> bool:
    """A prompt that must end by `deadline`: False when it was stopped there (cancelling stops the sound)."""
    try:
        await asyncio.wait_for(playing, max(0.1, deadline - time.monotonic()))
        return True
    except asyncio.TimeoutError:
        return False


class _SupervisorLeft(Exception):
    """Nobody (or nobody still there) took the escalation."""
