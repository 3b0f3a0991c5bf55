"""Issue 16's additions to the local HTTP API (loopback only, JSON), next to callflow/web/agents_api.py.

    POST /api/calls/{call_id}/incident       seed 004 §3.1 incident card (during or after the call):
                                             {"intensite", "raison", "risque_churn", "sentiment_fin",
                                              "bien_etre_hotliner": 1-5, "geste_commercial", "geste_montant",
                                              "engagements": [...], "satisfaction_plan": 1-5, "desescalade_minutes", …}
    POST /api/escalations/{id}/outcome       seed 001 phase 4–6: {"decision": "approuvee" | "alternative" |
                                             "refusee" | "escaladee", "valeur_eur", "motif_decision",
                                             "prochaines_etapes": [...], "justifiee": bool, "satisfaction": 1-5,
                                             "feedback_hotliner", "superviseur"}
    GET  /api/messages                       seed 003 messages left by callers, urgent first (?all=1: done ones too)
    POST /api/messages/{id}/done             {"by": "2001", "note": "rappelé"}
    GET  /api/queue                          callers waiting for an agent, in the order they will be served

Bad input gets 400 with the field named; nothing is written then.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_routes(app: web.Application, desk, messages) -> None:
    api = ProceduresApi(desk, messages)
    app.router.add_post("/api/calls/{call_id}/incident", api.incident)
    app.router.add_post("/api/escalations/{esc_id}/outcome", api.outcome)
    app.router.add_get("/api/messages", api.messages_list)
    app.router.add_post("/api/messages/{ticket}/done", api.message_done)
    app.router.add_get("/api/queue", api.queue)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ProceduresApi:
    def __init__(self, desk, messages) -> None:
        self.desk = desk
        self.messages = messages

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            data = json.loads(await request.text() or "{}")
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "the body is a JSON object")
        return data

    @staticmethod
    def _denied(request: web.Request) -> web.Response | None:
        return None if (request.remote or "") in LOOPBACK else _error(403, "loopback only")

    async def incident(self, request: web.Request) -> web.Response:
        return await self._record(request, lambda data: self.desk.incident_card(request.match_info["call_id"], data),
                                  "stored", "no such call with an agent")

    async def outcome(self, request: web.Request) -> web.Response:
        return await self._record(request, lambda data: self.desk.escalation_outcome(request.match_info["esc_id"], data),
                                  "outcome", "no such escalation")

    async def _record(self, request: web.Request, store, key: str, missing: str) -> web.Response:
        """A card or an outcome POSTed once: loopback only, JSON body, 404 unknown, 400 refused, 201 stored."""
        if (denied := self._denied(request)) is not None:
            return denied
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        try:
            stored = await store(data)
        except KeyError:
            return _error(404, missing)
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response({key: stored}, status=201)

    async def messages_list(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        tickets = await self.messages.list(status=None if request.query.get("all") else "open")
        return web.json_response({"messages": [t.as_dict() for t in tickets]})

    async def message_done(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        data = await self._body(request)
        if isinstance(data, web.Response):
            return data
        by, note = data.get("by", ""), data.get("note", "")
        if not isinstance(by, str) or not isinstance(note, str):
            return _error(400, "'by' and 'note' are texts")
        if not await self.messages.done(request.match_info["ticket"], by=by, note=note):
            return _error(404, "no open message with that id")
        return web.json_response({"done": request.match_info["ticket"]})

    async def queue(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return web.json_response({"waiting": self.desk.line.snapshot()})
