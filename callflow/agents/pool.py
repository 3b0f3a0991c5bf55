"""The agents and their states: who may take the next call.

    available ──(rung, answers)──→ on_call ──(call ends)──→ wrap_up ──(time)──→ available
        ↑                                                                    │
        └──────────────────────────── paused ←──(API: pause / resume)────────┘

Routing rings the longest-idle available agent first. An agent whose phone is
not registered is skipped. After a call flagged aggressive the wrap-up lasts
the configured pause (seed 004 §4.1: « le hotliner NE doit pas enchaîner
immédiatement sur un autre appel »).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from callflow.agents.config import AgentsConfig


class AgentState(str, enum.Enum):
    AVAILABLE = "available"
    RINGING = "ringing"  # being offered a call (not offered a second one meanwhile)
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass
class Agent:
    extension: str
    endpoint: str
    state: AgentState = AgentState.AVAILABLE
    idle_since: float = 0.0  # when the agent last became free (longest idle first)
    wrap_up_until: float = 0.0
    call_id: str | None = None
    aggressive_calls: int = 0
    pause_reason: str = ""
    languages: tuple[str, ...] = ("fr",)
    # what the console shows and a restart keeps (callflow/store/desk_state.py): since when (wall clock)
    # the agent is in this state, and how many calls they took
    since: float = field(default_factory=time.time)
    calls_taken: int = 0
    #: called after every change (the store writes the agent through); None: nothing to tell
    on_change: Callable[["Agent"], Any] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # kept here rather than in each transition of AgentPool, so the pool's logic stays as it reads
        fields = self.__dict__
        if name == "state" and "since" in fields and fields.get("state") is not value:
            fields["since"] = time.time()
            if value is AgentState.ON_CALL:
                fields["calls_taken"] = fields.get("calls_taken", 0) + 1
        object.__setattr__(self, name, value)
        hook = fields.get("on_change")
        if hook is not None and name != "on_change":
            hook(self)

    def as_dict(self, now: float) -> dict:
        return {
            "extension": self.extension,
            "endpoint": self.endpoint,
            "state": self.state.value,
            "idle_seconds": round(now - self.idle_since, 1) if self.state is AgentState.AVAILABLE else None,
            "wrap_up_remaining": round(max(0.0, self.wrap_up_until - now), 1) if self.state is AgentState.WRAP_UP else None,
            "call_id": self.call_id,
            "aggressive_calls": self.aggressive_calls,
            "pause_reason": self.pause_reason or None,
            "languages": list(self.languages),
            "since": self.since,
            "calls_taken": self.calls_taken,
        }


class Presence(Protocol):
    async def registered(self, endpoint: str) -> bool: ...


class AlwaysPresent:
    async def registered(self, endpoint: str) -> bool:
        return True


class AriPresence:
    """ARI GET endpoints/PJSIP/2001 → state "online" / "offline"."""

    def __init__(self, client) -> None:
        self.client = client

    async def registered(self, endpoint: str) -> bool:
        try:
            info = await self.client.get(f"endpoints/{endpoint}")
        except Exception:
            return False
        return (info or {}).get("state") == "online"


class AgentPool:
    def __init__(self, config: AgentsConfig, *, presence: Presence | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.presence = presence or AlwaysPresent()
        self.clock = clock
        now = clock()
        spoken = config.spoken()
        # the configured order breaks ties between agents idle since the start
        self.agents: dict[str, Agent] = {
            ext: Agent(ext, config.endpoint(ext), idle_since=now + i * 1e-6, languages=spoken[ext])
            for i, ext in enumerate(config.extensions)
        }

    def get(self, extension: str) -> Agent | None:
        return self.agents.get(extension)

    def _tick(self) -> None:
        now = self.clock()
        for agent in self.agents.values():
            if agent.state is AgentState.WRAP_UP and now >= agent.wrap_up_until:
                agent.state = AgentState.AVAILABLE
                agent.idle_since = agent.wrap_up_until
                agent.pause_reason = ""

    def snapshot(self) -> list[dict]:
        self._tick()
        now = self.clock()
        return [a.as_dict(now) for a in self.agents.values()]

    async def candidates(self, language: str | None = None) -> list[Agent]:
        """Available agents with a registered phone, longest idle first (only those who speak `language` if given)."""
        self._tick()
        free = sorted((a for a in self.agents.values() if a.state is AgentState.AVAILABLE
                       and (language is None or language in a.languages)), key=lambda a: a.idle_since)
        if not self.config.check_registration:
            return free
        return [a for a in free if await self.presence.registered(a.endpoint)]

    def claim(self, agent: Agent, call_id: str) -> bool:
        """Reserve an available agent for one offer (two calls never ring the same agent)."""
        self._tick()
        if agent.state is not AgentState.AVAILABLE:
            return False
        agent.state, agent.call_id = AgentState.RINGING, call_id
        return True

    def unanswered(self, agent: Agent) -> None:
        """The offer was not taken: back to available, keeping the place in the idle order."""
        if agent.state is AgentState.RINGING:
            agent.state, agent.call_id = AgentState.AVAILABLE, None

    def answered(self, agent: Agent, call_id: str) -> None:
        agent.state, agent.call_id = AgentState.ON_CALL, call_id

    def flag_aggressive(self, agent: Agent) -> None:
        agent.aggressive_calls += 1
        agent.pause_reason = "appel agressif"

    def call_ended(self, agent: Agent, *, aggressive: bool = False) -> float:
        """The agent leaves the call: wrap-up (longer after an aggressive call). Returns its length."""
        now = self.clock()
        length = self.config.aggressive_pause if aggressive else self.config.wrap_up_seconds
        agent.call_id = None
        if agent.state is AgentState.PAUSED:
            return 0.0
        agent.state = AgentState.WRAP_UP
        agent.wrap_up_until = now + length
        agent.pause_reason = "pause après appel agressif" if aggressive else "après-appel"
        self._tick()
        return length

    def pause(self, agent: Agent, reason: str = "pause") -> None:
        agent.state, agent.pause_reason = AgentState.PAUSED, reason

    def resume(self, agent: Agent) -> None:
        if agent.state in (AgentState.PAUSED, AgentState.WRAP_UP):
            agent.state, agent.pause_reason = AgentState.AVAILABLE, ""
            agent.idle_since = self.clock()
