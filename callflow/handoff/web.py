"""HTTP endpoints of the outbound channels, mounted on the controller's loopback server.

    GET|POST /sms/kannel       Kannel MO (caller's SMS reply). sms-service get-url:
                               http://127.0.0.1:PORT/sms/kannel?from=%p&to=%P&text=%a&id=%I&coding=%c&charset=%C[&token=…]
                               with `max-messages = 0` so Kannel sends nothing back.
    GET      /sms/kannel/dlr   Kannel delivery reports (dlr-url built by the kannel backend).
    POST     /sms/inbound      Generic provider webhook, JSON {"from", "text", "id"?},
                               signed like our outbound requests (sms/http.py); bad signature → 403.

`deps` is the HandoffService (anything with .inbound, .outbox and .config.sms).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from callflow.core.channel import mask_number
from callflow.handoff.sms.http import TIMESTAMP_HEADER, verify

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
DELIVERED_TYPES = {1}  # Kannel DLR type 1: delivered to phone
FAILED_TYPES = {2, 16}  # 2: non-delivered to phone, 16: non-delivered to SMSC


def kannel_params(query: str) -> dict[str, str]:
    """Kannel's %a is the SMS's raw bytes (UCS-2 for coding=2): keep them as latin-1 until we know the charset."""
    return dict(parse_qsl(query, keep_blank_values=True, encoding="latin-1"))


def kannel_text(params: dict[str, str]) -> str:
    raw = params.get("text", "").encode("latin-1")
    charset = params.get("charset") or ("UTF-16BE" if params.get("coding") == "2" else "UTF-8")
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # a charset name Python does not know
        return raw.decode("utf-8", errors="replace")


def add_routes(app: web.Application, deps: Any) -> None:
    handlers = _Handlers(deps)
    app.router.add_route("GET", "/sms/kannel", handlers.kannel_mo)
    app.router.add_route("POST", "/sms/kannel", handlers.kannel_mo)
    app.router.add_route("GET", "/sms/kannel/dlr", handlers.kannel_dlr)
    app.router.add_route("POST", "/sms/inbound", handlers.inbound_webhook)


class _Handlers:
    def __init__(self, deps: Any):
        self.deps = deps

    def _kannel_token_ok(self, params: Any) -> bool:
        expected = self.deps.config.sms.kannel_inbound_token
        return not expected or hmac.compare_digest(str(params.get("token", "")), expected)

    async def kannel_mo(self, request: web.Request) -> web.Response:
        if len(request.rel_url.raw_query_string) > MAX_BODY:
            return web.Response(status=414)
        params = kannel_params(request.rel_url.raw_query_string)
        if request.method == "POST":
            if (request.content_length or 0) > MAX_BODY:
                return web.Response(status=413)
            params.update(kannel_params((await request.read()).decode("latin-1")))
        if not self._kannel_token_ok(params):
            return web.Response(status=403, text="forbidden")
        sender, text = str(params.get("from", "")), kannel_text(params)
        if not sender:
            return web.Response(status=400, text="missing from")
        try:
            result = await self.deps.inbound.receive(sender, text, source="kannel", gateway_id=str(params.get("id", "")))
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        log.info("SMS reply from %s linked to call %s", mask_number(sender), result.call_id)
        # Empty body: with `max-messages = 0` Kannel sends no SMS back to the caller.
        return web.Response(status=200, text="")

    async def kannel_dlr(self, request: web.Request) -> web.Response:
        params = request.query
        if not self._kannel_token_ok(params):
            return web.Response(status=403, text="forbidden")
        message_id = params.get("id", "")
        try:
            dlr_type = int(params.get("type", ""))
        except ValueError:
            return web.Response(status=400, text="bad type")
        if not message_id:
            return web.Response(status=400, text="missing id")
        if dlr_type in DELIVERED_TYPES:
            await self.deps.outbox.mark_delivered(message_id, delivered=True)
        elif dlr_type in FAILED_TYPES:
            await self.deps.outbox.mark_delivered(message_id, delivered=False, detail=f"DLR {dlr_type}: {params.get('answer', '')}"[:300])
        # 4 (buffered) and 8 (SMSC ack) change nothing: the row is already 'sent'.
        return web.Response(status=200, text="")

    async def inbound_webhook(self, request: web.Request) -> web.Response:
        cfg = self.deps.config.sms
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413)
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.Response(status=413)
        if not verify(
            cfg.http_secret,
            request.headers.get(TIMESTAMP_HEADER),
            body,
            request.headers.get(cfg.http_signature_header),
            max_skew=cfg.http_max_skew_seconds,
        ):
            log.warning("inbound SMS webhook refused: bad signature from %s", request.remote)
            return web.Response(status=403, text="bad signature")
        try:
            data = json.loads(body)
            sender, text = str(data["from"]), str(data["text"])
            gateway_id = str(data.get("id") or "")
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="expected JSON {from, text, id?}")
        try:
            result = await self.deps.inbound.receive(sender, text, source="http", gateway_id=gateway_id)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        return web.json_response({"id": result.id, "call_id": result.call_id, "duplicate": result.duplicate})
