"""The console's logic and HTTP side without Asterisk: users, sessions, CSRF, roles, audit,
live events with Last-Event-ID replay, alerts, KPIs, reports."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).parent))

from console_fakes import briefing, build  # noqa: E402

from callflow.console import alerts, kpi  # noqa: E402
from callflow.console.auth import LoginLimiter  # noqa: E402
from callflow.console.events import EventHub  # noqa: E402
from callflow.console.store import ConsoleStore, UserError  # noqa: E402
from callflow.core.channel import AudioState  # noqa: E402


# -- users -----------------------------------------------------------------------------------

async def test_users_argon2_hash_no_weak_password_disabled_user_cannot_log_in(tmp_path):
    store = await ConsoleStore.open(str(tmp_path / "c.db"))
    try:
        with pytest.raises(UserError, match="at least 10"):
            await store.add_user("bob", "short", "agent", extension="2001")
        with pytest.raises(UserError, match="extension"):
            await store.add_user("bob", "a long enough one", "agent")
        with pytest.raises(UserError, match="role"):
            await store.add_user("bob", "a long enough one", "boss")
        user = await store.add_user("Bob", "a long enough one", "agent", extension="2001")
        assert user.username == "bob" and not user.is_supervisor
        with pytest.raises(UserError, match="already exists"):
            await store.add_user("bob", "another long one", "agent", extension="2001")
        async with store.conn.execute("SELECT password_hash FROM console_users") as cur:
            stored = (await cur.fetchone())[0]
        assert stored.startswith("$argon2id$") and "a long enough one" not in stored
        assert await store.check_password("bob", "a long enough one") == user
        assert await store.check_password("bob", "wrong password!") is None
        assert await store.check_password("nobody", "a long enough one") is None
        assert await store.set_disabled("bob")
        assert await store.check_password("bob", "a long enough one") is None
    finally:
        await store.close()


async def test_checking_a_password_leaves_the_controllers_loop_free(tmp_path):
    """argon2 is slow on purpose; the console shares the controller's loop with the calls' ARI events, so a
    login must not stop that loop: a 10 ms ticker keeps ticking while a costly hash is verified."""
    from argon2 import PasswordHasher

    store = await ConsoleStore.open(str(tmp_path / "c.db"))
    store.hasher = PasswordHasher(time_cost=12, memory_cost=65536)
    try:
        await store.add_user("bob", "a long enough one", "agent", extension="2001")
        async with store.conn.execute("SELECT password_hash FROM console_users") as cur:
            stored = (await cur.fetchone())[0]
        started = time.monotonic()
        assert store._verify(stored, "a long enough one")
        one_verify = time.monotonic() - started
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        assert await store.check_password("bob", "a long enough one") is not None
        task.cancel()
        # blocking, the ticker would not tick at all during the verify; free, it ticks about every 10 ms
        assert ticks >= max(3, one_verify / 0.01 / 4), (ticks, one_verify)
    finally:
        await store.close()


def test_login_limiter_counts_per_user_and_per_address_within_the_window():
    now = [0.0]
    limiter = LoginLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.blocked("bob", "1.1.1.1") == 0
        limiter.failed("bob", "1.1.1.1")
    assert limiter.blocked("bob", "2.2.2.2") > 0  # same user from elsewhere
    assert limiter.blocked("eve", "1.1.1.1") == 0  # a colleague behind the same address still may
    for name in range(9):
        limiter.failed(f"user{name}", "1.1.1.1")
    assert limiter.blocked("eve", "1.1.1.1") > 0  # a spray of names from one address: 4 × 3 failures
    assert limiter.blocked("eve", "2.2.2.2") == 0
    now[0] = 61
    assert limiter.blocked("bob", "1.1.1.1") == 0


# -- events ----------------------------------------------------------------------------------

async def test_event_hub_numbers_changes_replays_after_last_event_id_and_resets_when_it_cannot():
    picture = {"calls": [], "agents": [{"extension": "2001", "state": "available"}]}

    async def read():
        return json.loads(json.dumps(picture))

    hub = EventHub(read, keep=3)
    first = await hub.tick()
    assert [e.section for e in first] == ["calls", "agents"]
    assert await hub.tick() == []  # nothing changed, nothing sent
    mark = hub.last_id
    picture["calls"] = [{"call_id": "c1"}]
    picture["agents"][0]["state"] = "on_call"
    await hub.tick()
    missed = hub.since(mark)
    assert [e.section for e in missed] == ["calls", "agents"]
    assert missed[0].data == {"rows": [{"call_id": "c1"}], "gone": [], "order": ["c1"]}  # the row that changed
    assert hub.current["calls"] == [{"call_id": "c1"}]  # pages render from the whole picture
    assert hub.since(hub.last_id) == []
    assert hub.since("otherboot.1") is None  # another process: full picture instead
    assert hub.since(None) is None
    for i in range(4):  # push the mark out of the kept window
        picture["calls"] = [{"call_id": f"c{i + 2}"}]
        await hub.tick()
    assert hub.since(mark) is None
    assert {e.section for e in hub.snapshot_events()} == {"calls", "agents"}


async def test_a_new_call_pokes_the_hub_it_does_not_wait_for_the_next_refresh():
    """The supervisor sees a call within 2 s of the controller taking it (issue 13 §7): the controller tells
    the console (call_observers) and the hub reads the picture at once, whatever console.refresh_seconds."""
    from callflow.console.live import LiveSource
    from console_fakes import FakeController

    controller = FakeController()
    controller.call_observers = []
    live = LiveSource(controller=controller)
    hub = EventHub(lambda: _calls_of(controller), refresh=10.0)
    live.on_change = hub.poke
    await hub.start()
    try:
        assert hub.current["calls"] == []
        controller.add_ivr_call("new-1")
        started = time.monotonic()
        for observe in controller.call_observers:
            observe("new-1")
        while not hub.current["calls"] and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        assert [c["call_id"] for c in hub.current["calls"]] == ["new-1"]
        assert time.monotonic() - started < 2.0  # not the 10 s refresh
    finally:
        await hub.stop()


async def _calls_of(controller) -> dict:
    return {"calls": [{"call_id": key} for key in controller.calls]}


async def test_event_hub_sends_only_the_rows_and_readings_that_changed_and_a_reset_sends_them_whole():
    picture = {"calls": [{"call_id": "c1", "stage": "greeting"}, {"call_id": "c2", "stage": "keypad"}],
               "timelines": {"append": {"c1": [[0.25, "silence", -60.0, False]]}, "gone": []}}

    async def read():
        return json.loads(json.dumps(picture))

    hub = EventHub(read)
    await hub.tick()
    picture["calls"][1]["stage"] = "agent"
    picture["timelines"] = {"append": {"c1": [[0.5, "breathing", -42.0, False]], "c2": [[0.5, "speech", -20.0, False]]},
                            "gone": []}
    calls, timelines = await hub.tick()
    assert calls.data == {"rows": [{"call_id": "c2", "stage": "agent"}], "gone": [], "order": ["c1", "c2"]}
    assert timelines.data["append"] == {"c1": [[0.5, "breathing", -42.0, False]], "c2": [[0.5, "speech", -20.0, False]]}
    picture["calls"] = [picture["calls"][1]]
    picture["timelines"] = {"append": {}, "gone": ["c1"]}
    calls, timelines = await hub.tick()
    assert calls.data == {"rows": [], "gone": ["c1"], "order": ["c2"]} and timelines.data["gone"] == ["c1"]
    picture["timelines"] = {"append": {}, "gone": []}
    assert await hub.tick() == []  # no new reading, no changed row: nothing
    # the whole picture, applied: a reset sends it in full
    assert hub.current["timelines"] == {"c2": [[0.5, "speech", -20.0, False]]}
    reset = {e.section: e.data for e in hub.snapshot_events()}
    assert reset["calls"] == [{"call_id": "c2", "stage": "agent"}]
    assert reset["timelines"] == {"full": {"c2": [[0.5, "speech", -20.0, False]]}}


def test_live_timeline_increments_are_the_readings_not_sent_yet():
    from callflow.console.live import LiveSource
    from console_fakes import FakeController

    controller = FakeController()
    live = LiveSource(controller=controller)
    for at in (0.25, 0.5):
        controller.reading("c1", at)
    sent: dict = {}
    first = live.timeline_increments(["c1", "c2"], sent)
    assert [p[0] for p in first["append"]["c1"]] == [0.25, 0.5] and first["gone"] == [] and "c2" not in first["append"]
    controller.reading("c1", 0.75)
    assert [p[0] for p in live.timeline_increments(["c1"], sent)["append"]["c1"]] == [0.75]
    assert live.timeline_increments(["c1"], sent) == {"append": {}, "gone": []}
    assert live.timeline_increments([], sent) == {"append": {}, "gone": ["c1"]}


# -- alerts and KPIs ---------------------------------------------------------------------------

def test_alerts_every_kind_the_issue_lists_urgent_first():
    from types import SimpleNamespace

    now = 10_000.0
    failed = [SimpleNamespace(id="m1", kind="sms", destination="+33612345678", last_error="HTTP 400", call_id="c1",
                              updated_at=now - 5)]
    cbs = [SimpleNamespace(id="cb1", target="agents", number="+33612345678", attempts=3, last_outcome="no_answer",
                           call_id="c2", updated_at=now - 50)]
    convs = [{"number": "+33611111111", "status": "open", "last_in_at": now - 30, "last_answer_at": None, "call_id": "c3"},
             {"number": "+33622222222", "status": "open", "last_in_at": now - 900, "last_answer_at": None, "call_id": None},
             {"number": "+33633333333", "status": "open", "last_in_at": now - 900, "last_answer_at": now - 10, "call_id": None}]
    ems = [{"call_id": "c4", "state": "calling", "attempts": 2, "destination": "PJSIP/emergency-test"}]
    notes = [{"kind": "churn_red", "call_id": "c5", "detail": "veut résilier", "at": now - 3}]
    got = alerts.compute(now=now, failed_messages=failed, failed_callbacks=cbs, conversations=convs, emergencies=ems,
                         notifications=notes, raised_voices={"c6": now - 2}, sms_unanswered_seconds=600,
                         emergency_started={"c4": now - 25})
    kinds = [a["kind"] for a in got]
    assert kinds[0] == "emergency_line"
    assert set(kinds) == {"emergency_line", "sms_failed", "callback_unanswered", "sms_reply", "sms_unanswered",
                          "churn_red", "raised_voice"}
    assert "+33612345678" not in json.dumps(got)  # numbers masked in alerts
    # an emergency line ringing for only a few seconds is not an alert yet
    assert alerts.compute(now=now, emergencies=ems, emergency_started={"c4": now - 3}) == []


def _call(cid, start, *, queued=None, connected=None, duration=None, hung_up_by="caller", extra=()):
    actions = []
    if queued is not None:
        actions.append({"kind": "agent_queue", "at": queued, "detail": "fr"})
    if connected is not None:
        actions.append({"kind": "agent_connected", "at": connected, "detail": "2001"})
    actions += [dict(a) for a in extra]
    return {"call_id": cid, "started_epoch": start, "call_type": None, "cause": None, "duration": duration,
            "hung_up_by": hung_up_by, "actions": actions, "audio": [], "links": []}


def test_contact_centre_kpis_follow_their_stated_formulas():
    calls = [
        _call("a", 0, queued=5, connected=10, duration=100),  # answered in 5 s, handled 90 s
        _call("b", 10, queued=5, connected=40, duration=70),  # answered in 35 s, handled 30 s
        _call("c", 20, queued=5, duration=30),  # abandoned
        _call("d", 30, duration=12),  # never queued (IVR only)
        _call("e", 40, queued=5, connected=8, duration=60,
              extra=[{"kind": "escalation", "at": 20, "detail": "esc-1"}, {"kind": "escalation_connected", "at": 35, "detail": ""},
                     {"kind": "flag", "at": 21, "detail": "agressif: pause de 300s"}]),
    ]
    got = {k["id"]: k for group in ("centre", "escalations", "anger") for k in kpi.compute(calls, service_level_seconds=20)[group]}
    assert got["service_level"]["value"] == 50.0  # a and e within 20 s, of 4 queued
    assert got["asa"]["value"] == round((5 + 35 + 3) / 3, 1)
    assert got["abandonment"]["value"] == 25.0 and got["abandonment"]["ok"] is False
    assert got["handle_time"]["value"] == round((90 + 30 + 52) / 3, 1)
    assert got["escalations"]["value"] == 1 and got["escalation_answer"]["value"] == 15.0
    assert got["aggressive_pct"]["value"] == 20.0
    series = kpi.series(calls, bucket_seconds=3600)
    assert series["calls"] == [5] and series["abandoned"] == [1] and series["answered"] == [3]


# -- the web side ---------------------------------------------------------------------------------

class Browser:
    """A TestClient that logs in like a person: reads the CSRF token from the page."""

    def __init__(self, client: TestClient):
        self.client = client
        self.csrf = ""

    async def get(self, path: str, **kw):
        resp = await self.client.get(path, allow_redirects=kw.pop("allow_redirects", True), **kw)
        text = await resp.text()
        found = re.search(r'name="csrf-token" content="([^"]+)"', text)
        if found:
            self.csrf = found.group(1)
        return resp, text

    async def post(self, path: str, data: dict | None = None, csrf: bool = True):
        data = dict(data or {})
        if csrf:
            data["_csrf"] = self.csrf
        return await self.client.post(path, data=data, allow_redirects=False)

    async def login(self, username: str, password: str):
        await self.get("/console/login")
        return await self.post("/console/login", {"username": username, "password": password})


@pytest.fixture
async def web(tmp_path):
    app, console, desk, controller, stack = await build(tmp_path, env={"CALLFLOW_CONSOLE_LOGIN_ATTEMPTS": "3"})
    await console.store.add_user("sup", "supervisor pass 1", "supervisor")
    await console.store.add_user("ag1", "agent one pass", "agent", extension="2001")
    await console.store.add_user("ag2", "agent two pass", "agent", extension="2002")
    servers = []

    async def browser() -> Browser:
        client = TestClient(TestServer(app)) if not servers else TestClient(servers[0])
        if not servers:
            await client.start_server()
            servers.append(client.server)
        clients.append(client)
        return Browser(client)

    clients: list[TestClient] = []
    yield browser, console, desk, controller
    for c in clients:
        await c.close()
    await stack.aclose()


async def test_login_wrong_password_then_limit_then_roles(web):
    browser, console, desk, _ = web
    b = await browser()
    resp, _ = await b.get("/console/supervisor", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    resp = await b.login("sup", "wrong wrong wrong")
    assert resp.status == 303 and "error" in resp.headers["Location"]
    resp = await b.login("sup", "supervisor pass 1")
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    resp, text = await b.get("/console/supervisor")
    assert resp.status == 200 and "ESCALADES EN ATTENTE" in text
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    cookie = resp.cookies.get("callflow_console") or next(iter(b.client.session.cookie_jar))
    assert "sup" not in str(cookie.value)  # the cookie is encrypted, not a readable name

    agent = await browser()
    agent.client.session.cookie_jar.clear()
    assert (await agent.login("ag1", "agent one pass")).status == 303
    resp, _ = await agent.get("/console/supervisor")
    assert resp.status == 403
    resp, _ = await agent.get("/console/kpi")
    assert resp.status == 403
    resp, text = await agent.get("/console/agent")
    assert resp.status == 200 and "Mon état" in text

    # too many failures: refused even with the right password, and written down
    for _ in range(3):
        await b.login("ag2", "not the password")
    resp = await b.login("ag2", "agent two pass")
    assert resp.status == 429
    actions = [r["action"] for r in await console.store.audit_log()]
    assert "login_blocked" in actions and actions.count("login_failed") >= 4 and "denied" in actions


async def test_post_without_csrf_is_refused_and_supervisor_actions_are_audited(web):
    browser, console, desk, _ = web
    b = await browser()
    await b.login("sup", "supervisor pass 1")
    await b.get("/console/supervisor")
    resp = await b.post("/console/agents/2001/pause", {"reason": "formation"}, csrf=False)
    assert resp.status == 403
    assert desk.pool.get("2001").state.value == "available"
    resp = await b.post("/console/agents/2001/pause", {"reason": "formation"})
    assert resp.status == 303
    assert desk.pool.get("2001").state.value == "paused" and desk.pool.get("2001").pause_reason == "formation"
    audit = await console.store.audit_log()
    assert audit[0]["action"] == "pause" and audit[0]["target"] == "2001" and audit[0]["username"] == "sup"


async def test_take_escalation_rings_the_supervisors_own_phone_and_is_audited(web):
    browser, console, desk, _ = web
    await console.store.add_user("claire", "supervisor pass 2", "supervisor", extension="2101")
    first = desk.queue.new("c1", briefing("Marie Dupuis", urgent=True), "conference", "2001")
    second = desk.queue.new("c2", briefing("Thomas Martin"), "conference", "2002")
    assert [e.id for e in desk.queue.ordered()] == [first.id, second.id]  # urgent first (seed 001 §3.1)
    b = await browser()
    await b.login("claire", "supervisor pass 2")
    resp, text = await b.get("/console/supervisor")
    await console.hub.tick()
    resp, text = await b.get("/console/supervisor")
    assert text.index("Marie Dupuis") < text.index("Thomas Martin") and "PRENDRE L'APPEL" in text
    waiter = asyncio.ensure_future(desk.queue.wait_turn(second, 5.0))
    resp = await b.post(f"/console/escalations/{second.id}/take")
    assert resp.status == 303
    assert await asyncio.wait_for(waiter, 1.0) == "taken" and second.taken_by == "PJSIP/2101"  # Claire's own phone
    await console.hub.tick()
    resp, text = await b.get("/console/supervisor")
    assert "Prise par PJSIP/2101" in text
    resp, text = await b.get(f"/console/escalations/{second.id}")
    assert "Thomas Martin" in text and "remboursement" in text
    rows = await console.store.audit_log()
    actions = [(r["action"], r["target"]) for r in rows]
    assert ("take_escalation", second.id) in actions and ("read_briefing", second.id) in actions
    assert "PJSIP/2101" in next(r["detail"] for r in rows if r["action"] == "take_escalation")


async def test_take_escalation_is_refused_when_the_supervisors_phone_is_not_registered(web):
    browser, console, desk, _ = web

    class Offline:
        async def registered(self, endpoint: str) -> bool:
            return False

    desk.presence = Offline()
    esc = desk.queue.new("c1", briefing("Marie Dupuis"), "conference", "2001")
    b = await browser()
    await b.login("sup", "supervisor pass 1")
    await b.get("/console/supervisor")
    resp = await b.post(f"/console/escalations/{esc.id}/take")
    assert resp.status == 409 and "not registered" in await resp.text()
    assert not esc.taken_by
    assert any(r["action"] == "take_escalation" and "refused" in r["detail"] for r in await console.store.audit_log())


async def test_agent_acts_only_on_own_call_and_actions_reach_the_desk(web):
    browser, console, desk, _ = web
    desk.add_call("call-a", agent="2001")
    desk.add_call("call-b", agent="2002")
    b = await browser()
    await b.login("ag1", "agent one pass")
    await console.hub.tick()
    resp, text = await b.get("/console/agent")
    assert "call-a" in text and "call-b" not in text and 'data-key="9"' in text
    resp = await b.post("/console/calls/call-a/action/flag_aggressive")
    assert resp.status == 303
    resp = await b.post("/console/calls/call-a/action/escalate",
                        {"client": "Marie", "probleme": "p", "demande": "d", "raison": "Litige", "options": "a\nb",
                         "urgent": "on"})
    assert resp.status == 303
    resp = await b.post("/console/calls/call-b/action/close")
    assert resp.status == 403
    resp, _ = await b.get("/console/calls/call-b")
    assert resp.status == 403
    (c1, a1, _, src), (c2, a2, p2, _) = desk.submitted
    assert (c1, a1, src) == ("call-a", "flag_aggressive", "console:ag1")
    assert a2 == "escalate" and p2["briefing"].urgent and p2["briefing"].options == ["a", "b"]
    assert p2["briefing"].hotliner == "2001"


async def test_events_stream_sends_the_picture_then_changes_and_replays_after_last_event_id(web):
    browser, console, desk, controller = web
    b = await browser()
    await b.login("sup", "supervisor pass 1")
    await console.hub.start()

    async def read_events(headers=None, want=1):
        resp = await b.client.get("/console/events", headers=headers or {})
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        got, buf = [], ""
        try:
            while len(got) < want:
                chunk = await asyncio.wait_for(resp.content.readany(), 5)
                buf += chunk.decode()
                while "\n\n" in buf or "\r\n\r\n" in buf:
                    sep = "\r\n\r\n" if "\r\n\r\n" in buf else "\n\n"
                    block, buf = buf.split(sep, 1)
                    fields = dict(line.split(": ", 1) for line in block.replace("\r", "").splitlines() if ": " in line)
                    if "event" in fields:
                        got.append(fields)
        finally:
            resp.close()
        return got

    first = await read_events(want=3)
    assert first[0]["event"] == "reset"
    mark = first[-1]["id"]
    controller.add_ivr_call("ivr-1")
    controller.reading("ivr-1", 1.0, AudioState.BREATHING, -40)
    await console.hub.tick()
    replay = await read_events({"Last-Event-ID": mark}, want=1)
    sections = [json.loads(e["data"])["section"] for e in replay]
    assert "calls" in sections and replay[0]["event"] == "section"
    assert all(int(e["id"].split(".")[1]) > int(mark.split(".")[1]) for e in replay)
    await console.hub.stop()


async def test_an_agents_live_stream_carries_only_their_own_state_and_call_never_the_supervisors_sections(web):
    """The stream is filtered per connection: an agent gets their state and their call's card (and its
    timeline), never the queue, alerts, emergencies or another agent's call."""
    _, console, desk, controller = web
    desk.add_call("mine", agent="2001", summary="respiration, clavier")
    desk.add_call("theirs", agent="2002", summary="bruit de fond")
    desk.queue.new("theirs", briefing(), "conference", "2002")
    controller.reading("mine", 1.0)
    controller.reading("theirs", 1.0)
    await console.hub.tick()
    agent = await console.store.get_user("ag1")
    sup = await console.store.get_user("sup")
    for section in ("queue", "alerts", "emergencies"):
        data = console.hub.current.get(section, [])
        assert await console.section_html(agent, section, data) is None, section
        assert (await console.section_html(sup, section, data))["section"] == section
    for event in console.hub.snapshot_events():
        got = await console.section_html(agent, event.section, event.data)
        if got is None:
            continue
        text = json.dumps(got)
        assert got["section"] in ("mystate", "mycall", "timelines", "conversations", "callbacks"), got["section"]
        assert "theirs" not in text and "bruit de fond" not in text, got["section"]
        if got["section"] == "mycall":
            assert "mine" in text
        if got["section"] == "timelines":
            assert set(got["json"]["full"]) == {"mine"}


async def test_sms_reply_opens_a_conversation_answer_goes_through_the_outbox_close_needs_a_note(tmp_path):
    from callflow.handoff.config import HandoffConfig, OutboxConfig, SmsConfig
    from callflow.handoff.service import HandoffService

    db = str(tmp_path / "callflow.db")
    handoffs = HandoffService(HandoffConfig(sms=SmsConfig(log_path=str(tmp_path / "sms.log")), outbox=OutboxConfig(db_path=db)))
    await handoffs.open()
    app, console, desk, controller, stack = await build(tmp_path, handoffs=handoffs)
    await console.store.add_user("ag1", "agent one pass", "agent", extension="2001")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        await handoffs.inbound.receive("+33612345678", "Oui je peux écrire", source="http")
        picture = await console.picture()
        assert picture["conversations"][0]["number"] == "+33612345678"
        assert [a["kind"] for a in picture["alerts"]] == ["sms_reply"]
        b = Browser(client)
        await b.login("ag1", "agent one pass")
        resp, text = await b.get("/console/sms/+33612345678")
        assert "Oui je peux écrire" in text
        resp = await b.post("/console/sms/+33612345678/answer", {"text": "Bonjour, que se passe-t-il ?"})
        assert resp.status == 303
        rows = await handoffs.outbox.list()
        assert rows[0].kind == "sms" and rows[0].payload["text"] == "Bonjour, que se passe-t-il ?"
        assert rows[0].destination == "+33612345678" and rows[0].status == "queued"
        assert (await console.picture())["alerts"] == []  # answered: no more alert
        resp = await b.post("/console/sms/+33612345678/close", {"note": ""})
        assert resp.status == 400
        resp = await b.post("/console/sms/+33612345678/close", {"note": "client rassuré"})
        assert resp.status == 303
        assert (await console.store.conversation("+33612345678"))["status"] == "closed"
    finally:
        await client.close()
        await stack.aclose()
        await handoffs.stop()


async def test_report_writes_a_pdf_and_an_html_file_with_plots(tmp_path):
    from callflow.console.report import write_report
    from callflow.store.records import Records

    records = await Records.open(str(tmp_path / "callflow.db"))
    store = await ConsoleStore.open(str(tmp_path / "callflow.db"))
    try:
        t0 = time.time() - 3600
        for i in range(3):
            await records.start(f"c{i}", number="+33612345678", started_at=t0 + i * 60, flow="silent_call", language="fr")
            await records.note(f"c{i}", "agent_queue", "fr", at=3.0)
            if i:
                await records.note(f"c{i}", "agent_connected", "2001", at=8.0)
            await records.ended(f"c{i}", at=40.0, hung_up_by="caller", reason="bye")
        pdf, html = tmp_path / "r.pdf", tmp_path / "r.html"
        assert await write_report(records, store, since="2020-01-01", until=None, fmt="pdf", path=str(pdf)) == 3
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
        assert await write_report(records, store, since="2020-01-01", until=None, fmt="html", path=str(html)) == 3
        text = html.read_text()
        assert "Niveau de service" in text and text.count("data:image/png;base64,") == 2 and "66.7%" in text
        with pytest.raises(ValueError):
            await write_report(records, store, since="yesterday", until=None, fmt="pdf", path=str(pdf))
    finally:
        await store.close()
        await records.close()


def test_config_refuses_a_bad_console_key_with_its_name():
    from callflow import config as config_mod
    from callflow.core.errors import ConfigError

    with pytest.raises(ConfigError, match="console.secret_key"):
        config_mod.load(env={"CALLFLOW_CONSOLE_SECRET_KEY": "short", "CALLFLOW_ARI_USER": "u", "CALLFLOW_ARI_PASSWORD": "p"})
    with pytest.raises(ConfigError, match="console.sms_unanswered_seconds"):
        config_mod.load(env={"CALLFLOW_CONSOLE_SMS_UNANSWERED_SECONDS": "1", "CALLFLOW_ARI_USER": "u",
                             "CALLFLOW_ARI_PASSWORD": "p"})


# -- listen / whisper / barge ------------------------------------------------------------------------

class _Router:
    def __init__(self):
        self.handlers, self.claims, self.closed = {}, {}, []

    def open(self, owner, handler):
        self.handlers[owner] = handler

    def claim(self, owner, object_id):
        self.claims[object_id] = owner

    async def close(self, owner):
        self.closed.append(owner)


class _Client:
    def __init__(self, router, answer: bool = True):
        self.router, self.answer, self.posts, self.deletes = router, answer, [], []

    async def post(self, path, body=None, **params):
        from callflow.telephony.ari.events import AriEvent

        self.posts.append((path, params))
        if path == "channels":
            cid = params["channelId"]
            kind = "StasisStart" if self.answer else "ChannelDestroyed"
            event = AriEvent.from_dict({"type": kind, "channel": {"id": cid}, "args": ["leg"]})
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.router.handlers[self.router.claims[cid]](event)))
        return {}

    async def delete(self, path, **params):
        self.deletes.append(path)


def _spy_env(answer=True):
    from types import SimpleNamespace

    from callflow.console.live import LiveSource
    from console_fakes import FakeDesk

    router = _Router()
    client = _Client(router, answer)
    controller = SimpleNamespace(client=client, router=router, config=SimpleNamespace(ari=SimpleNamespace(app="callflow")),
                                 reading_observers=[])
    desk = FakeDesk()
    desk.add_call("c1", agent="2001")
    desk.live["c1"] = SimpleNamespace(agent=desk.pool.get("2001"), caller=SimpleNamespace(id="chan-caller"),
                                      legs={"agent": SimpleNamespace(id="leg-agent")}, bridge_id="callflow-c1")
    return LiveSource(controller=controller, desk=desk), client, router


async def test_listen_snoops_the_caller_and_bridges_the_supervisors_phone_nobody_hears_them():
    live, client, router = _spy_env()
    state = await live.listen("c1", "listen", "PJSIP/2100")
    assert state["state"] == "connected" and state["id"].startswith("leg-")  # a restart hangs it up, never queues it
    paths = [p for p, _ in client.posts]
    assert paths[0] == "channels" and client.posts[0][1]["endpoint"] == "PJSIP/2100"
    snoop = dict(client.posts)["channels/chan-caller/snoop"]
    assert snoop["spy"] == "both" and snoop["whisper"] == "none"
    assert client.posts[-1][1]["channel"] == f"{state['id']},{state['id']}-snoop"


async def test_whisper_goes_to_the_agent_only_and_barge_joins_the_calls_bridge():
    live, client, _ = _spy_env()
    await live.listen("c1", "whisper", "PJSIP/2100")
    snoop = dict(client.posts)["channels/leg-agent/snoop"]
    assert snoop["whisper"] == "out"
    live2, client2, _ = _spy_env()
    state = await live2.listen("c1", "barge", "PJSIP/2100")
    assert client2.posts[-1] == ("bridges/callflow-c1/addChannel", {"channel": state["id"]})
    assert not any("snoop" in p for p, _ in client2.posts)


async def test_a_supervisor_phone_that_does_not_answer_leaves_nothing_behind():
    live, client, router = _spy_env(answer=False)
    with pytest.raises(LookupError, match="did not answer"):
        await live.listen("c1", "listen", "PJSIP/2100")
    assert not live.spy.active and router.closed
    assert not any("snoop" in p for p, _ in client.posts)
    with pytest.raises(LookupError):
        await live.listen("nope", "listen", "PJSIP/2100")


async def test_after_the_call_the_agent_fills_the_documentation_and_incident_cards_the_supervisor_reads_them(web):
    browser, console, desk, controller = web
    records = console.records
    await records.start("call-z", number="+33612345678", started_at=time.time() - 60, flow="silent_call", language="fr")
    await records.note("call-z", "agent_connected", "2001", at=5.0)
    await records.note("call-z", "flag", "agressif: pause de 300s", at=20.0)
    desk.add_call("call-z", agent="2001")
    await console.hub.tick()
    desk.end_call("call-z")
    await records.ended("call-z", at=60.0, hung_up_by="agent", reason="fin")
    await console.hub.tick()
    b = await browser()
    await b.login("ag1", "agent one pass")
    resp, text = await b.get("/console/agent")
    assert "APPEL MUET – DOCUMENTATION" in text and "INCIDENT CLIENT" in text  # flagged aggressive: 004 §3.1 too
    # and live, without a reload: the agent's stream brings the cards the moment the call is over
    live = await console.section_html(await console.store.get_user("ag1"), "calls", console.hub.current["calls"])
    assert live["section"] == "mycall" and "APPEL MUET – DOCUMENTATION" in live["html"] and "INCIDENT CLIENT" in live["html"]
    resp = await b.client.post("/console/calls/call-z/card/documentation", allow_redirects=False,
                               data=[("_csrf", b.csrf), ("actions", "parle"), ("actions", "alternatives"), ("note", "ok")])
    assert resp.status == 303
    # a value the card does not take: refused with the field's name, nothing stored
    resp = await b.post("/console/calls/call-z/card/incident", {"intensite": "forte", "bien_etre_hotliner": "7"})
    assert resp.status == 400 and "bien_etre_hotliner" in await resp.text()
    assert "incident" not in await console.store.cards("call-z")
    resp = await b.post("/console/calls/call-z/card/incident", {
        "nom": "Marie Dupuis", "client_id": "CLT-00245", "intensite": "forte", "raison": "promesse_non_tenue",
        "bien_etre_hotliner": "2", "sentiment_fin": "apaise", "risque_churn": "modere", "satisfaction_plan": "4",
        "desescalade_minutes": "3,5", "geste_commercial": "crédit atelier", "geste_montant": "35",
        "engagements": "rappel J+1\nemail récapitulatif"})
    assert resp.status == 303
    cards = await console.store.cards("call-z")
    assert cards["documentation"]["actions"] == ["parle", "alternatives"] and cards["incident"]["bien_etre_hotliner"] == "2"
    # the desk's card on the call's record: what `callflow kpi` and the wallboard count (seed 004 §8)
    record = await records.get_call("call-z")
    [card] = [json.loads(a["detail"]) for a in record["actions"] if a["kind"] == "incident_card"]
    assert card["client"] == "Marie Dupuis · CLT-00245" and card["geste_montant"] == 35.0
    assert card["engagements"] == ["rappel J+1", "email récapitulatif"] and card["desescalade_minutes"] == 3.5
    sup = await browser()
    sup.client.session.cookie_jar.clear()
    await sup.login("sup", "supervisor pass 1")
    resp, text = await sup.get("/console/calls/call-z")
    assert resp.status == 200 and "agressif" in text and "documentation (ag1)" in text
    resp, text = await sup.get("/console/kpi/wallboard?since=2020-01-01")
    tiles = dict(re.findall(r'data-kpi="(\w+)" data-ok="(\w+)"', text))
    assert tiles["deescalated"] == "yes" and tiles["wellbeing"] == "no" and tiles["deescalation_time"] == "yes", tiles
    assert re.search(r'data-kpi="wellbeing".*?<span class="value">2.0 /5', text, re.S)


async def test_the_supervisor_files_the_post_escalation_card_and_the_wallboard_counts_it(web):
    """Seed 001 phase 6 from the briefing page: the decision goes on the call's record through the desk, is
    audited, and the 001 §7/§9 tiles (approval rate, exception value, justified) follow; a card is filed once."""
    browser, console, desk, _ = web
    await console.records.start("call-e", number="+33612345678", started_at=time.time() - 60, flow="silent_call",
                                language="fr")
    await console.records.note("call-e", "escalation", "esc-1", at=10.0)
    esc = desk.queue.new("call-e", briefing(), "conference", "2001")
    await desk.queue.take(esc.id, "PJSIP/2100")
    await console.hub.tick()
    sup = await browser()
    await sup.login("sup", "supervisor pass 1")
    resp, text = await sup.get(f"/console/escalations/{esc.id}")
    assert "FICHE DE SUIVI POST-ESCALADE" in text
    resp = await sup.post(f"/console/escalations/{esc.id}/outcome", {"decision": "peut-être"})
    assert resp.status == 400 and "decision" in await resp.text()
    resp = await sup.post(f"/console/escalations/{esc.id}/outcome", {
        "decision": "approuvee", "valeur_eur": "35 €", "justifiee": "oui", "satisfaction": "5",
        "motif_decision": "client ancien, exception pour rétention", "prochaines_etapes": "crédit créé\nappel J+3"})
    assert resp.status == 303
    record = await console.records.get_call("call-e")
    [outcome] = [json.loads(a["detail"]) for a in record["actions"] if a["kind"] == "escalation_outcome"]
    assert outcome["decision"] == "approuvee" and outcome["valeur_eur"] == 35.0 and outcome["justifiee"] is True
    assert outcome["prochaines_etapes"] == ["crédit créé", "appel J+3"] and outcome["superviseur"] == "sup"
    assert (await sup.post(f"/console/escalations/{esc.id}/outcome", {"decision": "refusee"})).status == 400  # once
    resp, text = await sup.get(f"/console/escalations/{esc.id}")
    assert 'data-decision="approuvee"' in text
    resp, text = await sup.get("/console/kpi/wallboard?since=2020-01-01")
    tiles = dict(re.findall(r'data-kpi="(\w+)" data-ok="(\w+)"', text))
    assert tiles["escalation_approved"] == "no" and tiles["exception_value"] == "yes" and tiles["escalation_justified"] == "yes"
    assert re.search(r'data-kpi="escalation_approved".*?<span class="value">100.0%', text, re.S)
    audit = [(r["action"], r["target"]) for r in await console.store.audit_log()]
    assert ("escalation_outcome", esc.id) in audit
    # an agent cannot file it
    agent = await browser()
    agent.client.session.cookie_jar.clear()
    await agent.login("ag1", "agent one pass")
    await agent.get("/console/agent")
    assert (await agent.post(f"/console/escalations/{esc.id}/outcome", {"decision": "refusee"})).status == 403


async def test_a_callback_ringing_shows_the_original_calls_card_to_the_agents(tmp_path):
    from callflow.handoff.config import HandoffConfig, OutboxConfig, SmsConfig
    from callflow.handoff.service import HandoffService

    db = str(tmp_path / "callflow.db")
    handoffs = HandoffService(HandoffConfig(sms=SmsConfig(log_path=str(tmp_path / "sms.log")), outbox=OutboxConfig(db_path=db)))
    await handoffs.open()
    app, console, desk, controller, stack = await build(tmp_path, handoffs=handoffs)
    await console.store.add_user("ag1", "agent one pass", "agent", extension="2001")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        await console.records.start("orig-1", number="+33612345678", started_at=time.time() - 600, flow="silent_call",
                                    language="fr")
        await console.records.note("orig-1", "agent_queue", "fr: respiration, pas de réponse au clavier", at=30.0)
        result = await handoffs.schedule_callback("orig-1", "+33612345678", delay_seconds=0, reason="rappel demandé")
        await handoffs.conn.execute("UPDATE callbacks SET status = 'calling', attempts = 1 WHERE id = ?", (result.message_id,))
        await console.hub.tick()
        b = Browser(client)
        await b.login("ag1", "agent one pass")
        resp, text = await b.get("/console/agent")
        assert "Rappels en cours (1)" in text and "orig-1" in text and "pas de réponse au clavier" in text
        resp, text = await b.get("/console/calls/orig-1")
        assert resp.status == 200 and "agent_queue" in text
    finally:
        await client.close()
        await stack.aclose()
        await handoffs.stop()
