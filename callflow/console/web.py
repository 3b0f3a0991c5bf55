"""The console's pages and actions, mounted on the controller's aiohttp app under /console.

    /console/login            sign in (argon2 hashes, limited attempts), /console/logout
    /console/supervisor       live calls, agents grid, « ESCALADES EN ATTENTE », emergencies, alerts
    /console/agent            my state, my current call's card and its buttons, after-call cards
    /console/calls/{id}       one call's card (an agent: only their own calls)
    /console/sms              SMS conversations (answer through the outbox, close with a note)
    /console/kpi              wallboard and a period's plots;  /console/audit  supervisor actions
    /console/events           server-sent events (Last-Event-ID replay)

Every POST needs the session's CSRF token; every supervisor action is written to the audit log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from callflow.console import alerts as alerts_mod
from callflow.console import auth, forms, kpi
from callflow.console.config import ConsoleConfig
from callflow.console.events import EventHub, is_delta, stream
from callflow.console.live import LiveSource
from callflow.console.store import ConsoleStore, User
from callflow.core.channel import mask_number

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CONSOLE_KEY = web.AppKey("console", object)

# the agent's phone codes (README) and their console shortcuts: Alt + the same digit
PHONE_ACTIONS = [
    ("escalate", "Conférence superviseur", "*1", "1"),
    ("transfer", "Transférer au superviseur", "*2", "2"),
    ("emergency", "Ligne d'urgence", "*9", "9"),
    ("close", "Clôture ferme", "*0", "0"),
    ("flag_aggressive", "Appel agressif", "*7", "7"),
    ("flag_churn_red", "Churn ROUGE", "*8", "8"),
]
PROMISE_ACTIONS = [("sms", "Envoyer SMS", "s"), ("email", "Envoyer email", "e"), ("callback", "Programmer un rappel", "r")]
STATE_LABELS = {"available": "disponible", "ringing": "sonne", "on_call": "en appel", "wrap_up": "après-appel",
                "paused": "en pause"}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["hms"] = lambda s: "—" if s is None else f"{int(s) // 60:d}:{int(s) % 60:02d}"
    env.filters["elapsed"] = lambda since: "—" if not since else env.filters["hms"](max(0, time.time() - float(since)))
    env.filters["clock"] = lambda t: "—" if not t else datetime.fromtimestamp(float(t)).strftime("%d/%m %H:%M:%S")
    env.filters["masked"] = mask_number
    env.filters["state_fr"] = lambda s: STATE_LABELS.get(s, s)
    env.globals["PHONE_ACTIONS"] = PHONE_ACTIONS
    env.globals["PROMISE_ACTIONS"] = PROMISE_ACTIONS
    return env


class Console:
    def __init__(self, *, config: ConsoleConfig, store: ConsoleStore, live: LiveSource, records: Any = None,
                 handoffs: Any = None) -> None:
        self.config = config
        self.store = store
        self.live = live
        self.records = records
        self.handoffs = handoffs
        self.env = _env()
        self.limiter = auth.LoginLimiter(config.login_attempts, config.login_window_seconds)
        self.hub = EventHub(self.picture, refresh=config.refresh_seconds)
        live.on_change = self.hub.poke
        self._inbound_seen = 0.0
        self._emergency_started: dict[str, float] = {}
        self._last_call: dict[str, str] = {}  # agent extension → their last call (after-call cards)
        self._timelines_sent: dict[str, int] = {}  # call id → readings already numbered by the hub
        self.tasks: set[asyncio.Task] = set()

    # -- the live picture (every refresh) --------------------------------------------------
    async def picture(self) -> dict[str, Any]:
        now = time.time()
        calls = await self.live.calls()
        for call in calls:
            if call.get("agent"):
                self._last_call[call["agent"]] = call["call_id"]
        emergencies = list(self.live.emergencies_by_call().values())
        for em in emergencies:
            self._emergency_started.setdefault(em["call_id"], now)
        for cid in set(self._emergency_started) - {e["call_id"] for e in emergencies}:
            self._emergency_started.pop(cid)
        conversations = await self._conversations()
        failed, callbacks = [], []
        if self.handoffs is not None and getattr(self.handoffs, "conn", None) is not None:
            failed = [m for m in await self.handoffs.outbox.list(status="failed_permanently", limit=50)
                      if now - m.updated_at < 86400]
            callbacks = [c for c in await self.handoffs.callbacks.list(status="failed", limit=50)
                         if now - c.updated_at < 86400 and c.attempts >= self.config.callback_unanswered_after]
        alert_list = alerts_mod.compute(
            now=now, failed_messages=failed, failed_callbacks=callbacks, conversations=conversations,
            emergencies=emergencies, notifications=self.live.notifications(), raised_voices=self.live.raised_voices(),
            sms_unanswered_seconds=self.config.sms_unanswered_seconds, emergency_started=self._emergency_started)
        timelines = self.live.timeline_increments([c["call_id"] for c in calls], self._timelines_sent)
        calling = await self._callbacks_calling()
        return {"calls": calls, "agents": self.live.agents(), "queue": self.live.queue(), "emergencies": emergencies,
                "alerts": alert_list, "timelines": timelines, "conversations": conversations, "callbacks": calling}

    async def _callbacks_calling(self) -> list[dict]:
        """Callbacks ringing now: whoever picks up sees who and why (the original call's card) first."""
        if self.handoffs is None or getattr(self.handoffs, "conn", None) is None:
            return []
        out = []
        for cb in await self.handoffs.callbacks.list(status="calling", limit=20):
            original = await self.records.get_call(cb.call_id) if self.records is not None else None
            diagnosis = ""
            if original:
                queued = [a["detail"] for a in original["actions"] if a["kind"] in ("agent_queue", "handoff")]
                diagnosis = queued[-1] if queued else (original.get("call_type") or "")
            out.append({"id": cb.id, "call_id": cb.call_id, "number": cb.number, "target": cb.target,
                        "reason": cb.reason, "attempt": cb.attempts, "diagnosis": diagnosis,
                        "started_at": (original or {}).get("started_at")})
        return out

    async def _conversations(self) -> list[dict]:
        if self.handoffs is not None and getattr(self.handoffs, "conn", None) is not None:
            async with self.handoffs.conn.execute(
                    "SELECT id, number, text, received_at, call_id FROM sms_inbound WHERE received_at >= ? ORDER BY received_at",
                    (self._inbound_seen - 5,)) as cur:
                rows = [dict(r) for r in await cur.fetchall()]
            if rows:
                await self.store.sync_inbound(rows)
                self._inbound_seen = max(r["received_at"] for r in rows)
        return await self.store.conversations(status="open")

    # -- rendering ----------------------------------------------------------------------------
    def render(self, name: str, **ctx: Any) -> str:
        return self.env.get_template(name).render(**ctx)

    async def page(self, request: web.Request, name: str, **ctx: Any) -> web.Response:
        user: User | None = request.get("console_user")
        token = await auth.csrf_token(request)
        html = self.render(name, user=user, csrf=token, csrf_token=token, now=time.time(),
                           last_event_id=self.hub.last_id, **ctx)
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def section_html(self, user: User, section: str, data: Any, csrf_token: str = "") -> dict | None:
        """What one connection gets for one section: filtered by role, rendered on the server."""
        if section == "timelines":  # an increment {"append", "gone"} or, on a reset, {"full"}
            if not user.is_supervisor:
                mine = self.live.call_of_agent(user.extension)
                if "full" in data:
                    data = {"full": {cid: line for cid, line in data["full"].items() if cid == mine}}
                else:
                    data = {"append": {cid: pts for cid, pts in data.get("append", {}).items() if cid == mine},
                            "gone": data.get("gone", [])}
                    if not data["append"] and not data["gone"]:
                        return None
            return {"section": section, "json": data}
        if section == "calls" and is_delta(data):
            if user.is_supervisor:  # only the rows that changed
                rows = {row["call_id"]: self.render("_call_row.html", c=row, csrf_token=csrf_token)
                        for row in data["rows"]}
                return {"section": section, "rows": rows, "gone": data["gone"], "order": data["order"]}
            data = self.hub.current.get("calls", [])  # an agent's card: from the calls as they are now
        if user.is_supervisor:
            template = f"_{section}.html"
            ctx = {section: data, "ringing": data, "user": user, "now": time.time(), "csrf_token": csrf_token}
            if section == "calls":
                ctx["calls"] = data
            return {"section": section, "html": self.render(template, **ctx)}
        if section == "agents":
            me = next((a for a in data if a["extension"] == user.extension), None)
            return {"section": "mystate", "html": self.render("_mystate.html", me=me, user=user, csrf_token=csrf_token)}
        if section == "calls":
            # my call, or the call my phone is ringing for (a callback's card shows before I answer)
            mine = [c for c in data if c.get("agent") == user.extension] or \
                [c for c in data if c.get("ringing") == user.extension]
            after = None
            if not mine and self._last_call.get(user.extension):  # the call just ended: its cards, live
                after = await _after_call(self, self._last_call[user.extension])
            return {"section": "mycall", "html": self.render("_mycall.html", **await self.call_card(mine[0] if mine else None),
                                                             after=after, user=user, csrf_token=csrf_token)}
        if section in ("conversations", "callbacks"):
            return {"section": section, "html": self.render(f"_{section}.html", conversations=data, ringing=data, user=user)}
        return None  # queue, emergencies, alerts: supervisors only

    async def call_card(self, call: dict | None) -> dict:
        """The current call's card: the caller, contact on file, diagnosis, keypad answers, promises."""
        if call is None:
            return {"call": None}
        contact, promises, callbacks = None, [], []
        if self.handoffs is not None and getattr(self.handoffs, "conn", None) is not None:
            if call.get("number"):
                try:
                    from callflow.core.phone import parse_number

                    e164, _ = parse_number(call["number"], self.handoffs.config.sms.region)
                    contact = await self.handoffs.contacts.get(e164) if e164 else None
                except Exception:
                    contact = None
            promises = await self.handoffs.outbox.list_for_call(call["call_id"])
            callbacks = await self.handoffs.callbacks.list_for_call(call["call_id"])
        return {"call": call, "contact": contact, "promises": promises, "callbacks": callbacks,
                "timeline": self.live.timeline(call["call_id"]), "origin": await self.origin_card(call)}

    async def origin_card(self, call: dict) -> dict | None:
        """For a callback leg: the original call's card and why it is called back (seed 000's promise)."""
        from callflow.agents.callback_leg import original_card

        of = call.get("callback")
        if not of or self.records is None:
            return None
        card = original_card(await self.records.get_call(of["of"]))
        card.update(who=of["who"], target=of["target"], call_id=of["of"], reason="", promised_at=None)
        if self.handoffs is not None and getattr(self.handoffs, "conn", None) is not None:
            promised = [cb for cb in await self.handoffs.callbacks.list_for_call(of["of"]) if cb.target == of["target"]]
            if promised:
                latest = max(promised, key=lambda cb: cb.created_at)
                card.update(reason=latest.reason, promised_at=latest.created_at, attempt=latest.attempts,
                            called=latest.number)
        return card


# -- access ---------------------------------------------------------------------------------------

def _console(request: web.Request) -> Console:
    return request.app[CONSOLE_KEY]


async def _user_or_login(request: web.Request) -> User:
    console = _console(request)
    user = await auth.current_user(request, console.store)
    if user is None:
        if request.path.startswith("/console/events") or request.headers.get("Accept", "").startswith("application/json"):
            raise web.HTTPUnauthorized(text="log in first")
        raise web.HTTPSeeOther(f"/console/login?next={request.path}")
    request["console_user"] = user
    if request.method == "POST":
        await auth.check_csrf(request)
    return user


async def _supervisor(request: web.Request) -> User:
    user = await _user_or_login(request)
    if not user.is_supervisor:
        await _console(request).store.audit(user, "denied", request.path, "", request.remote or "")
        raise web.HTTPForbidden(text="supervisors only")
    return user


async def _audit(request: web.Request, user: User, action: str, target: str, detail: Any = "") -> None:
    if user.is_supervisor:  # every supervisor action is in the audit log
        await _console(request).store.audit(user, action, target, detail, request.remote or "")


def _back(request: web.Request, fallback: str) -> web.HTTPSeeOther:
    ref = request.headers.get("Referer", "")
    target = fallback
    if "/console/" in ref:
        target = "/console/" + ref.split("/console/", 1)[1]
    return web.HTTPSeeOther(target)


async def _form(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body is not JSON")
        return data if isinstance(data, dict) else {}
    return dict(await request.post())


# -- pages ----------------------------------------------------------------------------------------

async def index(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    raise web.HTTPSeeOther("/console/supervisor" if user.is_supervisor else "/console/agent")


async def login_page(request: web.Request) -> web.Response:
    request["console_user"] = None
    return await _console(request).page(request, "login.html", error=request.query.get("error"),
                                        next=request.query.get("next", ""))


async def login(request: web.Request) -> web.Response:
    console = _console(request)
    await auth.check_csrf(request)
    form = await request.post()
    username, password = str(form.get("username", ""))[:80], str(form.get("password", ""))[:200]
    address = request.remote or ""
    wait = console.limiter.blocked(username, address)
    if wait > 0:
        await console.store.audit(None, "login_blocked", username, f"{wait:.0f}s", address)
        raise web.HTTPTooManyRequests(text=f"too many failed logins: try again in {int(wait) + 1} s")
    user = await console.store.check_password(username, password)
    if user is None:
        console.limiter.failed(username, address)
        await console.store.audit(None, "login_failed", username, "", address)
        raise web.HTTPSeeOther("/console/login?error=1")
    console.limiter.succeeded(username)
    await auth.log_in(request, user)
    await console.store.audit(user, "login", user.username, "", address)
    target = str(form.get("next", ""))
    if not target.startswith("/console/") or target.startswith("//"):
        target = "/console/"
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    await _console(request).store.audit(user, "logout", user.username, "", request.remote or "")
    from aiohttp_session import get_session

    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/console/login")


async def supervisor_page(request: web.Request) -> web.Response:
    await _supervisor(request)
    console = _console(request)
    cur = console.hub.current
    return await console.page(request, "supervisor.html", calls=cur.get("calls", []), agents=cur.get("agents", []),
                              queue=cur.get("queue", {"waiting": [], "active": None, "taken": [], "history": []}),
                              emergencies=cur.get("emergencies", []), alerts=cur.get("alerts", []),
                              conversations=cur.get("conversations", []), timelines=cur.get("timelines", {}),
                              ringing=cur.get("callbacks", []))


async def agent_page(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    extension = user.extension
    if user.is_supervisor and request.query.get("ext"):
        extension = request.query["ext"]
    agents = console.hub.current.get("agents", []) or console.live.agents()
    me = next((a for a in agents if a["extension"] == extension), None)
    calls = console.hub.current.get("calls", [])
    mine = next((c for c in calls if c.get("agent") == extension), None) or \
        next((c for c in calls if c.get("ringing") == extension), None)
    card = await console.call_card(mine)
    last = console._last_call.get(extension)
    after = None
    if last and (mine is None or mine["call_id"] != last):
        after = await _after_call(console, last)
    return await console.page(request, "agent.html", me=me, extension=extension, after=after,
                              conversations=console.hub.current.get("conversations", []),
                              ringing=console.hub.current.get("callbacks", []), **card)


async def _after_call(console: Console, call_id: str) -> dict | None:
    record = await console.records.get_call(call_id) if console.records is not None else None
    if record is None:
        return None
    cards = await console.store.cards(call_id)
    angry = any(a["kind"] == "flag" and a["detail"].startswith("agressif") for a in record["actions"])
    return {"record": record, "cards": cards, "angry": angry}


async def call_page(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    call_id = request.match_info["call_id"]
    calling_back = {cb["call_id"] for cb in console.hub.current.get("callbacks", [])}
    if not user.is_supervisor and console.live.agent_of_call(call_id) != user.extension \
            and console._last_call.get(user.extension) != call_id and call_id not in calling_back:
        raise web.HTTPForbidden(text="an agent sees their own calls only (and those being called back)")
    live = next((c for c in console.hub.current.get("calls", []) if c["call_id"] == call_id), None)
    record = await console.records.get_call(call_id) if console.records is not None else None
    if live is None and record is None:
        raise web.HTTPNotFound(text="no such call")
    card = await console.call_card(live or {"call_id": call_id, "number": (record or {}).get("number")})
    handoffs = await console.handoffs.list_for_call(call_id) if console.handoffs is not None else {}
    return await console.page(request, "call.html", record=record, live=live, handoffs=handoffs,
                              cards=await console.store.cards(call_id),
                              **card)


async def escalation_page(request: web.Request) -> web.Response:
    user = await _supervisor(request)
    console = _console(request)
    esc = console.live.escalation(request.match_info["esc_id"])
    if esc is None:
        raise web.HTTPNotFound(text="no such escalation")
    await _audit(request, user, "read_briefing", esc["id"], {"call_id": esc["call_id"]})
    return await console.page(request, "briefing.html", esc=esc)


async def sms_page(request: web.Request) -> web.Response:
    await _user_or_login(request)
    console = _console(request)
    return await console.page(request, "sms.html", conversations=await console.store.conversations(),
                              thread=None)


async def sms_thread(request: web.Request) -> web.Response:
    await _user_or_login(request)
    console = _console(request)
    thread = await console.store.conversation(request.match_info["number"])
    if thread is None:
        raise web.HTTPNotFound(text="no conversation with that number")
    status = {}
    if console.handoffs is not None:
        for msg in thread["messages"]:
            if msg["outbox_id"]:
                row = await console.handoffs.outbox.get(msg["outbox_id"])
                status[msg["outbox_id"]] = row
    return await console.page(request, "sms.html", conversations=await console.store.conversations(), thread=thread,
                              status=status)


async def sms_answer(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    number = request.match_info["number"]
    form = await _form(request)
    text = str(form.get("text", "")).strip()
    thread = await console.store.conversation(number)
    if thread is None:
        raise web.HTTPNotFound(text="no conversation with that number")
    if not text or len(text) > 640:
        raise web.HTTPBadRequest(text="the answer is a text of 1 to 640 characters")
    handoffs = console.handoffs
    row, _ = await handoffs.outbox.enqueue(
        call_id=thread["call_id"] or f"sms:{number}", kind="sms", destination=number,
        payload={"text": text, "sender": handoffs.config.sms.sender, "purpose": "console_answer"},
        key=f"console:{uuid.uuid4().hex}")
    if thread["call_id"]:
        await handoffs.links.add(thread["call_id"], "sms", row.id, row.created_at)
    handoffs.worker.notify()
    await console.store.add_answer(number, text, user.username, row.id)
    await _audit(request, user, "sms_answer", number, {"outbox": row.id})
    raise web.HTTPSeeOther(f"/console/sms/{number}")


async def sms_close(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    number = request.match_info["number"]
    note = str((await _form(request)).get("note", "")).strip()
    if not note:
        raise web.HTTPBadRequest(text="closing a conversation needs a note")
    if not await console.store.close_conversation(number, user.username, note):
        raise web.HTTPNotFound(text="no conversation with that number")
    await _audit(request, user, "sms_close", number, note[:200])
    raise web.HTTPSeeOther("/console/sms")


async def _kpi_values(request: web.Request) -> dict[str, Any]:
    console = _console(request)
    since, until = request.query.get("since"), request.query.get("until")
    try:
        since_v = since or datetime.fromtimestamp(time.time() - 86400, timezone.utc).isoformat(timespec="minutes")
        calls = await console.records.calls_with_details(since_v, until or None)
    except ValueError:
        raise web.HTTPBadRequest(text="since / until are dates like 2026-11-01 or 2026-11-01T08:00")
    values = kpi.compute(calls, service_level_seconds=console.config.service_level_seconds,
                         service_level_target=console.config.service_level_target,
                         abandonment_target=console.config.abandonment_target)
    return {"kpis": values, "series": kpi.series(calls), "since": since_v, "until": until or "",
            "refresh": console.config.wallboard_refresh_seconds, "now_clock": datetime.now().strftime("%H:%M:%S")}


async def kpi_page(request: web.Request) -> web.Response:
    await _supervisor(request)
    return await _console(request).page(request, "kpi.html", **await _kpi_values(request))


async def kpi_wallboard(request: web.Request) -> web.Response:
    """The wallboard's tiles alone: the KPI page asks for them again every `console.wallboard_refresh_seconds`."""
    await _supervisor(request)
    console = _console(request)
    html = console.render("_wallboard.html", **await _kpi_values(request))
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def audit_page(request: web.Request) -> web.Response:
    await _supervisor(request)
    console = _console(request)
    return await console.page(request, "audit.html", rows=await console.store.audit_log())


async def events(request: web.Request) -> web.StreamResponse:
    user = await _user_or_login(request)
    console = _console(request)

    token = await auth.csrf_token(request)

    sent: dict[str, str] = {}  # per connection: the last payload of each section (an unchanged one is not resent)

    async def render(section: str, data: Any) -> dict | None:
        payload = await console.section_html(user, section, data, token)
        if payload is None:
            return None
        text = json.dumps(payload, default=str, sort_keys=True)
        if sent.get(payload["section"]) == text:
            return None
        sent[payload["section"]] = text
        return payload

    return await stream(request, console.hub, render)


async def timeline_json(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    call_id = request.match_info["call_id"]
    if not user.is_supervisor and console.live.agent_of_call(call_id) != user.extension:
        raise web.HTTPForbidden(text="an agent sees their own calls only")
    return web.json_response({"call_id": call_id, "timeline": console.live.timeline(call_id)})


# -- actions ------------------------------------------------------------------------------------

async def call_action(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    call_id, action = request.match_info["call_id"], request.match_info["action"]
    if not user.is_supervisor and console.live.agent_of_call(call_id) != user.extension:
        raise web.HTTPForbidden(text="an agent acts on their own call only")
    form = await _form(request)
    payload: dict[str, Any] = {}
    if action in ("escalate", "transfer"):
        fields = {k: str(form.get(k, "")) for k in ("client", "probleme", "demande", "raison", "avis", "sensibilite")}
        fields["options"] = [o.strip() for o in str(form.get("options", "")).splitlines() if o.strip()][:10]
        fields["urgent"] = str(form.get("urgent", "")) in ("on", "true", "1")
        try:
            briefing = console.live.briefing(fields, call_id)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc))
        payload = {"briefing": briefing, "mode": "transfer" if action == "transfer" else "conference"}
    elif action == "emergency":
        payload = {"situation": str(form.get("situation", ""))[:300] or "urgence signalée depuis la console"}
    elif action == "flag_churn_red":
        payload = {"detail": str(form.get("detail", ""))[:500], "level": "red"}
    source = f"console:{user.username}"
    if not console.live.submit(call_id, action, payload, source=source):
        raise web.HTTPNotFound(text="no call with a person under that id (or unknown action)")
    await _audit(request, user, action, call_id, {k: v for k, v in form.items() if k != "_csrf"})
    raise _back(request, "/console/")


async def call_promise(request: web.Request) -> web.Response:
    """Send SMS / send email / schedule a callback for the call's caller (through the outbox)."""
    user = await _user_or_login(request)
    console = _console(request)
    call_id, kind = request.match_info["call_id"], request.match_info["kind"]
    if not user.is_supervisor and console.live.agent_of_call(call_id) != user.extension:
        raise web.HTTPForbidden(text="an agent acts on their own call only")
    call = next((c for c in console.hub.current.get("calls", []) if c["call_id"] == call_id), None)
    number = call.get("number") if call else None
    if number is None and console.records is not None:
        number = ((await console.records.get_call(call_id)) or {}).get("number")
    handoffs = console.handoffs
    form = await _form(request)
    if kind == "sms":
        result = await handoffs.send_sms(call_id, number, agent_name=user.full_name or user.username)
    elif kind == "email":
        result = await handoffs.send_email_or_instructions(call_id, number)
    elif kind == "callback":
        try:
            minutes = float(form.get("minutes", 5) or 5)
        except ValueError:
            raise web.HTTPBadRequest(text="minutes is a number")
        result = await handoffs.schedule_callback(call_id, number, delay_seconds=minutes * 60,
                                                  reason=str(form.get("reason", "rappel promis par le conseiller"))[:300])
    else:
        raise web.HTTPNotFound()
    await _audit(request, user, f"promise_{kind}", call_id, {"accepted": result.accepted, "reason": result.reason})
    if not result.accepted:
        raise web.HTTPConflict(text=f"{kind} refused: {result.reason}")
    raise _back(request, "/console/agent")


async def save_card(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    call_id, kind = request.match_info["call_id"], request.match_info["kind"]
    if kind not in ("documentation", "incident"):
        raise web.HTTPNotFound()
    if not user.is_supervisor and console._last_call.get(user.extension) != call_id \
            and console.live.agent_of_call(call_id) != user.extension:
        raise web.HTTPForbidden(text="an agent documents their own calls only")
    form = await request.post()
    body: dict[str, Any] = {}
    for key in form:
        if key == "_csrf":
            continue
        values = form.getall(key)
        body[key] = [str(v)[:1000] for v in values] if len(values) > 1 else str(values[0])[:2000]
    if kind == "incident":
        # the desk's card (seed 004 §3.1) on the call's record: what `callflow kpi` and the wallboard count,
        # and churn red schedules the J+1/J+3 calls; kept here too, so the form shows what was filled in
        try:
            await console.live.incident_card(call_id, forms.incident_from_form(form))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"fiche incident: {exc}")
        except KeyError:
            raise web.HTTPNotFound(text="the desk does not know this call (any more): the card was not stored")
    await console.store.save_card(call_id, kind, user.username, body)
    if console.records is not None:
        await console.records.add_link(call_id, f"card_{kind}", user.username)
    await _audit(request, user, f"card_{kind}", call_id)
    raise _back(request, "/console/agent")


async def escalation_outcome(request: web.Request) -> web.Response:
    """Seed 001 phase 6, « FICHE DE SUIVI POST-ESCALADE »: the supervisor's decision, through the desk."""
    user = await _supervisor(request)
    console = _console(request)
    esc_id = request.match_info["esc_id"]
    outcome = forms.outcome_from_form(await request.post(), user.full_name or user.username) \
        if request.content_type != "application/json" else await _form(request)
    try:
        stored = await console.live.escalation_outcome(esc_id, outcome)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"fiche post-escalade: {exc}")
    except KeyError:
        raise web.HTTPNotFound(text="no such escalation")
    await _audit(request, user, "escalation_outcome", esc_id,
                 {"decision": stored["decision"], "valeur_eur": stored.get("valeur_eur")})
    raise web.HTTPSeeOther(f"/console/escalations/{esc_id}")


async def agent_pause(request: web.Request) -> web.Response:
    user = await _user_or_login(request)
    console = _console(request)
    ext = request.match_info["extension"]
    if not user.is_supervisor and ext != user.extension:
        raise web.HTTPForbidden(text="an agent pauses only themselves")
    form = await _form(request)
    ok = console.live.pause(ext, str(form.get("reason", "pause"))[:100]) if request.match_info["what"] == "pause" \
        else console.live.resume(ext)
    if not ok:
        raise web.HTTPNotFound(text="unknown agent")
    await _audit(request, user, request.match_info["what"], ext, form.get("reason", ""))
    raise _back(request, "/console/")


async def listen_call(request: web.Request) -> web.Response:
    """Listen / whisper / barge: the supervisor's phone rings; once answered it hears the call."""
    user = await _supervisor(request)
    console = _console(request)
    call_id, mode = request.match_info["call_id"], request.match_info["mode"]
    if console.live.agent_of_call(call_id) is None and mode != "barge":
        raise web.HTTPConflict(text="listening needs a call with an agent")
    endpoint = f"PJSIP/{user.extension}" if user.extension else None
    await _audit(request, user, mode, call_id, {"endpoint": endpoint or "supervisor line"})

    async def run() -> None:
        try:
            await console.live.listen(call_id, mode, endpoint)
        except Exception as exc:  # shown in the log; the call itself is never touched
            log.warning("console %s on %s failed: %s", mode, call_id, exc)

    task = asyncio.get_running_loop().create_task(run(), name=f"console-{mode}-{call_id}")
    console.tasks.add(task)
    task.add_done_callback(console.tasks.discard)
    raise _back(request, "/console/supervisor")


async def take_escalation(request: web.Request) -> web.Response:
    """[Prendre l'appel]: the supervisor's own phone rings for this escalation now (whisper, then the call)."""
    user = await _supervisor(request)
    console = _console(request)
    esc_id = request.match_info["esc_id"]
    endpoint = f"PJSIP/{user.extension}" if user.extension else console.live.supervisor_line()
    try:
        esc = await console.live.take_escalation(esc_id, endpoint)
    except LookupError as exc:
        await _audit(request, user, "take_escalation", esc_id, {"endpoint": endpoint, "refused": str(exc)})
        raise web.HTTPConflict(text=str(exc))
    await _audit(request, user, "take_escalation", esc_id, {"endpoint": endpoint, "found": esc is not None})
    if esc is None:
        raise web.HTTPNotFound(text="that escalation is no longer waiting")
    raise _back(request, "/console/supervisor")


@web.middleware
async def _headers(request: web.Request, handler):
    response = await handler(request)
    if request.path.startswith("/console"):
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
    return response


def mount(app: web.Application, console: Console, *, secret: bytes) -> None:
    """Add the console to `app` (before it starts)."""
    app[CONSOLE_KEY] = console
    auth.setup(app, secret, max_age=int(console.config.session_hours * 3600), secure=console.config.cookie_secure)
    app.middlewares.append(_headers)
    r = app.router
    r.add_get("/console", index)
    r.add_get("/console/", index)
    r.add_get("/console/login", login_page)
    r.add_post("/console/login", login)
    r.add_post("/console/logout", logout)
    r.add_get("/console/supervisor", supervisor_page)
    r.add_get("/console/agent", agent_page)
    r.add_get("/console/calls/{call_id}", call_page)
    r.add_get("/console/calls/{call_id}/timeline", timeline_json)
    r.add_post("/console/calls/{call_id}/action/{action}", call_action)
    r.add_post("/console/calls/{call_id}/promise/{kind}", call_promise)
    r.add_post("/console/calls/{call_id}/card/{kind}", save_card)
    r.add_post("/console/agents/{extension}/{what:pause|resume}", agent_pause)
    r.add_get("/console/escalations/{esc_id}", escalation_page)
    r.add_post("/console/escalations/{esc_id}/take", take_escalation)
    r.add_post("/console/escalations/{esc_id}/outcome", escalation_outcome)
    r.add_post("/console/calls/{call_id}/listen/{mode:listen|whisper|barge}", listen_call)
    r.add_get("/console/sms", sms_page)
    r.add_get("/console/sms/{number}", sms_thread)
    r.add_post("/console/sms/{number}/answer", sms_answer)
    r.add_post("/console/sms/{number}/close", sms_close)
    r.add_get("/console/kpi", kpi_page)
    r.add_get("/console/kpi/wallboard", kpi_wallboard)
    r.add_get("/console/audit", audit_page)
    r.add_get("/console/events", events)
    r.add_static("/console/static", HERE / "static", append_version=True)

    async def start(_app: web.Application) -> None:
        await console.hub.start()

    async def stop(_app: web.Application) -> None:
        await console.hub.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


async def attach(app: web.Application, config: Any, *, services: Any, controller: Any = None, desk: Any = None,
                 emergency: Any = None, records: Any = None, handoffs: Any = None) -> Console:
    """Build the console from the controller's config and services and mount it on `app`.

    `config` is the whole callflow Config (console settings, the store's database);
    `services` (an AsyncExitStack) closes the console's database connection at shutdown.
    """
    # the controller's open store when it gives one (callflow.store.db: shared, SQLite or PostgreSQL)
    store = await ConsoleStore.open(getattr(records, "conn", None) or config.store.database)
    services.push_async_callback(store.close)
    live = LiveSource(controller=controller, desk=desk, emergency=emergency, records=records)
    console = Console(config=config.console, store=store, live=live, records=records, handoffs=handoffs)
    mount(app, console, secret=auth.secret_key(config.console.secret_key, config.store.database))
    users = await store.list_users()
    if not any(u.is_supervisor and not u.disabled for u in users):
        log.warning("console: no supervisor account yet; create one with "
                    "`callflow users add NAME --role supervisor` (there is no default password)")
    return console
