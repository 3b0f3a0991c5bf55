"""A console wired to fakes of the live side (no Asterisk): for the console's unit tests and screenshots.

The desk is a small stand-in with the desk's real pool (AgentPool) and supervisor queue
(SupervisorQueue); records, outbox and the console's tables are the real SQLite ones.
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from callflow.agents.config import AgentsConfig, EscalationConfig
from callflow.agents.pool import AgentPool
from callflow.config import Config
from callflow.core.channel import AudioReading, AudioState
from callflow.agents.anger import IncidentCard
from callflow.agents.escalation import Briefing, Outcome, SupervisorQueue


@dataclass
class FakeDesk:
    pool: AgentPool = field(default_factory=lambda: AgentPool(AgentsConfig(check_registration=False)))
    queue: SupervisorQueue = field(default_factory=SupervisorQueue)
    escalation_config: EscalationConfig = field(default_factory=EscalationConfig)
    notifications: list = field(default_factory=list)
    live: dict = field(default_factory=dict)
    submitted: list = field(default_factory=list)
    records: Any = None  # the real Records: the after-call cards are written on the call's record, as the desk does
    ended: set = field(default_factory=set)
    _calls: dict = field(default_factory=dict)

    def add_call(self, call_id: str, *, agent: str | None = None, state: str = "with_agent", summary: str = "respiration",
                 answers: dict | None = None, urgent: bool = False) -> None:
        self._calls[call_id] = {"call_id": call_id, "state": state, "agent": agent, "legs": {"agent": "leg-1"} if agent else {},
                                "bridge": None, "diagnosis": {"summary": summary, "urgent": urgent, "call_type": None,
                                                              "answers": answers or {}},
                                "language": "fr", "group": "fr", "aggressive": False, "churn_red": False,
                                "emergency": False, "started_at": time.time()}
        if agent:
            self.pool.answered(self.pool.get(agent), call_id)
            self.live[call_id] = SimpleNamespace(agent=self.pool.get(agent))

    def end_call(self, call_id: str) -> None:
        self.ended.add(call_id)
        call = self._calls.pop(call_id)
        self.live.pop(call_id, None)
        if call["agent"]:
            self.pool.call_ended(self.pool.get(call["agent"]))

    def calls(self) -> list[dict]:
        return list(self._calls.values())

    # the desk's after-call cards, as Desk.incident_card / escalation_outcome store them (their own parsers)
    async def incident_card(self, call_id: str, data: dict) -> dict:
        card = IncidentCard.from_json(data)
        if call_id not in self._calls and call_id not in self.ended:
            raise KeyError(call_id)
        stored = card.stored(hotliner=(self._calls.get(call_id) or {}).get("agent"))
        await self.records.note(call_id, "incident_card", stored, at=0.0)
        return json.loads(stored)

    async def escalation_outcome(self, esc_id: str, data: dict) -> dict:
        esc = self.queue.find(esc_id)
        if esc is None:
            raise KeyError(esc_id)
        outcome = Outcome.from_json(data)
        if esc.decision is not None:
            raise ValueError(f"{esc_id} already has an outcome")
        esc.decision = {**asdict(outcome), "escalation": esc.id, "justifiee_matrice": esc.briefing.justifiee}
        await self.records.note(esc.call_id, "escalation_outcome", json.dumps(esc.decision), at=0.0)
        return esc.decision

    def submit(self, call_id: str, action: str, payload: dict | None = None, source: str = "api") -> bool:
        if call_id not in self._calls:
            return False
        self.submitted.append((call_id, action, payload or {}, source))
        return True


class FakeController:
    def __init__(self) -> None:
        self.calls: dict = {}
        self.reading_observers: list = []

    def add_ivr_call(self, call_id: str, number: str = "+33612345678") -> None:
        self.calls[call_id] = SimpleNamespace(channel=SimpleNamespace(caller=SimpleNamespace(number=number)))

    def reading(self, call_id: str, at: float, state: AudioState = AudioState.BREATHING, level: float = -42.0,
                raised: bool = False) -> None:
        for observe in self.reading_observers:
            observe(call_id, AudioReading(state=state, confidence=.9, at=at, level_dbfs=level, raised_voice=raised))


async def build(tmp_path, *, handoffs=None, records=None, env: dict | None = None):
    """(app, console, desk, controller, stack): an aiohttp app with only the console mounted."""
    from callflow import config as config_mod
    from callflow.console.web import attach
    from callflow.store.records import Records

    base = {"CALLFLOW_STORE_DATABASE": str(tmp_path / "callflow.db"), "CALLFLOW_ARI_USER": "u",
            "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": str(tmp_path), "CALLFLOW_CONSOLE_REFRESH_SECONDS": "0.1"}
    base.update(env or {})
    config: Config = config_mod.load(env=base)
    stack = AsyncExitStack()
    if records is None:
        records = await Records.open(config.store.database)
        stack.push_async_callback(records.close)
    desk, controller = FakeDesk(records=records), FakeController()
    app = web.Application()
    console = await attach(app, config, services=stack, controller=controller, desk=desk, records=records,
                           handoffs=handoffs)
    return app, console, desk, controller, stack


def briefing(client: str = "Marie Dupuis (CLT-00245)", urgent: bool = False) -> Briefing:
    return Briefing(client=client, probleme="atelier manqué", demande="remboursement", raison="Demande exception",
                    sensibilite="frustration modérée", options=["crédit", "refus expliqué"], hotliner="2001",
                    urgent=urgent)
