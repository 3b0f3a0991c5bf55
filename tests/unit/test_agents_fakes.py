"""Small real-time fakes for the agents' desk tests: legs that ring, answer, press keys and hang up.

(The virtual-clock fake channel of callflow/telephony/fake.py runs one flow on one
line; the desk watches several legs at once, so these fakes use asyncio time,
with timers shrunk to fractions of a second.)
"""

from __future__ import annotations

import asyncio
import itertools

from callflow.agents.bridges import MemoryBridges
from callflow.agents.config import AgentsConfig, EmergencyConfig, EscalationConfig, FeatureCodes
from callflow.agents.desk import AgentDesk
from callflow.agents.pool import AgentPool
from callflow.core.call import Call
from callflow.core.channel import Caller, CallerHungUp, DigitInput, OriginateResult, PlayResult
from callflow.core.recorder import MemoryRecorder
from callflow.agents.emergency import EmergencyBridge
from callflow.telephony.fake import FakeHandoffs

_ids = itertools.count(1)


class Leg:
    """One leg; `events` is shared by every leg of a test, in order."""

    def __init__(self, name: str, events: list, *, number: str | None = None, prompt_seconds: float = 0.01) -> None:
        self.id = f"{name}-{next(_ids)}"
        self.name = name
        self.caller = Caller(number=number, language="fr")
        self.events = events
        self.up = True
        self.inputs: list[str] = []
        self.prompt_seconds = prompt_seconds
        # endpoint → list of planned answers: a Leg (answers), or a cause string ("busy", "no_answer"),
        # or "never": the ring's end is never reported
        self.plan: dict[str, list] = {}
        self.ring_seconds = 0.02
        self.hangup_reasons: list[str] = []
        # prompts whose end the PBX never reports (a PlaybackFinished lost with the ARI link)
        self.stuck_prompts: set[str] = set()

    @property
    def is_up(self) -> bool:
        return self.up

    def _check(self) -> None:
        if not self.up:
            raise CallerHungUp(self.id)

    async def answer(self) -> None:
        self._check()

    async def play(self, prompt: str, *, language: str | None = None, barge_in: bool = True) -> PlayResult:
        self._check()
        self.events.append(("play", self.name, prompt))
        if barge_in and self.inputs:
            return PlayResult(False, DigitInput(self.inputs[0], 0.0))
        await asyncio.sleep(3600 if prompt in self.stuck_prompts else self.prompt_seconds)
        self._check()
        return PlayResult(True)

    async def stop_playback(self) -> None:
        pass

    def press(self, keys: str) -> None:
        self.inputs.extend(keys)

    async def next_input(self, timeout: float, *, accept_taps: bool = True):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.inputs:
                return DigitInput(self.inputs.pop(0), loop.time())
            self._check()
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(0.005)

    def flush_input(self) -> None:
        self.inputs.clear()

    async def watch_loudness(self, threshold: int, on_change) -> None:
        self._check()
        self.loudness = on_change
        self.events.append(("loudness", self.name, threshold if on_change else "off"))

    def shouts(self, loud: bool) -> None:
        """The caller's level crosses the loudness threshold (TALK_DETECT started / finished)."""
        if getattr(self, "loudness", None):
            self.loudness(loud)

    async def start_moh(self, moh_class: str = "default") -> None:
        self._check()
        self.events.append(("moh", self.name, "start"))

    async def stop_moh(self) -> None:
        if self.up:
            self.events.append(("moh", self.name, "stop"))

    async def hang_up(self, reason: str) -> None:
        self.events.append(("hangup", self.name, reason))
        self.hangup_reasons.append(reason)
        self.up = False

    def leaves(self) -> None:
        """The person on this leg hangs up."""
        self.events.append(("left", self.name, ""))
        self.up = False

    async def originate(self, endpoint: str, *, caller_id=None, timeout: float = 30.0, announce=None) -> OriginateResult:
        self._check()
        self.events.append(("originate", self.name, endpoint))
        planned = self.plan.get(endpoint) or ["no_answer"]
        outcome = planned.pop(0) if len(planned) > 1 else planned[0]
        if isinstance(outcome, Leg):
            await asyncio.sleep(self.ring_seconds)
            if not outcome.up:  # a leg used once is gone: do not answer twice
                return OriginateResult(False, "no_answer")
            return OriginateResult(True, "answered", outcome)
        if outcome == "never":  # the PBX never reports the end of the ring (its word lost or late)
            await asyncio.sleep(3600)
        await asyncio.sleep(min(timeout, self.ring_seconds))
        return OriginateResult(False, outcome)

    async def bridge_with(self, *others, bridge_id: str | None = None) -> str:
        return bridge_id or f"bridge-{self.id}"

    async def continue_in_dialplan(self, context: str, extension: str = "s", priority: int = 1) -> None:
        self.events.append(("continue", self.name, context))
        self.up = False


class Registered:
    def __init__(self, online: set[str]) -> None:
        self.online = online

    async def registered(self, endpoint: str) -> bool:
        return endpoint in self.online


def fast_configs() -> tuple[AgentsConfig, EscalationConfig, EmergencyConfig, FeatureCodes]:
    """Timers shrunk for tests (not validated: validate() keeps production minimums)."""
    agents = AgentsConfig(extensions=["2001", "2002", "2003"], ring_timeout=0.2, hold_max_wait=0.6, retry_interval=0.05,
                          wrap_up_seconds=0.0, aggressive_pause=300.0, offer_timeout=0.5,
                          closing_step_wait=0.1)
    escalation = EscalationConfig(supervisor_answer_timeout=1.0)
    emergency = EmergencyConfig(retry_spacing=0.05, retry_spacing_max=0.1)
    return agents, escalation, emergency, FeatureCodes(inter_digit_timeout=1.0)


class Desk:
    """A desk wired with fakes: `await desk.call(caller)` runs hand_to_agent for one caller."""

    def __init__(self, online: set[str] | None = None, **overrides) -> None:
        agents, escalation, emergency, codes = fast_configs()
        for key, value in overrides.items():
            setattr(agents, key, value)
        self.events: list = []
        self.recorder = MemoryRecorder()
        self.handoffs = FakeHandoffs()
        self.bridges = MemoryBridges()
        self.presence = Registered(online if online is not None else {"PJSIP/2001", "PJSIP/2002", "PJSIP/2003", "PJSIP/2100"})
        self.pool = AgentPool(agents, presence=self.presence)
        self.calls: dict[str, Leg] = {}
        self.emergency = EmergencyBridge(emergency, recorder=self.recorder, bridges=self.bridges,
                                         channels=lambda cid: self.calls.get(cid))
        self.desk = AgentDesk(pool=self.pool, recorder=self.recorder, handoffs=self.handoffs, bridges=self.bridges,
                              escalation=escalation, codes=codes, emergency=self.emergency, presence=self.presence)
        self.emergency.agents = self.desk

    def caller(self, number: str | None = "+33612345678") -> Leg:
        return Leg("caller", self.events, number=number)

    def leg(self, name: str) -> Leg:
        return Leg(name, self.events)

    async def start(self, caller: Leg, call_id: str = "call-1", *, summary: str = "parole entendue", urgent: bool = False):
        from callflow.core.agents import Diagnosis

        self.calls[call_id] = caller
        await self.recorder.start(call_id, number=caller.caller.number, started_at=0.0, flow="test", language="fr")
        ctx = Call(call_id=call_id).attach(caller)
        task = asyncio.ensure_future(self.desk.hand_to_agent(ctx, Diagnosis(summary=summary, urgent=urgent), "fr"))
        await asyncio.sleep(0)  # the desk registers the call before its first await
        return task

    def notes(self, call_id: str = "call-1") -> list[tuple[str, str]]:
        return [(kind, detail) for _, kind, detail in self.recorder.calls[call_id].actions]

    def kinds(self, call_id: str = "call-1") -> list[str]:
        return [kind for kind, _ in self.notes(call_id)]


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)
