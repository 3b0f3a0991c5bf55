"""The agents' small local HTTP API (JSON), mounted on the controller's loopback web app.

    GET  /api/agents                         states of the agents (available, on_call, wrap_up, paused…)
    POST /api/agents/{extension}/pause       {"reason": "..."}    · POST /api/agents/{extension}/resume
    GET  /api/calls                          calls with a person (state, agent, diagnosis, flags)
    POST /api/calls/{call_id}/escalate       seed 001 briefing card: {"client", "probleme", "demande", "raison",
                                             "avis", "sensibilite", "options": [...], "urgent": bool,
                                             "mode": "conference" | "transfer"}
    POST /api/calls/{call_id}/transfer       same briefing; the supervisor takes the caller alone
    POST /api/calls/{call_id}/emergency      {"situation": "..."}
    POST /api/calls/{call_id}/close          seed 002 firm closing
    POST /api/calls/{call_id}/flag           {"aggressive": true} and/or {"churn": "red", "detail": "..."}
    GET  /api/escalations                    the supervisor queue: waiting (urgent first, then oldest), active, history
    GET  /api/notifications                  what the supervisor was told (churn red, missed escalations…)

Actions are queued to the call's own task (202 Accepted) and happen in order
with the agent's keypad codes. Only loopback clients are served.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from callflow.agents import latch
from callflow.agents.desk import AgentDesk
from callflow.agents.escalation import Briefing

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_routes(app: web.Application, desk: AgentDesk, emergency=None) -> None:
    api = AgentsApi(desk, emergency)
    app.router.add_get("/api/agents", api.agents)
    app.router.add_post("/api/agents/{extension}/pause", api.pause)
    app.router.add_post("/api/agents/{extension}/resume", api.resume)
    app.router.add_get("/api/calls", api.calls)
    app.router.add_post("/api/calls/{call_id}/escalate", api.escalate)
    app.router.add_post("/api/calls/{call_id}/transfer", api.transfer)
    app.router.add_post("/api/calls/{call_id}/emergency", api.emergency)
    app.router.add_post("/api/calls/{call_id}/close", api.close)
    app.router.add_post("/api/calls/{call_id}/flag", api.flag)
    app.router.add_get("/api/escalations", api.escalations)
    app.router.add_get("/api/notifications", api.notifications)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class AgentsApi:
    def __init__(self, desk: AgentDesk, emergency=None) -> None:
        self.desk = desk
        self.emergency_bridge = emergency or desk.emergency

    @staticmethod
    def _local(request: web.Request) -> bool:
        return (request.remote or "") in LOOPBACK

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = json.loads(await request.text() or "{}")
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body is not JSON"}), content_type="application/json")
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text=json.dumps({"error": "the body is a JSON object"}), content_type="application/json")
        return data

    def _guard(self, request: web.Request) -> web.Response | None:
        if not self._local(request):
            return _error(403, "loopback only")
        return None

    async def agents(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        return web.json_response({"agents": self.desk.pool.snapshot()})

    async def pause(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        agent = self.desk.pool.get(request.match_info["extension"])
        if agent is None:
            return _error(404, "unknown agent")
        body = await self._body(request)
        self.desk.pool.pause(agent, str(body.get("reason") or "pause")[:100])
        return web.json_response(agent.as_dict(self.desk.pool.clock()))

    async def resume(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        agent = self.desk.pool.get(request.match_info["extension"])
        if agent is None:
            return _error(404, "unknown agent")
        self.desk.pool.resume(agent)
        return web.json_response(agent.as_dict(self.desk.pool.clock()))

    async def calls(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        emergencies = dict(getattr(self.emergency_bridge, "active", {}) or {})
        return web.json_response({"calls": self.desk.calls(), "emergencies": list(emergencies.values()),
                                  "latched": sorted(latch.latched())})

    async def _submit(self, request: web.Request, action: str, payload: dict[str, Any]) -> web.Response:
        call_id = request.match_info["call_id"]
        if not self.desk.submit(call_id, action, payload, source="api"):
            return _error(404, "no call with an agent under that id")
        return web.json_response({"accepted": True, "call_id": call_id, "action": action}, status=202)

    async def _escalation(self, request: web.Request, action: str) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await self._body(request)
        mode = body.get("mode") or ("transfer" if action == "transfer" else "conference")
        if mode not in ("conference", "transfer"):
            return _error(400, 'mode is "conference" or "transfer"')
        live = self.desk.live.get(request.match_info["call_id"])
        hotliner = live.agent.extension if live is not None and live.agent else ""
        try:
            briefing = Briefing.from_json(body, hotliner=hotliner)
        except ValueError as exc:
            return _error(400, str(exc))
        return await self._submit(request, "transfer" if mode == "transfer" else "escalate",
                                  {"briefing": briefing, "mode": mode})

    async def escalate(self, request: web.Request) -> web.Response:
        return await self._escalation(request, "escalate")

    async def transfer(self, request: web.Request) -> web.Response:
        return await self._escalation(request, "transfer")

    async def emergency(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await self._body(request)
        situation = body.get("situation", "")
        if not isinstance(situation, str) or len(situation) > 300:
            return _error(400, "situation is a text of at most 300 characters")
        return await self._submit(request, "emergency", {"situation": situation})

    async def close(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        if latch.is_latched(request.match_info["call_id"]):
            return _error(409, "emergency call: it is never closed by us")
        return await self._submit(request, "close", {})

    async def flag(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await self._body(request)
        aggressive = body.get("aggressive", False)
        churn = body.get("churn")
        if not isinstance(aggressive, bool) or churn not in (None, "green", "yellow", "red", "critical"):
            return _error(400, 'expected {"aggressive": true|false, "churn": "green"|"yellow"|"red"|"critical"}')
        if not aggressive and churn not in ("red", "critical"):
            return _error(400, "nothing to flag (aggressive, or churn red / critical)")
        responses = []
        if aggressive:
            responses.append(await self._submit(request, "flag_aggressive", {}))
        if churn in ("red", "critical"):
            detail = body.get("detail", "")
            responses.append(await self._submit(request, "flag_churn_red", {"detail": str(detail)[:500], "level": churn}))
        return responses[-1]

    async def escalations(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        return web.json_response(self.desk.queue.snapshot())

    async def notifications(self, request: web.Request) -> web.Response:
        if (denied := self._guard(request)) is not None:
            return denied
        return web.json_response({"notifications": list(self.desk.notifications)})
