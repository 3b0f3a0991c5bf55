"""The one adapter between the console and what the controller and the agents' desk hold live.

Everything the console shows about calls in progress, agents, the supervisor queue and the
emergency lines is read here, and every action it takes goes through here, so that when the
call state moves (one durable call object) only this module follows it.

Plain dicts out: the views and the event hub never touch the desk's objects.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from typing import Any

# how long the live audio timeline of a call is kept (readings, newest last)
TIMELINE_SECONDS = 120.0
# ended calls whose timelines stay for the after-call cards
KEEP_ENDED = 200
# how long a raised voice stays an alert (seconds)
RAISED_KEPT = 300.0
ACTIONS = {"escalate", "transfer", "emergency", "close", "flag_aggressive", "flag_churn_red"}


class LiveSource:
    """Reads the controller (calls in the IVR), the desk (calls with a person, agents, queue),
    the emergency bridge (second lines) and the records (the IVR stage of each call)."""

    def __init__(self, *, controller: Any = None, desk: Any = None, emergency: Any = None, records: Any = None,
                 clock=time.time) -> None:
        self.controller = controller
        self.desk = desk
        self.emergency = emergency if emergency is not None else getattr(desk, "emergency", None)
        self.records = records
        self.clock = clock
        self._first_seen: dict[str, float] = {}
        self._agent_since: dict[str, tuple[str, float]] = {}  # extension → (state, since)
        self._calls_taken: dict[str, int] = defaultdict(int)
        self._timelines: dict[str, deque] = {}
        self._appended: dict[str, int] = {}  # call id → readings appended so far (the live stream's increments)
        self._raised: dict[str, float] = {}  # call id → last raised-voice reading (epoch)
        if controller is not None and hasattr(controller, "reading_observers"):
            controller.reading_observers.append(self.on_reading)
        self.on_change: Any = None  # the hub's poke: a new call shows at once, not at the next refresh
        if controller is not None and hasattr(controller, "call_observers"):
            controller.call_observers.append(self._call_in)
        self.spy = Spy(controller, desk)

    def _call_in(self, call_id: str) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- readings (pushed by the controller's media fork) --------------------------------------
    def on_reading(self, call_id: str, reading: Any) -> None:
        line = self._timelines.get(call_id)
        if line is None:
            line = self._timelines[call_id] = deque(maxlen=int(TIMELINE_SECONDS * 4))
        state = getattr(reading.state, "value", reading.state)
        line.append((round(float(reading.at), 2), str(state), round(float(reading.level_dbfs), 1),
                     bool(reading.distress)))
        self._appended[call_id] = self._appended.get(call_id, 0) + 1
        if getattr(reading, "raised_voice", False):
            self._raised[call_id] = self.clock()

    def timeline(self, call_id: str) -> list[tuple]:
        return list(self._timelines.get(call_id, ()))

    def timeline_increments(self, call_ids: list[str], sent: dict[str, int]) -> dict:
        """The readings of `call_ids` not in `sent` yet (call id → count sent, updated here), and the
        calls gone since: what the live stream sends instead of every timeline in full."""
        append: dict[str, list] = {}
        for cid in call_ids:
            total = self._appended.get(cid, 0)
            new = total - sent.get(cid, 0)
            if new > 0:
                line = self._timelines[cid]
                append[cid] = list(itertools.islice(line, max(0, len(line) - new), len(line)))
            sent[cid] = total
        wanted = set(call_ids)
        gone = [cid for cid in sent if cid not in wanted]
        for cid in gone:
            sent.pop(cid)
        return {"append": append, "gone": gone}

    # -- what is going on ------------------------------------------------------------------------
    async def calls(self) -> list[dict]:
        now = self.clock()
        desk_calls = {c["call_id"]: c for c in (self.desk.calls() if self.desk is not None else [])}
        ids = list(getattr(self.controller, "calls", {}) or {})
        for cid in desk_calls:
            if cid not in ids:
                ids.append(cid)
        stages = await self._stages(ids)
        # an agent's phone ringing for a call: their console shows that call's card before they answer
        ringing = {a["call_id"]: a["extension"] for a in (self.desk.pool.snapshot() if self.desk is not None else [])
                   if a["state"] == "ringing" and a.get("call_id")}
        out = []
        for cid in ids:
            first = self._first_seen.setdefault(cid, now)
            session = (getattr(self.controller, "calls", {}) or {}).get(cid)
            number = None
            if session is not None:
                number = session.channel.caller.number
            desk = desk_calls.get(cid)
            stage = stages.get(cid, {})
            callback = self._callback_of(cid, session)
            diagnosis = (desk or {}).get("diagnosis") or {}
            emergency = (desk or {}).get("emergency") or cid in self.emergencies_by_call()
            with_whom = "IVR"
            if desk:
                state = desk["state"]
                if desk.get("agent"):
                    with_whom = f"agent {desk['agent']}"
                if "supervisor" in (desk.get("legs") or {}):
                    with_whom += " + superviseur"
                if state == "holding":
                    with_whom = "en attente (musique)"
            else:
                state = "ivr"
            line = self._timelines.get(cid)
            out.append({
                "call_id": cid, "number": number, "state": state, "with": with_whom,
                "stage": stage.get("kind", "") + (f": {stage['detail']}" if stage.get("detail") else ""),
                "diagnosis": diagnosis.get("summary") or (f"écoute: {line[-1][1]}" if line else ""),
                "answers": diagnosis.get("answers") or {}, "urgent": bool(diagnosis.get("urgent")),
                "agent": (desk or {}).get("agent"), "aggressive": bool((desk or {}).get("aggressive")),
                "churn_red": bool((desk or {}).get("churn_red")), "emergency": bool(emergency),
                # when it started, not how long: a row changes when something happens, not every second
                # (the page counts the seconds); the level is in the timeline stream
                "since": round(min(first, (desk or {}).get("started_at") or first), 1),
                "audio": line[-1][1] if line else None,
                "raised_voice": now - self._raised.get(cid, 0) < 30,
                "ringing": ringing.get(cid), "callback": callback,
            })
        live = set(ids)
        for gone in set(self._first_seen) - live:
            self._first_seen.pop(gone, None)
        self._forget_ended(live)
        return out

    def _forget_ended(self, live: set[str]) -> None:
        """Ended calls' timelines stay for the after-call cards, the most recent KEEP_ENDED only. (They
        were dropped only if more than 200 were held at the moment their call left the view, so most
        were kept for ever: the 60-minute soak's controller grew ~12 KB a call.)"""
        ended = [cid for cid in self._timelines if cid not in live]  # oldest first: insertion order
        for cid in ended[:max(0, len(ended) - KEEP_ENDED)]:
            self._timelines.pop(cid, None)
            self._appended.pop(cid, None)
        now = self.clock()
        for cid in [cid for cid, at in self._raised.items() if now - at >= RAISED_KEPT and cid not in live]:
            self._raised.pop(cid, None)

    def _callback_of(self, call_id: str, session: Any) -> dict | None:
        """A callback leg (callflow/agents/callback_leg.py): whose call it calls back, and whom."""
        from callflow.agents.callback_leg import CallbackOf

        live = (getattr(self.desk, "live", None) or {}).get(call_id)
        args = getattr(getattr(live, "call", None), "args", None) or getattr(session, "args", None)
        of = CallbackOf.from_args(args)
        return None if of is None else {"of": of.original, "target": of.target, "who": of.who}

    async def _stages(self, call_ids: list[str]) -> dict[str, dict]:
        """The last thing the IVR did for each call, from its record (« ACTIONS PRISES »)."""
        conn = getattr(self.records, "conn", None)
        if conn is None or not call_ids:
            return {}
        marks = ",".join("?" * len(call_ids))
        sql = (f"SELECT a.call_id, a.kind, a.detail FROM call_actions a JOIN (SELECT call_id, MAX(seq) AS seq FROM call_actions"
               f" WHERE call_id IN ({marks}) GROUP BY call_id) m ON a.call_id = m.call_id AND a.seq = m.seq")
        async with conn.execute(sql, call_ids) as cur:
            return {r[0]: {"kind": r[1], "detail": r[2]} for r in await cur.fetchall()}

    def agents(self) -> list[dict]:
        if self.desk is None:
            return []
        now = self.clock()
        out = []
        for agent in self.desk.pool.snapshot():
            ext, state = agent["extension"], agent["state"]
            previous = self._agent_since.get(ext)
            if previous is None or previous[0] != state:
                if state == "on_call" and previous is not None:
                    self._calls_taken[ext] += 1
                self._agent_since[ext] = (state, now)
            agent = dict(agent)
            if agent.get("since") is None:  # a desk that does not keep them (the pool keeps them durably)
                agent["since"] = self._agent_since[ext][1]
                agent["calls_taken"] = self._calls_taken[ext]
            agent["in_state"] = round(max(0.0, now - agent["since"]))
            out.append(agent)
        return out

    def queue(self) -> dict:
        if self.desk is None:
            return {"waiting": [], "active": None, "taken": [], "history": []}
        snap = self.desk.queue.snapshot()
        now = self.clock()
        timeout = float(getattr(getattr(self.desk, "escalation_config", None), "supervisor_answer_timeout", 30.0))
        for esc in snap["waiting"] + ([snap["active"]] if snap["active"] else []) + snap.get("taken", []):
            # the seed's 30 s clock: time left before the agent takes the caller back
            esc["remaining"] = max(0, round(timeout - (now - esc["created_at"])))
        return snap

    def emergencies_by_call(self) -> dict[str, dict]:
        return dict(getattr(self.emergency, "active", {}) or {})

    def notifications(self) -> list[dict]:
        return list(getattr(self.desk, "notifications", []) or [])[-100:]

    def raised_voices(self) -> dict[str, float]:
        now = self.clock()
        return {cid: at for cid, at in self._raised.items() if now - at < RAISED_KEPT}

    # -- actions ----------------------------------------------------------------------------------
    def submit(self, call_id: str, action: str, payload: dict | None = None, source: str = "console") -> bool:
        if self.desk is None or action not in ACTIONS:
            return False
        return bool(self.desk.submit(call_id, action, payload or {}, source=source))

    def briefing(self, data: dict, call_id: str):
        from callflow.agents.escalation import Briefing

        live = self.desk.live.get(call_id) if self.desk is not None else None
        hotliner = live.agent.extension if live is not None and live.agent else ""
        return Briefing.from_json(data, hotliner=hotliner)

    def pause(self, extension: str, reason: str) -> bool:
        agent = self.desk.pool.get(extension) if self.desk is not None else None
        if agent is None:
            return False
        self.desk.pool.pause(agent, reason[:100] or "pause")
        return True

    def resume(self, extension: str) -> bool:
        agent = self.desk.pool.get(extension) if self.desk is not None else None
        if agent is None:
            return False
        self.desk.pool.resume(agent)
        return True

    async def take_escalation(self, esc_id: str, endpoint: str) -> dict | None:
        """[Prendre l'appel]: the escalation rings `endpoint` (the supervisor's own phone) now.

        Raises LookupError when that phone is not registered (it could not ring)."""
        if self.desk is None:
            return None
        presence = getattr(self.desk, "presence", None)
        if presence is not None and not await presence.registered(endpoint):
            raise LookupError(f"{endpoint} is not registered: your phone cannot ring")
        return await self.desk.queue.take(esc_id, endpoint)

    async def incident_card(self, call_id: str, card: dict) -> dict:
        """Seed 004 §3.1: the desk writes the card on the call's record (and schedules J+1/J+3 if churn red).

        KeyError: the desk does not know the call; ValueError: a field is not what the card expects."""
        if self.desk is None:
            raise KeyError(call_id)
        return await self.desk.incident_card(call_id, card)

    async def escalation_outcome(self, esc_id: str, outcome: dict) -> dict:
        """Seed 001 phase 6, the supervisor's post-escalation card: on the record, with the §4 emails."""
        if self.desk is None:
            raise KeyError(esc_id)
        return await self.desk.escalation_outcome(esc_id, outcome)

    def supervisor_line(self) -> str:
        return getattr(getattr(self.desk, "escalation_config", None), "endpoint", "")

    def escalation(self, esc_id: str) -> dict | None:
        snap = self.queue()
        for esc in snap["waiting"] + ([snap["active"]] if snap["active"] else []) + snap.get("taken", []) + snap["history"]:
            if esc["id"] == esc_id:
                return esc
        return None

    async def listen(self, call_id: str, mode: str, endpoint: str | None = None) -> dict:
        """Listen / whisper / barge from the supervisor's phone (the escalation line by default)."""
        endpoint = endpoint or getattr(getattr(self.desk, "escalation_config", None), "endpoint", "")
        return await self.spy.start(call_id, mode, endpoint)

    def call_of_agent(self, extension: str) -> str | None:
        for call in (self.desk.calls() if self.desk is not None else []):
            if call.get("agent") == extension and call["state"] != "ended":
                return call["call_id"]
        return None

    def agent_of_call(self, call_id: str) -> str | None:
        live = self.desk.live.get(call_id) if self.desk is not None else None
        return live.agent.extension if live is not None and live.agent else None


SPY_MODES = {
    # mode: (which channel is snooped, what the supervisor hears, who hears the supervisor)
    "listen": ("caller", "both", "none"),  # hears the caller and the agent, nobody hears them
    "whisper": ("agent", "both", "out"),  # hears both, only the agent hears them (coaching)
}


class Spy:
    """Listen / whisper / barge on a live call from the supervisor's own phone (ARI snoop + bridge).

    - listen: a snoop on the caller's channel (spy both ways, no whisper) bridged with the
      supervisor's phone; whisper: a snoop on the agent's leg whose whisper goes to the agent only;
      barge: the supervisor's phone joins the call's own bridge (everyone hears everyone).
    The supervisor's channel is named leg-… and routed as a "leg", so a controller restarted
    meanwhile hangs it up (never sent to the agents' queue); snoops are media channels.
    """

    def __init__(self, controller: Any, desk: Any) -> None:
        self.controller = controller
        self.desk = desk
        self.active: dict[str, dict] = {}

    async def start(self, call_id: str, mode: str, endpoint: str) -> dict:
        import asyncio
        import uuid

        live = self.desk.live.get(call_id) if self.desk is not None else None
        if live is None or self.controller is None:
            raise LookupError("no call with a person under that id")
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError('mode is "listen", "whisper" or "barge"')
        client, router, app = self.controller.client, self.controller.router, self.controller.config.ari.app
        key = f"leg-spy-{uuid.uuid4().hex[:12]}"
        sup_id, snoop_id, bridge_id = key, f"{key}-snoop", f"{key}-bridge"
        target = None
        if mode != "barge":
            side, spy, whisper = SPY_MODES[mode]
            target = live.caller.id if side == "caller" else getattr(live.legs.get("agent"), "id", None)
            if target is None:
                raise LookupError("no agent on that call to whisper to")
        elif not live.bridge_id:
            raise LookupError("the call has no conversation to join yet")
        state = {"id": key, "call_id": call_id, "mode": mode, "endpoint": endpoint, "state": "ringing"}
        answered = asyncio.get_running_loop().create_future()

        async def handle(event) -> None:
            if event.channel_id == sup_id and event.type == "StasisStart" and not answered.done():
                answered.set_result(True)
            elif event.channel_id == sup_id and event.type in ("ChannelDestroyed", "StasisEnd", "ChannelLeftBridge"):
                if not answered.done():
                    answered.set_result(False)
                asyncio.get_running_loop().create_task(self._end(key))

        router.open(key, handle)
        for object_id in (sup_id, snoop_id, bridge_id):
            router.claim(key, object_id)
        self.active[key] = state
        try:
            await client.post("channels", endpoint=endpoint, app=app, appArgs=f"leg,{call_id}", channelId=sup_id,
                              callerId=f'"{mode} {call_id[-8:]}" <console>', timeout=30)
            if not await asyncio.wait_for(answered, 35):
                raise LookupError("the supervisor's phone did not answer")
            if mode == "barge":
                await client.post(f"bridges/{live.bridge_id}/addChannel", channel=sup_id)
            else:
                await client.post(f"channels/{target}/snoop", spy=spy, whisper=whisper, app=app, appArgs="media",
                                  snoopId=snoop_id)
                await client.post(f"bridges/{bridge_id}", type="mixing", name=key)
                await client.post(f"bridges/{bridge_id}/addChannel", channel=f"{sup_id},{snoop_id}")
            state["state"] = "connected"
            return dict(state)
        except BaseException:
            await self._end(key)
            raise

    async def _end(self, key: str) -> None:
        state = self.active.pop(key, None)
        if state is None:
            return
        client = self.controller.client
        for path in (f"channels/{key}", f"channels/{key}-snoop", f"bridges/{key}-bridge"):
            try:
                await client.delete(path)
            except Exception:  # already gone
                pass
        await self.controller.router.close(key)
