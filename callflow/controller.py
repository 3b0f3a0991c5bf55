"""The controller: one ARI app, one asyncio task per call.

ARI events → EventRouter (strict order per call) → the call's AriChannel → the
flow's awaits. Whatever happens to a flow — it ends, it crashes, the controller
restarts — a caller still on the line is sent on to the agents, never left in
silence.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from callflow.agents import latch
from callflow.audio.receiver import RtpReceiver
from callflow.config import Config
from callflow.core.channel import Caller, CallContext, CallerHungUp
from callflow.telephony.ari.channel import _CAUSES, AriChannel
from callflow.telephony.ari.client import AriClient, AriError
from callflow.telephony.ari.events import AriEvent, EventRouter
from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)

Flow = Callable[[CallContext], Awaitable[None]]

# channels that belong to our media forks, never callers
_MEDIA_PREFIXES = ("Snoop/", "UnicastRTP/")


class _ReceiverCollector:
    """The RTP receiver's own counters (drops by reason, streams, analysis lag), read at scrape time."""

    def __init__(self, receiver: RtpReceiver):
        self.receiver = receiver

    def collect(self):
        for name, value in self.receiver.stats().items():
            kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            base = name[: -len("_total")] if kind is CounterMetricFamily else name
            yield kind(f"callflow_{base}", f"RTP receiver: {base.replace('_', ' ')}", value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls_in_progress = Gauge("callflow_calls_in_progress", "Calls being handled by a flow", registry=self.registry)
        self.calls_handled = Counter("callflow_calls_handled", "Calls handled since start", registry=self.registry)
        self.ari_reconnects = Counter("callflow_ari_reconnects", "ARI WebSocket reconnects", registry=self.registry)
        self.handler_errors = Counter("callflow_handler_errors", "Flow or event-handler errors (call sent to agents)", registry=self.registry)
        self.ari_connected = Gauge("callflow_ari_connected", "1 while the ARI WebSocket is up and the app registered", registry=self.registry)
        self.sent_to_agents = Counter("callflow_sent_to_agents", "Calls handed to the agents' dialplan", ["reason"], registry=self.registry)


@dataclass
class CallSession:
    """One inbound call and the legs, playbacks and bridges it owns."""

    key: str
    channel: AriChannel
    task: asyncio.Task[None] | None = None
    args: list[str] = field(default_factory=list)

    async def handle(self, event: AriEvent) -> None:
        cid = event.channel_id
        if cid == self.channel.id:
            await self.channel.handle(event)
        elif cid is not None and (cid in self.channel.legs or cid.startswith("leg-")):
            await self.channel.handle_leg(event)
        elif cid is not None and self.channel.media is not None and self.channel.media.owns(cid):
            await self.channel.media.handle(event)
        else:  # playback and bridge events: each leg checks its own ids
            await self.channel.handle(event)
            for leg in list(self.channel.legs.values()):
                await leg.handle(event)


class Controller:
    def __init__(self, config: Config, flow: Flow):
        self.config = config
        self.flow = flow
        self.metrics = Metrics()
        self.client = AriClient(config.ari.url, config.ari.user, config.ari.password, config.ari.app,
                                ping_interval=config.ari.ping_interval)
        self.router = EventRouter(self._on_unrouted, self._on_handler_error)
        self.receiver = RtpReceiver()
        self.metrics.registry.register(_ReceiverCollector(self.receiver))
        self.calls: dict[str, CallSession] = {}
        # (call id, AudioReading) → None, e.g. the console's live timeline; never allowed to break a call
        self.reading_observers: list[Callable[[str, object], None]] = []
        self.app_registered = False
        self._adopted_bridges: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.web_app = web.Application()
        self.web_app.router.add_get("/health", self._health)
        self.web_app.router.add_get("/metrics", self._metrics)

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        await self.start_http()
        await self.receiver.start(self.config.media.rtp_host, self.config.media.rtp_port)
        try:
            await self.client.run_events(self.router.dispatch, self._on_connect, self._on_disconnect)
        finally:
            await self.shutdown()

    async def start_http(self) -> None:
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        log.info("http listening", extra={"url": f"http://{self.config.http.host}:{self.config.http.port}"})

    async def shutdown(self) -> None:
        for session in list(self.calls.values()):
            if session.task:
                session.task.cancel()
        await asyncio.gather(*(s.task for s in self.calls.values() if s.task), return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()
        await self.receiver.stop()
        await self.client.close()

    async def _on_connect(self) -> None:
        if self.client.reconnects:
            self.metrics.ari_reconnects.inc()
        app = await self.client.get(f"applications/{self.config.ari.app}")
        self.app_registered = app.get("name") == self.config.ari.app
        self.metrics.ari_connected.set(1 if self.app_registered else 0)
        await self.reconcile()

    async def _on_disconnect(self) -> None:
        self.app_registered = False
        self.metrics.ari_connected.set(0)
        log.warning("ari disconnected; reconnecting")

    # -- taking calls back after a (re)connect ----------------------------------------------

    async def reconcile(self) -> None:
        """ARI does not replay missed events: look at what is in our app now.

        Calls this process still runs keep running. A caller left by a previous
        controller (crash, restart) is sent to the agents — unless it is in a
        conversation (a bridge with someone else, e.g. an emergency line), which is
        left alone and watched. Orphaned media-fork channels are hung up.
        """
        app_name = self.config.ari.app
        channels = await self.client.get("channels")
        bridges = await self.client.get("bridges")
        existing = {c["id"] for c in channels}
        in_app = {c["id"]: c for c in channels
                  if (c.get("dialplan") or {}).get("app_name") == "Stasis"
                  and (c.get("dialplan") or {}).get("app_data", "").split(",")[0] == app_name}
        for session in list(self.calls.values()):
            if session.channel.id not in existing:
                await session.channel.handle(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": session.channel.id}}))
        ours = {s.channel.id for s in self.calls.values()} | {leg for s in self.calls.values() for leg in s.channel.legs}
        talking: dict[str, str] = {}
        for bridge in bridges:
            members = bridge.get("channels", [])
            if len(members) > 1:
                for member in members:
                    talking[member] = bridge["id"]
        for cid, chan in in_app.items():
            if cid in ours or self.router.owns(cid):
                continue
            name = chan.get("name", "")
            try:
                if name.startswith(_MEDIA_PREFIXES):
                    await self.client.delete(f"channels/{cid}")
                elif cid in talking:
                    await self._adopt_bridge(talking[cid])
                elif cid.startswith("leg-"):
                    await self.client.delete(f"channels/{cid}")  # an agent/supervisor leg whose caller is gone
                else:
                    await self._continue_to_agents(cid, "taken_back_after_restart")
            except AriError as exc:
                log.warning("reconcile: channel already gone", extra={"channel": cid, "error": str(exc)})

    async def _adopt_bridge(self, bridge_id: str) -> None:
        if bridge_id in self._adopted_bridges:
            return
        self._adopted_bridges.add(bridge_id)
        await self.client.post(f"applications/{self.config.ari.app}/subscription", eventSource=f"bridge:{bridge_id}")
        log.info("kept a live conversation across restart", extra={"bridge": bridge_id})

    async def _after_adopted_bridge_change(self, bridge_id: str) -> None:
        try:
            bridge = await self.client.get(f"bridges/{bridge_id}")
        except AriError:
            self._adopted_bridges.discard(bridge_id)
            return
        members = bridge.get("channels", [])
        if len(members) > 1:
            return
        self._adopted_bridges.discard(bridge_id)
        for cid in members:
            if cid.startswith("leg-"):
                await self.client.delete(f"channels/{cid}")
            else:
                await self._continue_to_agents(cid, "conversation_ended_after_restart")
        try:
            await self.client.delete(f"bridges/{bridge_id}")
        except AriError:
            pass

    # -- events no call owns yet ----------------------------------------------------------------

    async def _on_unrouted(self, event: AriEvent) -> None:
        if event.type == "StasisStart" and event.channel is not None:
            route = event.args[0] if event.args else ""
            if route == "inbound":
                await self._new_call(event)
            elif route in ("leg", "media", "callback"):
                # a leg or a media fork whose call is gone (controller restarted meanwhile)
                await self._hang_up_quietly(event.channel.id)
            else:
                log.warning("unknown Stasis route; sending to agents", extra={"route": route})
                await self._continue_to_agents(event.channel.id, "unknown_route")
        elif event.type == "ChannelLeftBridge" and event.bridge_id in self._adopted_bridges:
            await self._after_adopted_bridge_change(event.bridge_id)
        else:
            log.debug("unrouted ari event ignored", extra={"event": event.type})

    async def _new_call(self, event: AriEvent) -> None:
        info = event.channel
        assert info is not None
        caller = Caller(number=info.caller_number, name=info.caller_name, dialed=info.dialed, language=info.language or "fr")
        key = info.id

        def claim(object_id: str) -> None:
            self.router.claim(key, object_id)

        def media_fork(chan: AriChannel) -> MediaFork:
            def on_reading(reading) -> None:
                chan.on_reading(reading)
                self._observe_reading(key, reading)

            return MediaFork(self.client, chan.id, self.receiver, claim=claim, on_taps=chan.push_input,
                             on_reading=on_reading,
                             answered_at=chan.answered_at)

        channel = AriChannel(self.client, info.id, caller, claim=claim, sounds_prefix=self.config.prompts.sounds_prefix,
                             media_factory=media_fork, answered=info.state == "Up")
        session = CallSession(key=key, channel=channel, args=list(event.args[1:]))
        self.calls[key] = session
        self.router.open(key, session.handle)
        self.router.claim(key, info.id)
        log.info("call in", extra={"call": key, "caller": caller.masked})
        session.task = asyncio.get_running_loop().create_task(self._run_call(session), name=f"call:{key}")

    def _observe_reading(self, call_id: str, reading: object) -> None:
        for observe in self.reading_observers:
            try:
                observe(call_id, reading)
            except Exception:
                log.exception("reading observer failed", extra={"call": call_id})

    async def _run_call(self, session: CallSession) -> None:
        self.metrics.calls_in_progress.inc()
        channel = session.channel
        try:
            await self.flow(CallContext(channel=channel, caller=channel.caller, call_id=session.key, args=session.args))
        except CallerHungUp:
            log.info("caller hung up", extra={"call": session.key})
        except asyncio.CancelledError:
            await self._rescue(session, "handler_error")
            raise
        except Exception:
            self.metrics.handler_errors.inc()
            log.exception("flow failed; sending the call to the agents", extra={"call": session.key})
            await self._rescue(session, "handler_error")
        else:
            await self._rescue(session, "flow_ended")
        finally:
            self.metrics.calls_in_progress.dec()
            self.metrics.calls_handled.inc()
            await self.router.close(session.key)
            self.calls.pop(session.key, None)

    async def _rescue(self, session: CallSession, reason: str) -> None:
        """A caller still in our app after the flow must meet a person, not silence."""
        channel = session.channel
        try:
            await channel.stop_listening()
        except Exception:
            log.exception("media fork teardown failed", extra={"call": session.key})
        if channel.hung_up or not channel.in_stasis:
            return
        if latch.is_latched(session.key):
            # an emergency: never hung up, never pulled out of its conversation with the line
            for bridge in await self.client.get("bridges"):
                if channel.id in bridge.get("channels", []) and len(bridge["channels"]) > 1:
                    await self._adopt_bridge(bridge["id"])  # once alone in it, the caller goes to a person
                    return
            await self._continue_to_agents(channel.id, f"{reason}_emergency")  # alone: a person, not silence
            return
        await self._continue_to_agents(channel.id, reason)

    async def _on_handler_error(self, owner: str, exc: BaseException) -> None:
        self.metrics.handler_errors.inc()
        session = self.calls.get(owner)
        if session and session.task and not session.task.done():
            session.task.cancel()  # _run_call's CancelledError path sends it to the agents

    async def _continue_to_agents(self, channel_id: str, reason: str) -> None:
        try:
            await self.client.post(f"channels/{channel_id}/continue", context=self.config.routing.agents_context,
                                   extension="s", priority=1)
            self.metrics.sent_to_agents.labels(reason=reason).inc()
            log.info("call sent to the agents", extra={"channel": channel_id, "reason": reason})
        except AriError as exc:
            log.info("could not send to agents (channel gone?)", extra={"channel": channel_id, "error": str(exc)})

    # -- calls we place for the outbox (callbacks, caregivers, J+1 / J+3) ---------------------

    async def place_callback(self, number: str, call_id: str, target: str) -> str:
        """Ring `number`; once answered, connect it to the agents. Returns the outcome cause.

        The new channel comes into our app (route "callback") so we know when it
        is answered; then it continues to the agents' context like any caller.
        """
        channel_id = f"cb-{uuid.uuid4().hex[:16]}"
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def handle(event: AriEvent) -> None:
            if event.channel_id != channel_id or outcome.done():
                return
            if event.type == "StasisStart":
                if target == "supervisor":  # seed 001: the supervisor calls back when nobody answered
                    await self.client.post(f"channels/{channel_id}/continue", context="hotline-agent-direct",
                                           extension=self.config.escalation.supervisor, priority=1)
                else:
                    await self._continue_to_agents(channel_id, f"callback:{target}")
                outcome.set_result("answered")
            elif event.type == "ChannelDestroyed":
                outcome.set_result(_CAUSES.get(event.cause or 0, "failed"))

        self.router.open(channel_id, handle)
        self.router.claim(channel_id, channel_id)
        try:
            endpoint = self.config.routing.callback_dial.format(number=number)
            await self.client.post("channels", endpoint=endpoint, app=self.config.ari.app, appArgs=f"callback,{call_id}",
                                   channelId=channel_id, callerId=self.config.routing.callback_caller_id,
                                   timeout=int(self.config.callbacks.ring_timeout_seconds))
            return await outcome
        except AriError as exc:
            log.warning("callback could not be placed", extra={"call": call_id, "error": str(exc)})
            return "failed"
        finally:
            await self.router.close(channel_id)

    async def _hang_up_quietly(self, channel_id: str) -> None:
        try:
            await self.client.delete(f"channels/{channel_id}")
        except AriError:
            pass

    # -- HTTP ---------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        ok = self.client.connected.is_set() and self.app_registered
        body = {"status": "ok" if ok else "unavailable", "ari_connected": self.client.connected.is_set(),
                "app_registered": self.app_registered, "calls_in_progress": len(self.calls)}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

