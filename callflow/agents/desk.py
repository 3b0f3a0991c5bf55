"""The agents' desk: hand a caller to a person on a SIP desk phone, and what happens during that call.

`AgentDesk.hand_to_agent` implements callflow.core.agents.Agents:

1. The caller hears the holding words (« Un conseiller va vous répondre… restez
   en ligne ») then music on hold.
2. The longest-idle available agent (registered phone, not in wrap-up or pause)
   is rung from the caller's channel; no answer → the next one; nobody → the
   caller stays on hold and the agents are tried again every few seconds.
3. After `hold_max_wait` on hold the caller is offered a callback (1 = oui);
   with or without it they may keep waiting. We never hang the caller up.
4. An agent answers: (urgent calls: a short whisper « appel urgent ») the
   caller and the agent share the call's mixing bridge.
5. During the call the agent's keys (feature codes) and the local HTTP API
   drive: escalation (conference / transfer, callflow/agents/escalation.py),
   emergency (callflow/agents/emergency.py), firm closing
   (callflow/agents/closing.py), flags (aggressive → pause, churn red →
   supervisor notified + J+1 follow-up).
6. The agent's leg ends without a deliberate action (the agent hangs up, the
   phone drops): the caller goes back to the head of the queue, never hung up.
   The call ends only by the agent's closing code (seed 002) or the caller.
   In an emergency nothing of ours ends, moves or un-bridges the caller.
7. The desk stops (SIGTERM, a handler error, a cancelled task) while a person
   is with the caller: the people and the bridge are left as they are (the
   controller adopts the bridge): a stop is never worse than a crash.

Every hang-up, bridge deletion and move of the caller goes through the call's
guard (callflow/core/guard.py); the call's state is its one `Call`.

Every action of the call runs in the call's own task, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from callflow.agents.bridges import Bridges, bridge_id_for
from callflow.agents.callback_leg import whisper_for as callback_whisper
from callflow.agents.config import AgentsConfig, EscalationConfig, FeatureCodes
from callflow.agents.features import KeySequence
from callflow.agents.legs import CallNotes, originate_while_up, play_all, wait_down
from callflow.agents.overflow import MESSAGE_KEY, SLOT_KEYS, SLOT_PROMPTS, SLOT_REASONS, WaitingLine, position_prompts, slot_delay
from callflow.agents.pool import Agent, AgentPool, AlwaysPresent, Presence
from callflow.core.agents import CALLER_STILL_HERE, Diagnosis
from callflow.core.call import REGISTRY, BadTransition, Call, CallState
from callflow.core.guard import Guard
from callflow.core.channel import Channel, CallerHungUp, DigitInput
from callflow.core.handoff import Handoffs
from callflow.core.recorder import CallRecorder
from callflow.agents import closing
from callflow.agents.anger import IncidentCard, RaisedVoiceWatch, schedule_followups
from callflow.handoff import templates
from callflow.agents.escalation import (
    CONFERENCE,
    CONNECTED,
    ENDED,
    TRANSFER,
    Briefing,
    EscalationDeps,
    Outcome,
    SupervisorQueue,
    escalate,
)

log = logging.getLogger(__name__)

PROMPT_LANGUAGES = ("fr", "en", "es", "it")
FOREIGN = ("en", "es", "it")  # a caller who chose one of these is offered to an agent who speaks it first
ACTIONS = ("escalate", "transfer", "emergency", "close", "flag_aggressive", "flag_churn_red")


@dataclass
class Command:
    action: str
    source: str  # "keypad:2001", "api"
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class LiveCall:
    """The desk's working state for one call with a person: the queue, the agent, the legs, the flags. Who
    the caller is, the channel and the durable state are the `Call`'s (callflow/core/call.py)."""

    call: Call  # the call's one state, with the caller's live channel on it
    diagnosis: Diagnosis
    language: str
    group: str
    notes: CallNotes
    started_at: float = field(default_factory=time.time)
    state: str = "holding"  # holding, with_agent, escalating, conference, with_supervisor, emergency, closing, ended
    agent: Agent | None = None
    legs: dict[str, Channel] = field(default_factory=dict)  # "agent", "supervisor"
    bridge_id: str | None = None
    escalation: Any = None
    aggressive: bool = False
    churn_red: bool = False
    callback: str | None = None
    connected_at: float | None = None
    voice_watch: Any = None  # callflow.agents.anger.RaisedVoiceWatch while an agent has the call
    raised_voice: bool = False
    followups: bool = False  # seed 004 §3.3: J+1 / J+3 scheduled  # monotonic, when an agent joined (the waiting line's estimate)
    emergency_task: asyncio.Task | None = None
    commands: asyncio.Queue = field(default_factory=asyncio.Queue)
    guard: Guard | None = None  # the only way this caller is hung up, moved or un-bridged
    requeued: bool = False  # an agent's leg dropped: back at the head of the queue

    def move(self, state: CallState, why: str = "") -> None:
        try:
            self.call.move(state, why)
        except BadTransition:
            log.warning("call state: move refused", extra={"call": self.call_id, "to": state.value, "why": why})

    @property
    def emergency_running(self) -> bool:
        return self.emergency_task is not None and not self.emergency_task.done()

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def caller(self) -> Channel:
        return self.call.channel

    def as_dict(self) -> dict:
        return {
            "call_id": self.call_id,
            "state": self.state,
            "agent": self.agent.extension if self.agent else None,
            "legs": {role: leg.id for role, leg in self.legs.items() if leg.is_up},
            "bridge": self.bridge_id,
            "diagnosis": {"summary": self.diagnosis.summary, "urgent": self.diagnosis.urgent,
                          "call_type": self.diagnosis.call_type, "answers": dict(self.diagnosis.answers)},
            "language": self.language,
            "group": self.group,
            "aggressive": self.aggressive,
            "churn_red": self.churn_red,
            "raised_voice": self.raised_voice,
            "emergency": bool(self.call and self.call.emergency),
            "started_at": self.started_at,
        }


class _EndCall(Exception):
    """The conversation is over (closing done, caller gone…)."""


class _MessageLeft(Exception):
    """Seed 003 overflow: the caller chose to leave a message instead of waiting."""


class AgentDesk:
    def __init__(self, *, pool: AgentPool, recorder: CallRecorder, handoffs: Handoffs, bridges: Bridges,
                 config: AgentsConfig | None = None, escalation: EscalationConfig | None = None,
                 codes: FeatureCodes | None = None, emergency=None, presence: Presence | None = None,
                 queue: SupervisorQueue | None = None, speech=None, messages=None,
                 until_next_opening=None) -> None:
        self.pool = pool
        self.config = config or pool.config
        self.recorder = recorder
        self.handoffs = handoffs
        self.bridges = bridges
        self.codes = codes or FeatureCodes()
        self.emergency = emergency  # callflow.agents.emergency.EmergencyBridge (set after construction if circular)
        self.escalation_config = escalation or EscalationConfig()
        self.queue = queue or SupervisorQueue()
        self.presence = presence or pool.presence or AlwaysPresent()
        self.speech = speech  # callflow.agents.speech.RuntimeSpeech, or None: fixed prompts only
        self.live: dict[str, LiveCall] = {}
        self.notifications: list[dict] = []
        # seed 003 « débordement »: the ordered line of waiting callers, the message desk (key 4 of the
        # overflow offer; None: the plain callback offer) and when the line next opens (slot 3)
        self.line = WaitingLine()
        # for what comes after the call (outcome, incident card): number, start, flags of recent calls
        self._numbers: dict[str, str | None] = {}
        self._started: dict[str, float] = {}
        self._flags: dict[str, dict] = {}
        self.messages = messages  # callflow.agents.after_hours.MessageDesk (source "overflow")
        self.until_next_opening = until_next_opening or (lambda: None)

    # -- callflow.core.agents.Agents ---------------------------------------------------------
    async def hand_to_agent(self, call: Call, diagnosis: Diagnosis, language: str) -> str | None:
        call = REGISTRY.join(call)
        notes = CallNotes(self.recorder, call.call_id, call.channel)
        if len(self._numbers) > 2000:
            for table in (self._numbers, self._started, self._flags):
                table.clear()
        self._numbers[call.call_id] = call.caller.number
        self._started[call.call_id] = time.monotonic() - notes.now()
        # the agent group ("multi" when no language was chosen) is shown to the agents; prompts need a real language
        spoken = language if language in PROMPT_LANGUAGES else (call.caller.language or "fr")
        live = LiveCall(call=call, diagnosis=diagnosis, language=spoken, group=language, notes=notes)
        live.guard = Guard(live.call, notes, notes.now)
        if diagnosis.urgent:
            live.call.mark_urgent(diagnosis.summary)
        else:
            live.call.diagnose(diagnosis.summary)
        self.live[call.call_id] = live
        await notes("agent_queue", f"{language}{' urgent' if diagnosis.urgent else ''}: {diagnosis.summary}")
        ended_here = False
        try:
            while True:
                await self._connect_agent(live)
                ended = await self._conversation(live)
                if ended == "reroute":
                    continue
                ended_here = True
                return
        except (CallerHungUp, _EndCall):
            ended_here = True
            return None
        except _MessageLeft:
            ended_here = True
            return CALLER_STILL_HERE if call.channel.is_up else None
        finally:
            self.line.leave(call.call_id)
            # stopped from outside (SIGTERM, a cancelled task, an error) with the caller still there:
            # leave the people with the caller; the controller adopts the bridge
            await self._cleanup(live, leave_people=not ended_here and live.caller.is_up)

    # -- 1-3: hold, ring the agents, callback offer ------------------------------------------
    async def _connect_agent(self, live: LiveCall) -> None:
        caller, cfg = live.caller, self.config
        live.state = "holding"
        live.move(CallState.WAITING_AGENT, "waiting for an agent")
        with_the_line = "emergency" in live.call.legs  # talking with the emergency operator: no music over them
        if live.bridge_id is not None and not with_the_line:
            await live.guard.remove_caller(self.bridges, live.bridge_id, caller, "back on hold")
        if not with_the_line:
            # the holding words, then music
            if cfg.hold_prompt:
                await caller.play(cfg.hold_prompt, language=live.language, barge_in=False)
            await caller.start_moh()
            await live.notes("hold", "music on hold")
        hold_started = queued_at = announced = time.monotonic()
        foreign = live.group if live.group in FOREIGN else None
        # seed 003: one line, urgent first, then arrival; a caller whose agent's leg dropped goes back to its head
        waiting = self.line.join(live.call_id, urgent=live.diagnosis.urgent, language=foreign, first=live.requeued)
        # the position is announced once no agent could be had at once (a free agent rings straight away),
        # then every position_interval; never over a conversation with the emergency line
        announce = self.messages is not None and not with_the_line
        announced_yet = False
        while True:
            # seed 000 cas E: an agent who speaks the caller's language first, anyone after agents.language_wait
            if waiting.language is not None and time.monotonic() - queued_at >= cfg.language_wait:
                waiting.language = None
            for agent in await self.pool.candidates(waiting.language):
                if not caller.is_up:
                    raise CallerHungUp(live.call_id)
                if self.line.first_for(agent.languages) != live.call_id:
                    continue  # seed 003: urgent first, then arrival — a caller before us takes this agent
                if not self.pool.claim(agent, live.call_id):
                    continue
                leg = await self._ring(live, agent)
                if leg is not None and await self._join(live, agent, leg):
                    self.line.leave(live.call_id)
                    return
            if time.monotonic() - hold_started >= cfg.hold_max_wait and (live.callback is None or self.messages):
                if self.messages is not None:
                    await self._overflow_offer(live)
                else:
                    await self._offer_callback(live)
                hold_started = announced = time.monotonic()
            elif announce and (not announced_yet or time.monotonic() - announced >= cfg.position_interval):
                await caller.stop_moh()
                await self._announce_position(live)
                await caller.start_moh()
                announced, announced_yet = time.monotonic(), True
            if await wait_down(caller, timeout=cfg.retry_interval) is caller:
                raise CallerHungUp(live.call_id)

    async def _announce_position(self, live: LiveCall) -> None:
        """« Vous êtes le prochain » / « Attente estimée : … » (seed 003: the call never rings into the void)."""
        online = [a for a in await self.pool.candidates()] or []
        busy = sum(1 for a in self.pool.agents.values() if a.state.value in ("on_call", "ringing", "wrap_up"))
        position = self.line.position(live.call_id)
        estimate = self.line.estimate(live.call_id, len(online) + busy)
        await live.notes("queue_position", f"{position}, estimated {estimate / 60:.0f} min")
        for prompt in position_prompts(position, estimate):
            await live.caller.play(prompt, language=live.language, barge_in=False)

    async def _overflow_offer(self, live: LiveCall) -> None:
        """Seed 003 « débordement »: 1 = 5 minutes, 2 = dans l'heure, 3 = à l'ouverture, 4 = message, else wait."""
        caller = live.caller
        await caller.stop_moh()
        await live.notes("overflow_offer", f"after {self.config.hold_max_wait:.0f}s on hold")
        caller.flush_input()
        result = await caller.play("overflow_offer", language=live.language)
        got = result.interrupted_by or await caller.next_input(self.config.offer_timeout, accept_taps=False)
        key = got.digit if isinstance(got, DigitInput) else None
        caller.flush_input()
        await live.notes("overflow_answer", key or "timeout")
        if key == MESSAGE_KEY:
            from callflow.agents.after_hours import take_message

            ticket = await take_message(live.call, self.messages, diagnosis=live.diagnosis, language=live.language,
                                        notes=live.notes)
            if ticket is not None:
                raise _MessageLeft()
        elif key in SLOT_KEYS:
            slot = SLOT_KEYS[key]
            delay = slot_delay(slot, hour_delay=self.config.slot_hour_delay, until_next_opening=self.until_next_opening)
            result = await self.handoffs.schedule_callback(live.call_id, caller.caller.number, delay_seconds=delay,
                                                           reason=f"{SLOT_REASONS[slot]}: aucun conseiller disponible",
                                                           target="agents")
            if result.accepted:
                live.callback = result.message_id or "scheduled"
                await live.notes("callback", f"slot {slot} in {delay / 60:.0f} min: scheduled {live.callback}")
                await caller.play(SLOT_PROMPTS[slot], language=live.language, barge_in=False)
            else:
                await live.notes("callback", f"slot {slot} refused: {result.reason}")
                await caller.play("callback_impossible", language=live.language, barge_in=False)
        caller.flush_input()
        await caller.start_moh()

    async def _ring(self, live: LiveCall, agent: Agent) -> Channel | None:
        await live.notes("agent_ring", agent.extension)
        number = live.caller.caller.number
        try:
            result = await originate_while_up(live.caller, agent.endpoint, timeout=self.config.ring_timeout,
                                              caller_id=f'"{_clip(live.diagnosis.summary)}" <{number or "anonymous"}>')
        except BaseException:
            self.pool.unanswered(agent)
            raise
        await live.notes("agent_result", f"{agent.extension}: {result.cause}")
        if not result.answered or result.channel is None:
            self.pool.unanswered(agent)
            return None
        self.pool.answered(agent, live.call_id)
        return result.channel

    async def _join(self, live: LiveCall, agent: Agent, leg: Channel) -> bool:
        caller = live.caller
        # what the agent hears before the caller: « appel urgent », « rappel d'un appelant / d'un proche »
        whisper = (["agent_whisper_urgent"] if live.diagnosis.urgent else []) + callback_whisper(live.call.args)
        if whisper:
            await play_all(leg, whisper, language="fr")
        if not leg.is_up:
            self.pool.call_ended(agent)
            await live.notes("agent_result", f"{agent.extension}: hung up before the bridge")
            return False
        await caller.stop_moh()
        live.bridge_id = live.bridge_id or live.call.bridge_id  # the emergency line may already share one
        if live.bridge_id is None:
            live.bridge_id = await self.bridges.create(bridge_id_for(live.call_id), caller, leg)
        else:
            members = await self.bridges.members(live.bridge_id)
            await self.bridges.add(live.bridge_id, *[c for c in (caller, leg) if c.id not in members])
        live.call.set_bridge(live.bridge_id)
        live.call.set_leg("agent", leg.id)
        live.requeued = False
        live.agent, live.legs["agent"], live.state = agent, leg, "with_agent"
        live.move(CallState.WITH_AGENT, f"agent {agent.extension}")
        live.connected_at = time.monotonic()
        await self._watch_voice(live)
        await live.notes("agent_connected", f"{agent.extension} bridge {live.bridge_id}")
        return True

    async def _offer_callback(self, live: LiveCall) -> None:
        caller = live.caller
        await caller.stop_moh()
        await live.notes("callback_offer", f"after {self.config.hold_max_wait:.0f}s on hold")
        caller.flush_input()
        # « Tous nos conseillers sont encore en ligne. Pour être rappelé, tapez 1. Sinon, restez en ligne. »
        await caller.play("callback_offer", language=live.language)
        got = await caller.next_input(self.config.offer_timeout, accept_taps=True)
        key = got.digit if isinstance(got, DigitInput) else (str(got.count) if got is not None else None)
        await live.notes("callback_answer", key or "timeout")
        if key == "1":
            result = await self.handoffs.schedule_callback(live.call_id, caller.caller.number,
                                                           delay_seconds=self.config.callback_delay,
                                                           reason="rappel demandé: aucun conseiller disponible",
                                                           target="agents")
            if result.accepted:
                live.callback = result.message_id or "scheduled"
                await live.notes("callback", f"scheduled {live.callback}")
                await caller.play("callback_confirmed", language=live.language, barge_in=False)
            else:
                await live.notes("callback", f"refused: {result.reason}")
                await caller.play("callback_impossible", language=live.language, barge_in=False)
        caller.flush_input()
        await caller.start_moh()

    # -- 4-6: the conversation ----------------------------------------------------------------
    async def _conversation(self, live: LiveCall) -> str:
        pumps: dict[str, asyncio.Task] = {}
        try:
            while True:
                for role, leg in list(live.legs.items()):
                    if leg.is_up and role not in pumps:
                        pumps[role] = asyncio.ensure_future(self._keypad(live, role, leg))
                if not live.caller.is_up:
                    raise CallerHungUp(live.call_id)
                gone = [role for role, leg in live.legs.items() if not leg.is_up]
                for role in gone:
                    del live.legs[role]
                    pump = pumps.pop(role, None)
                    if pump:
                        pump.cancel()
                    outcome = await self._person_left(live, role)
                    if outcome:
                        return outcome
                if live.emergency_task is not None and live.emergency_task.done():
                    await self._emergency_done(live)
                if live.voice_watch is not None and live.voice_watch.check():
                    await self._raised_voice(live)
                if not live.legs and not live.emergency_running:
                    return "reroute"  # latched: the emergency line ended and nobody is with the caller
                try:
                    command = await asyncio.wait_for(live.commands.get(), 0.2)
                except asyncio.TimeoutError:
                    continue
                await self._execute(live, command)
        finally:
            for pump in pumps.values():
                pump.cancel()

    async def _keypad(self, live: LiveCall, role: str, leg: Channel) -> None:
        keys = KeySequence(self.codes)
        who = live.agent.extension if role == "agent" and live.agent else role
        try:
            while leg.is_up:
                got = await leg.next_input(30.0, accept_taps=False)
                if not isinstance(got, DigitInput):
                    continue
                action = keys.feed(got.digit, time.monotonic())
                if action is not None:
                    leg.flush_input()
                    live.commands.put_nowait(Command(action, f"keypad:{who}"))
        except CallerHungUp:
            return

    async def _person_left(self, live: LiveCall, role: str) -> str | None:
        await live.notes("leg_ended", role)
        live.call.set_leg(role, None)
        if role == "supervisor" and live.escalation is not None:
            await self.queue.release(live.escalation, ENDED, "supervisor left the call")
        if role == "agent" and live.agent is not None:
            self._agent_done(live)
        if live.legs:  # somebody is still with the caller (conference)
            live.state = "with_supervisor" if "supervisor" in live.legs else "with_agent"
            return None
        if live.call.emergency and live.emergency_running:
            # « Ne JAMAIS raccrocher »: the caller stays with the emergency line, then the next agent
            await live.notes("hangup_refused", f"{role} left an emergency call: the caller stays with the emergency line")
            return None
        # Not a deliberate end (that is the closing code): a dropped phone or a person who hung up.
        # The caller is never hung up for it: back to the head of the queue, with the diagnosis.
        await live.notes("agent_leg_dropped", f"{role}: the caller goes back to the head of the queue")
        live.requeued = True
        return "reroute"

    async def _execute(self, live: LiveCall, command: Command) -> None:
        await live.notes("feature", f"{command.action} ({command.source})")
        action = command.action
        if action in ("escalate", "transfer"):
            await self._escalate(live, command)
        elif action == "emergency":
            await self._emergency(live, command)
        elif action == "close":
            await self._close(live)
        elif action == "flag_aggressive":
            await self._flag_aggressive(live, command)
        elif action == "flag_churn_red":
            await self._flag_churn_red(live, command)
        else:
            await live.notes("feature_unknown", action)

    async def _escalate(self, live: LiveCall, command: Command) -> None:
        if live.emergency_running:
            await live.notes("escalation_refused", "the emergency line is being called or is in the call")
            return
        if "supervisor" in live.legs or live.escalation is not None and live.escalation.state == CONNECTED:
            await live.notes("escalation_ignored", "the supervisor is already in the call")
            return
        mode = TRANSFER if command.action == "transfer" else command.payload.get("mode") or CONFERENCE
        if mode not in (CONFERENCE, TRANSFER):
            mode = self.escalation_config.default_mode
        hotliner = live.agent.extension if live.agent else ""
        briefing = command.payload.get("briefing")
        if not isinstance(briefing, Briefing):
            briefing = Briefing.minimal(hotliner=hotliner, summary=live.diagnosis.summary, urgent=live.diagnosis.urgent)
        deps = EscalationDeps(self.escalation_config, self.queue, self.bridges, self.handoffs, self.presence,
                              self.speech)
        live.state = "escalating"
        live.move(CallState.ESCALATING, command.action)
        result = await escalate(deps, caller=live.caller, call_id=live.call_id, bridge_id=live.bridge_id or "",
                                agent_leg=live.legs.get("agent"), briefing=briefing, mode=mode,
                                agent=hotliner or None, notes=live.notes, notify=self.notify)
        live.escalation = result.escalation
        if result.supervisor_leg is not None:
            live.legs["supervisor"] = result.supervisor_leg
            if result.agent_released:
                await live.guard.drop_leg(live.legs.pop("agent", None), "agent", "transferred to the supervisor",
                                          caller_up=live.caller.is_up)
                self._agent_done(live)
                live.state = "with_supervisor"
            else:
                live.state = "conference"
        else:
            live.state = "with_agent"
        if result.supervisor_leg is not None:
            live.call.set_leg("supervisor", result.supervisor_leg.id)
        live.move(CallState.WITH_AGENT, "escalation over")

    async def _emergency(self, live: LiveCall, command: Command) -> None:
        if self.emergency is None:
            await live.notes("emergency_unavailable", "no emergency bridge configured")
            return
        if live.emergency_running:
            await live.notes("emergency_ignored", "the emergency line is already being called")
            return
        live.state = "emergency"
        live.call.latch_emergency("agent's emergency code")
        situation = str(command.payload.get("situation") or "urgence signalée par le conseiller")[:300]
        # runs beside the conversation: the agent's keys and the API still answer meanwhile
        live.emergency_task = asyncio.ensure_future(self.emergency.run(
            live.caller, live.call_id, caller_number=live.caller.caller.number, situation=situation,
            answers=dict(live.diagnosis.answers), notes=live.notes, bridge_id=live.bridge_id, by_agent=True))

    async def _emergency_done(self, live: LiveCall) -> None:
        task, live.emergency_task = live.emergency_task, None
        if task is None:
            return
        if not task.cancelled() and task.exception() is not None:
            await live.notes("emergency_error", repr(task.exception()))
        live.state = "with_agent" if "agent" in live.legs else ("with_supervisor" if live.legs else "holding")

    async def _close(self, live: LiveCall) -> None:
        if live.call.emergency:
            await closing.firm_closing(live.caller, live.call_id, live.notes, guard=live.guard)  # records the refusal
            return
        live.state = "closing"
        if live.bridge_id:
            await live.guard.remove_caller(self.bridges, live.bridge_id, live.caller, "firm closing")
        await closing.firm_closing(live.caller, live.call_id, live.notes, language=live.language, guard=live.guard,
                                   step_wait=self.config.closing_step_wait)
        raise _EndCall()

    async def _flag_aggressive(self, live: LiveCall, command: Command) -> None:
        if live.aggressive:
            return
        live.aggressive = True
        if live.agent:
            self.pool.flag_aggressive(live.agent)
        await live.notes("flag", f"agressif: pause de {self.config.aggressive_pause:.0f}s après l'appel")
        await self.notify("aggressive_call", live.call_id,
                          f"agent {live.agent.extension if live.agent else '?'}: pause après appel agressif")
        await self._followups(live, "appel agressif (*7)")

    async def _flag_churn_red(self, live: LiveCall, command: Command) -> None:
        if live.churn_red:
            return
        live.churn_red = True
        await live.notes("flag", "risque churn rouge: superviseur averti, suivi J+1 et J+3")
        await self.notify("churn_red", live.call_id, str(command.payload.get("detail") or live.diagnosis.summary)[:500])
        await self._followups(live, "risque churn rouge")

    async def _followups(self, live: LiveCall, why: str) -> None:
        """Seed 004 §3.2/§3.3: the supervisor calls back at J+1 and J+3 (once per call)."""
        if live.followups:
            return
        live.followups = True
        for delay, result in await schedule_followups(self.handoffs, live.call_id, live.caller.caller.number,
                                                      delays=[self.config.followup_delay, self.config.followup_j3_delay],
                                                      why=why):
            await live.notes("callback", f"J+{max(1, round(delay / 86400))} follow-up "
                             + (f"scheduled {result.message_id}" if result.accepted else f"refused: {result.reason}"))

    async def _watch_voice(self, live: LiveCall) -> None:
        """Seed 004 « voix forte »: Asterisk's talk detector with a shouting threshold, while an agent has the call."""
        cfg = self.config
        if not cfg.raised_voice_threshold or live.voice_watch is not None:
            return
        watch = RaisedVoiceWatch(seconds=cfg.raised_voice_seconds, window=cfg.raised_voice_window)
        live.voice_watch = watch
        try:
            await live.caller.watch_loudness(cfg.raised_voice_threshold,
                                             lambda loud: watch.started() if loud else watch.finished())
        except CallerHungUp:
            raise
        except Exception:
            log.exception("level watch not started", extra={"call": live.call_id})

    async def _raised_voice(self, live: LiveCall) -> None:
        live.raised_voice = True
        detail = (f"voix forte: {live.voice_watch.loud_seconds():.0f}s sur {self.config.raised_voice_window:.0f}s"
                  f" (agent {live.agent.extension if live.agent else '?'})")
        await live.notes("raised_voice", detail)
        await self.notify("raised_voice", live.call_id, detail)
        agent = live.legs.get("agent")
        if agent is not None and agent.is_up:
            try:
                await agent.play("whisper_raised_voice", language="fr", barge_in=False)  # only the agent hears it
            except CallerHungUp:
                pass

    async def notify(self, kind: str, call_id: str, detail: str) -> None:
        """A notification for the supervisor (API GET /api/notifications) and the call's record."""
        item = {"kind": kind, "call_id": call_id, "detail": detail, "at": time.time(),
                "to": self.escalation_config.supervisor}
        self.notifications.append(item)
        del self.notifications[:-500]
        live = self.live.get(call_id)
        if live is not None:
            await live.notes("notification", f"{kind}: {detail}")

    # -- after the call: seed 001's outcome, seed 004's incident card ----------------------------
    async def escalation_outcome(self, esc_id: str, data: dict) -> dict:
        """Phase 4–6: the supervisor's decision on the call's record, and the §4 emails through the outbox."""
        esc = self.queue.find(esc_id)
        if esc is None:
            raise KeyError(esc_id)
        outcome = Outcome.from_json(data)
        if esc.decision is not None:
            raise ValueError(f"{esc_id} already has an outcome")
        hold = (esc.connected_at or esc.ended_at or time.time()) - esc.created_at
        answer = None if esc.answered_at is None else esc.answered_at - esc.created_at
        esc.decision = {**asdict(outcome), "escalation": esc.id, "motif": esc.briefing.motif,
                        "situation": esc.briefing.situation, "justifiee_matrice": esc.briefing.justifiee,
                        "hold_seconds": round(hold, 1), "answer_seconds": None if answer is None else round(answer, 1),
                        "state": esc.state, "hotliner": esc.agent}
        await self._post_call_note(esc.call_id, "escalation_outcome", json.dumps(esc.decision, ensure_ascii=False))
        client, hotliner = templates.escalation_emails(
            decision=outcome.decision, value_eur=outcome.valeur_eur, reason=outcome.motif_decision,
            steps=outcome.prochaines_etapes, supervisor=outcome.superviseur, hotliner=esc.agent or "",
            feedback=outcome.feedback_hotliner, call_id=esc.call_id)
        results = await self.handoffs.escalation_emails(esc.call_id, self._numbers.get(esc.call_id), client=client,
                                                        hotliner=hotliner,
                                                        hotliner_email=self.escalation_config.hotliner_email)
        sent = [r.message_id for r in results if r.accepted]
        await self._post_call_note(esc.call_id, "escalation_emails",
                                   ", ".join(sent) if sent else "none: " + ", ".join(r.reason for r in results))
        return esc.decision

    async def incident_card(self, call_id: str, data: dict) -> dict:
        """Seed 004 §3.1: the card, with what the system knows, on the call's record; churn red → §3.2."""
        card = IncidentCard.from_json(data)
        live = self.live.get(call_id)
        known = self._flags.get(call_id)
        if live is None and known is None:
            raise KeyError(call_id)
        flags = known or {}
        if live is not None:
            flags = {"hotliner": live.agent.extension if live.agent else None, "agressif": live.aggressive,
                     "churn_rouge": live.churn_red, "voix_forte": live.raised_voice, "suivis": live.followups}
        # « Date/Heure appel », « Durée appel »: what the system knows, next to the agent's answers
        started, ended = self._started.get(call_id), flags.get("fin")
        flags = {k: v for k, v in flags.items() if k != "fin"}
        flags.update(rempli_le=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     duree_appel_s=None if started is None else round((ended or time.monotonic()) - started, 1))
        stored = card.stored(**flags)
        await self._post_call_note(call_id, "incident_card", stored)
        if card.churn_red and not flags.get("churn_rouge"):
            await self.notify("churn_red", call_id, f"fiche d'incident: risque churn {card.risque_churn}")
        if card.churn_red and not flags.get("suivis"):
            number = self._numbers.get(call_id)
            for delay, result in await schedule_followups(
                    self.handoffs, call_id, number, delays=[self.config.followup_delay, self.config.followup_j3_delay],
                    why=f"fiche d'incident, risque churn {card.risque_churn}"):
                await self._post_call_note(call_id, "callback", f"J+{max(1, round(delay / 86400))} follow-up "
                                           + (f"scheduled {result.message_id}" if result.accepted else f"refused: {result.reason}"))
            if live is not None:
                live.followups = True
            else:
                flags["suivis"] = True
        return json.loads(stored)

    async def _post_call_note(self, call_id: str, kind: str, detail: str) -> None:
        live = self.live.get(call_id)
        if live is not None:
            await live.notes(kind, detail)
            return
        try:
            at = round(time.monotonic() - self._started.get(call_id, time.monotonic()), 1)
            await self.recorder.note(call_id, kind, detail, at=at)
        except Exception:
            log.exception("post-call note failed", extra={"call": call_id, "kind": kind})

    # -- the API's way in --------------------------------------------------------------------
    def submit(self, call_id: str, action: str, payload: dict | None = None, source: str = "api") -> bool:
        live = self.live.get(call_id)
        if live is None or action not in ACTIONS:
            return False
        live.commands.put_nowait(Command(action, source, payload or {}))
        return True

    def calls(self) -> list[dict]:
        return [live.as_dict() for live in self.live.values()]

    # -- end of the call ---------------------------------------------------------------------
    def _agent_done(self, live: LiveCall) -> None:
        agent = live.agent
        if agent is None or agent.call_id != live.call_id:
            return
        pause = self.pool.call_ended(agent, aggressive=live.aggressive)
        if live.connected_at is not None:
            self.line.handled(time.monotonic() - live.connected_at)  # « attente estimée » from real call lengths
        asyncio.ensure_future(live.notes("agent_wrap_up", f"{agent.extension} {pause:.0f}s"))

    async def _cleanup(self, live: LiveCall, *, leave_people: bool = False) -> None:
        live.state = "ended"
        self.line.leave(live.call_id)
        if leave_people:
            # SIGTERM, a cancelled task or a handler error: nothing is torn down under the caller
            # (a stop is never worse than a crash); the controller adopts the bridge.
            await live.notes("agent_call_left", "the desk stopped; the caller stays with "
                             + (", ".join(sorted(live.call.legs)) or "the dialplan's fail-safe"))
            self.live.pop(live.call_id, None)
            return
        if live.emergency_task is not None:
            # the emergency procedure notices the caller left and tells the operator; give it the time to
            try:
                await asyncio.wait_for(asyncio.shield(live.emergency_task), 15)
            except BaseException:
                live.emergency_task.cancel()
        try:
            await live.caller.stop_moh()
        except Exception:
            pass
        for role, leg in list(live.legs.items()):
            await live.guard.drop_leg(leg, role, "the call ended", caller_up=live.caller.is_up)
        if live.agent is not None:
            self._agent_done(live)
        if live.escalation is not None and live.escalation.ended_at is None:
            await self.queue.release(live.escalation, ENDED, "call ended")
        if live.bridge_id:
            await live.guard.destroy_bridge(self.bridges, live.bridge_id, "the call ended", caller_up=live.caller.is_up)
        await live.notes("agent_call_ended", "caller gone" if not live.caller.is_up else "left the desk")
        self._flags[live.call_id] = {"hotliner": live.agent.extension if live.agent else None, "agressif": live.aggressive,
                                     "churn_rouge": live.churn_red, "voix_forte": live.raised_voice,
                                     "suivis": live.followups, "fin": time.monotonic()}
        if not live.caller.is_up:
            live.call.end("caller gone")
        self.live.pop(live.call_id, None)


def _clip(text: str, n: int = 30) -> str:
    return "".join(ch for ch in text if ch not in '"<>\\')[:n] or "Client"
