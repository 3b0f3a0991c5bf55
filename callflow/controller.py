"""The controller: one ARI app, one asyncio task per call.

ARI events → EventRouter (strict order per call) → the call's AriChannel → the
flow's awaits. Whatever happens to a flow — it ends, it crashes, the controller
restarts — a caller still on the line is sent on to a person, never left in
silence.

Each call's one state (callflow/core/call.py) is written through to the store
and mirrored on the caller's channel (CALLFLOW_STATE, CALLFLOW_EMERGENCY…). After
a restart `reconcile` rebuilds every call from Asterisk and that state: a caller
still in the IVR goes to the agents marked urgent with the diagnosis, an
emergency carries on (a person, the line tried again), a live conversation is
left alone and watched, an answered callback goes to the agents. Every move or
hang-up of a channel goes through the guard (callflow/core/guard.py).
SIGTERM drains: no new calls, callers in the IVR go to people, conversations stay.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from callflow.audio.receiver import RtpReceiver
from callflow.audio.classifier import SECOND_OPINION
from callflow.config import Config
from callflow.core.call import IN_IVR, REGISTRY, Call, CallState
from callflow.core.channel import Caller, CallerHungUp
from callflow.core.guard import Guard, LineGuard
from callflow.telephony.ari.actions import AriLineActions
from callflow.telephony.ari.channel import _CAUSES, AriChannel
from callflow.telephony.ari.client import AriClient, AriError, AriNotFound
from callflow.telephony.ari.events import AriEvent, EventRouter
from callflow.telephony.audiosocket import AudioSocketMedia, AudioSocketServer, Prompts
from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)

#: A call's flow: it gets the call's one state, the caller's live channel on it (`call.channel`, `call.caller`,
#: `call.args`).
Flow = Callable[[Call], Awaitable[None]]
#: Takes back a call found after a restart (its state rebuilt from the store / the channel, a new channel on it).
Resume = Callable[[Call], Awaitable[None]]
#: Closes the record of a call interrupted by a restart ("interrupted").
CloseInterrupted = Callable[[Call, str], Awaitable[None]]
#: Closes the record of a call whose caller hung up while no flow of ours ran it (an adopted conversation).
CloseLeft = Callable[[Call, str], Awaitable[None]]

# channels that belong to our media forks, never callers
_MEDIA_PREFIXES = ("Snoop/", "UnicastRTP/")
# bridges we make: one per call (agents/bridges.py) and one per media fork (telephony/media.py)
_OUR_BRIDGE_PREFIXES = ("callflow-", "fork-")
# events that change who is in a bridge
_BRIDGE_CHANGES = ("ChannelLeftBridge", "ChannelEnteredBridge", "BridgeDestroyed")
# A caller who left an adopted bridge while its channel still answers (the hang-up in progress) is looked at
# again after these many seconds, doubling up to the last: its ChannelDestroyed alone is not relied on
# (seen in the merged suite: kill -9 × with_agent left the agent's leg and the bridge for 30 s).
_ELSEWHERE_RECHECKS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


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


class Controller:
    #: seconds a caller found in the app with no state of ours waits for its own StasisStart before it is
    #: taken back as left by a previous controller (reconcile, `_unseen_new_call`)
    UNSEEN_GRACE = 3.0

    def __init__(self, config: Config, flow: Flow, *, resume: Resume | None = None,
                 close_interrupted: CloseInterrupted | None = None, close_left: CloseLeft | None = None,
                 registry=REGISTRY):
        self.config = config
        self.flow = flow
        self.resume = resume
        self.close_interrupted = close_interrupted
        self.close_left = close_left
        self.registry = registry
        self.draining = False
        self.metrics = Metrics()
        self.client = AriClient(config.ari.url, config.ari.user, config.ari.password, config.ari.app,
                                ping_interval=config.ari.ping_interval)
        self.router = EventRouter(self._on_unrouted, self._on_handler_error)
        self.receiver = RtpReceiver()
        log.info("caller audio: speech second opinion %s", SECOND_OPINION.configure(config.media.speech_second_opinion))
        # media.path = "audiosocket": the listening phases' audio, prompts, keys and hang-up over AudioSocket
        self.audiosocket: AudioSocketServer | None = None
        if config.media.path == "audiosocket":
            self.audiosocket = AudioSocketServer(config.media.audiosocket_host, config.media.audiosocket_port)
            from callflow.prompts import sounds_dir

            self.prompts = Prompts([sounds_dir(), config.agents.runtime_sounds_dir])
        self.metrics.registry.register(_ReceiverCollector(self.receiver))
        self.calls: dict[str, Call] = {}  # the calls a flow of ours runs now (the channel and task on each)
        self.line = LineGuard(AriLineActions(self.client), self._call_for)
        self.registry.add_sink(self._mirror_on_channel)
        self._mirrored: dict[str, dict[str, str]] = {}
        # an answered callback (not the supervisor's) runs this flow (callflow/agents/callback_leg.py);
        # None: it continues in the agents' dialplan context
        self.callback_flow: Flow | None = None
        # (call id, AudioReading) → None, e.g. the console's live timeline; never allowed to break a call
        self.reading_observers: list[Callable[[str, object], None]] = []
        self.call_observers: list[Callable[[str], None]] = []  # told each new call's key (the console's live views)
        self.app_registered = False
        # conversations this process watches but no flow of ours runs (adopted after a restart, or left
        # by a desk that stopped): bridge id → the call it belongs to (None when unknown)
        self._adopted_bridges: dict[str, str | None] = {}
        self._adopted_locks: dict[str, asyncio.Lock] = {}
        self._elsewhere: dict[str, int] = {}  # adopted bridge → re-looks so far at a caller out of it, not gone
        self._looking_later: set[str] = set()  # adopted bridges with such a re-look pending
        # channels Asterisk reported destroyed (ChannelDestroyed), the latest few hundred: proof a caller is gone
        self._destroyed: collections.deque[str] = collections.deque(maxlen=512)
        self._runner: web.AppRunner | None = None
        self.web_app = web.Application()
        self.web_app.router.add_get("/health", self._health)
        self.web_app.router.add_get("/metrics", self._metrics)

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        await self.start_http()
        await self.receiver.start(self.config.media.rtp_host, self.config.media.rtp_port)
        if self.audiosocket is not None:
            await self.audiosocket.start()
        loop = asyncio.get_running_loop()
        events = asyncio.ensure_future(self.client.run_events(self.dispatch, self._on_connect, self._on_disconnect))
        try:
            loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(self.drain_and_stop(events)))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
        try:
            await events
        except asyncio.CancelledError:
            if not self.draining:
                raise
        finally:
            try:
                loop.remove_signal_handler(signal.SIGTERM)
            except (NotImplementedError, RuntimeError):
                pass
            await self.shutdown()

    async def drain_and_stop(self, events: asyncio.Future | None = None) -> None:
        """SIGTERM: take no new call, hand every caller to people, then stop (never worse than a crash)."""
        log.info("draining: no new calls; callers go to people")
        await self.drain()
        if events is not None:
            events.cancel()

    async def drain(self) -> None:
        self.draining = True
        tasks = [call.task for call in self.calls.values() if call.task is not None]
        for task in tasks:
            if not task.done():
                task.cancel()  # _run_call's rescue: the IVR → a person; a conversation stays as it is
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.registry.flush()

    async def start_http(self) -> None:
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        log.info("http listening", extra={"url": f"http://{self.config.http.host}:{self.config.http.port}"})

    async def shutdown(self) -> None:
        if not self.draining:
            await self.drain()
        if self._mirror_on_channel in self.registry.sinks:
            self.registry.sinks.remove(self._mirror_on_channel)
        if self._runner:
            await self._runner.cleanup()
        if self.audiosocket is not None:
            await self.audiosocket.stop()
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

    async def dispatch(self, event: AriEvent) -> None:
        """Every ARI event: to the call that owns it; a change in an adopted bridge is watched as well.

        The watch sees the event even when a call's task owns one of the bridge's channels (a resumed
        emergency claims the caller): whoever owns the events, the bridge is never left unwatched.
        """
        if event.type == "StasisStart" and event.channel is not None and event.args and event.args[0] in ("inbound", "back"):
            asyncio.get_running_loop().create_task(self._taken(event.channel.id), name=f"taken:{event.channel.id}")
        if event.bridge_id in self._adopted_bridges and event.type in _BRIDGE_CHANGES:
            self._recheck_adopted(event.bridge_id)
        elif event.type == "ChannelDestroyed" and event.channel_id and self._adopted_bridges:
            # a caller leaves its bridge a moment before its channel is gone: the leave alone could not
            # yet say "gone" (GET channels/{id} still answered), the channel's end does. Asterisk's own
            # ChannelDestroyed is the proof: GET channels/{id} may still answer for a moment after it
            # (handler_error × emergency_bridged left the agent and the operator once that way)
            self._destroyed.append(event.channel_id)
            for bridge_id, call_id in list(self._adopted_bridges.items()):
                call = self.registry.get(call_id) if call_id else None
                if call is not None and call.channel_id == event.channel_id:
                    self._recheck_adopted(bridge_id)
        await self.router.dispatch(event)

    async def _taken(self, channel_id: str) -> None:
        """The dialplan gave Stasis() a deadline (TIMEOUT(absolute), dialplans/hotline.conf: « an app nobody
        runs »): a caller who reached a running controller is ours, the deadline goes. Not cleared (ARI
        failed), the dialplan sends the caller to the agents when it falls: a person, never a dead end."""
        try:
            await self.client.post(f"channels/{channel_id}/variable", variable="TIMEOUT(absolute)", value="0")
        except AriNotFound:
            pass  # gone already
        except (AriError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("could not clear the dialplan's deadline: the agents take the caller when it falls",
                        extra={"channel": channel_id, "error": str(exc)})

    def _recheck_adopted(self, bridge_id: str) -> None:
        asyncio.get_running_loop().create_task(self._after_adopted_bridge_change(bridge_id), name=f"adopted:{bridge_id}")

    # -- taking calls back after a (re)connect ----------------------------------------------

    async def reconcile(self) -> None:
        """ARI does not replay missed events: look at what is in our app now.

        Calls this process still runs keep running. A call left by a previous
        controller (crash, restart) is rebuilt from its durable state (the store,
        else the channel's CALLFLOW_* variables) and taken back: in a conversation
        (a bridge with someone else) it is left alone and watched; an emergency or
        a caller still in the IVR goes to people (urgent, with the diagnosis); an
        answered callback goes to the agents. Orphaned media-fork channels are hung up.
        A caller out of the app in the AudioSocket listen context (media.path "audiosocket") is
        left there: its socket belonged to the previous process, so AudioSocket() ends and the
        caller comes back through Stasis(callflow,back) (route "back": taken back like the others)
        or, with no controller, the dialplan's fail-safe sends it to the agents.
        """
        app_name = self.config.ari.app
        channels = await self.client.get("channels")
        bridges = await self.client.get("bridges")
        existing = {c["id"] for c in channels}
        in_app = {c["id"]: c for c in channels
                  if (c.get("dialplan") or {}).get("app_name") == "Stasis"
                  and (c.get("dialplan") or {}).get("app_data", "").split(",")[0] == app_name}
        listening = [c["id"] for c in channels if (c.get("dialplan") or {}).get("context") == self.config.media.listen_context
                     and c["id"] not in {c.channel_id for c in self.calls.values()}]
        if listening:
            log.info("reconcile: callers in the listen context come back through Stasis(callflow,back)",
                     extra={"channels": listening})
        for call in list(self.calls.values()):
            channel = call.channel
            if channel is None:
                continue
            if channel.id not in existing:
                await channel.handle(AriEvent.from_dict({"type": "ChannelDestroyed", "channel": {"id": channel.id}}))
            # prompts, recordings and legs that ended or answered while the link was down (ARI does not
            # replay events); an error here is not a reason to give up on the others
            try:
                await channel.catch_up(existing, set(in_app))
            except AriError as exc:
                log.warning("reconcile: could not catch up a call", extra={"call": call.call_id, "error": str(exc)})
        ours = {c.channel_id for c in self.calls.values()} | {leg for c in self.calls.values() if c.channel is not None
                                                               for leg in c.channel.legs}
        talking: dict[str, str] = {}
        alone_in: dict[str, str] = {}  # a caller alone in one of our bridges (its people left while we were away)
        members_of: dict[str, list[str]] = {}
        for bridge in bridges:
            members = bridge.get("channels", [])
            members_of[bridge["id"]] = members
            if len(members) > 1:
                for member in members:
                    talking[member] = bridge["id"]
            elif len(members) == 1 and bridge["id"].startswith(_OUR_BRIDGE_PREFIXES):
                alone_in[members[0]] = bridge["id"]
        legs_later: list[tuple[str, dict]] = []
        for cid, chan in in_app.items():
            if cid in ours or self.router.owns(cid):
                continue
            name = chan.get("name", "")
            try:
                if name.startswith(_MEDIA_PREFIXES):
                    await self.line.hang_up_media(cid)
                elif cid in talking:
                    bridge_call = self._call_of_bridge(talking[cid], members_of.get(talking[cid], []))
                    await self._adopt_bridge(talking[cid], bridge_call.call_id if bridge_call else None)
                    await self._emergency_not_reached(cid, chan, talking[cid], members_of.get(talking[cid], []))
                elif cid.startswith("leg-"):
                    legs_later.append((cid, chan))  # once the callers are known again
                elif cid.startswith("cb-"):
                    await self._continue_to_agents(cid, "callback_answered_during_restart")  # issue 11 G
                else:
                    if cid in alone_in:  # nobody else in its bridge any more: out of it, then to people
                        await self.line.take_out(alone_in[cid], cid, call_id=None, members=[cid])
                        await self.line.destroy_bridge(alone_in.pop(cid), call_id=None, members=[])
                    elif await self._unseen_new_call(cid, chan):
                        continue  # its StasisStart may be waiting on this very connection: looked at again later
                    await self._take_back(cid, chan)
            except AriError as exc:
                log.warning("reconcile: channel already gone", extra={"channel": cid, "error": str(exc)})
        for cid, chan in legs_later:
            try:
                await self._stray_leg(cid, caller_channel=_leg_caller(chan))
            except AriError as exc:
                log.warning("reconcile: leg already gone", extra={"channel": cid, "error": str(exc)})
        # conversations whose caller may have left while we were away: looked at now, not at the next event
        for bridge_id in list(self._adopted_bridges):
            await self._after_adopted_bridge_change(bridge_id)
        await self._clean_stale_bridges()
        await self._close_vanished(existing)

    async def _clean_stale_bridges(self) -> None:
        """Our own bridges (callflow-…, fork-…) that no call uses any more: left by a controller that
        stopped. Only a bridge with no person in it goes (through the guard); media fork channels go with it."""
        channels = {c["id"] for c in await self.client.get("channels")}
        for bridge in await self.client.get("bridges"):
            bridge_id = bridge["id"]
            if (not bridge_id.startswith(_OUR_BRIDGE_PREFIXES) or self.router.owns(bridge_id)
                    or bridge_id in self._adopted_bridges):
                continue
            members = [m for m in bridge.get("channels", []) if m in channels]
            if any(not _is_media(m) for m in members):
                continue  # someone is in it: not stale
            for member in members:
                await self.line.hang_up_media(member)
            await self.line.destroy_bridge(bridge_id, call_id=None, members=[])
            log.info("stale bridge removed", extra={"bridge": bridge_id})

    async def _emergency_not_reached(self, channel_id: str, chan: dict, bridge_id: str, members: list[str]) -> None:
        """An emergency whose line was not yet in the conversation when the controller stopped
        (the agent keyed *9, we died while dialling): the line is dialled again into that conversation."""
        if self.resume is None or not _is_caller(channel_id):
            return
        # the store may not have the latch yet (kill -9 right after the *9, its writer behind under load):
        # the copy on the caller's channel (CALLFLOW_EMERGENCY) then says so (rule 13)
        call = self._call_by_channel(channel_id) or await self._call_from_channel_vars(channel_id)
        if call is None or not call.emergency or call.call_id in self.calls:
            return
        await self._emergency_since_from_channel(call, channel_id)
        if call.legs.get("emergency") in members:
            return  # the line is there
        call.set_leg("emergency", None)
        call.set_bridge(bridge_id)
        await self._adopt_bridge(bridge_id, call.call_id)  # the watch knows whose conversation it is
        self._start_flow(chan, call_id=call.call_id, args=[], run=self.resume)
        log.info("emergency line dialled again into the conversation after restart",
                 extra={"call": call.call_id, "bridge": bridge_id})

    async def _unseen_new_call(self, channel_id: str, chan: dict) -> bool:
        """A caller in the app that no controller ever wrote a state for may be a new call whose StasisStart
        is still unread on the connection this reconcile runs for (the app was registered again before
        reconcile listed the channels): taking it back now would skip its IVR, or hand it to the agents under
        a flow about to start. It is looked at again after `UNSEEN_GRACE` seconds, once that event had its
        turn; still nobody's then, it is taken back like any caller left by a previous controller."""
        route = ((chan.get("dialplan") or {}).get("app_data", "").split(",") + [""])[1]
        if route != "inbound" or self._call_by_channel(channel_id) is not None:
            return False
        if await self._call_from_channel_vars(channel_id) is not None:
            return False
        asyncio.get_running_loop().create_task(self._take_back_if_still_unseen(channel_id),
                                               name=f"unseen:{channel_id}")
        return True

    async def _take_back_if_still_unseen(self, channel_id: str) -> None:
        await asyncio.sleep(self.UNSEEN_GRACE)
        if self.router.owns(channel_id) or any(c.channel_id == channel_id for c in self.calls.values()):
            return  # its StasisStart came: a new call, running its flow
        try:
            chan = await self.client.get(f"channels/{channel_id}")
        except AriError:
            return  # gone (or ARI down: the next reconcile looks again)
        dialplan = chan.get("dialplan") or {}
        if dialplan.get("app_name") != "Stasis" or dialplan.get("app_data", "").split(",")[0] != self.config.ari.app:
            return
        if self.router.owns(channel_id):
            return
        await self._take_back(channel_id, chan)

    async def _take_back(self, channel_id: str, chan: dict) -> None:
        """A caller a previous controller was handling: rebuild its call and hand it to people."""
        call = self._call_by_channel(channel_id) or await self._call_from_channel_vars(channel_id)
        if call is None:
            call = self.registry.adopt(Call(call_id=channel_id, channel_id=channel_id,
                                            number=(chan.get("caller") or {}).get("number") or None))
        await self._emergency_since_from_channel(call, channel_id)
        call.set_bridge(None)  # alone in the app: whatever bridge it had is not a conversation any more
        call.set_media("")  # in the app: no longer on the AudioSocket path, if it was
        if call.state in IN_IVR and not call.emergency:
            call.mark_urgent(f"{call.summary or 'appel muet'}; repris après redémarrage (serveur vocal interrompu)")
        if self.close_interrupted is not None:
            await self.close_interrupted(call, "interrupted")
        if self.resume is None:
            await self._continue_to_agents(channel_id, "taken_back_after_restart")
            return
        self._start_flow(chan, call_id=call.call_id, args=[], run=self.resume)
        log.info("call taken back after restart", extra={"call": call.call_id, "state": call.state.value,
                                                         "emergency": call.emergency})

    async def _call_from_channel_vars(self, channel_id: str) -> Call | None:
        """The copy of the call's state kept on the caller's channel (when the store has none)."""
        values: dict[str, str] = {}
        for name in ("CALLFLOW_CALL", "CALLFLOW_STATE", "CALLFLOW_EMERGENCY", "CALLFLOW_URGENT", "CALLFLOW_ALIVE",
                     "CALLFLOW_EMERGENCY_SINCE"):
            try:
                values[name] = (await self.client.get(f"channels/{channel_id}/variable", variable=name) or {}).get("value", "")
            except AriError:
                values[name] = ""
        if not values.get("CALLFLOW_CALL"):
            return None
        try:
            state = CallState(values.get("CALLFLOW_STATE") or "ivr")
        except ValueError:
            state = CallState.IVR
        call = Call(call_id=values["CALLFLOW_CALL"], channel_id=channel_id, state=state,
                    emergency=values.get("CALLFLOW_EMERGENCY") == "1", urgent=values.get("CALLFLOW_URGENT") == "1",
                    first_sign_of_life=0.0 if values.get("CALLFLOW_ALIVE") == "1" else None,
                    emergency_since=_epoch(values.get("CALLFLOW_EMERGENCY_SINCE")))
        return self.registry.adopt(call)

    async def _emergency_since_from_channel(self, call: Call, channel_id: str) -> None:
        """An emergency rebuilt from the store: when it latched is on the caller's channel only."""
        if not call.emergency or call.emergency_since is not None:
            return
        try:
            value = (await self.client.get(f"channels/{channel_id}/variable", variable="CALLFLOW_EMERGENCY_SINCE") or {})
        except AriError:
            return
        call.emergency_since = _epoch(value.get("value"))

    async def _stray_leg(self, leg_id: str, *, caller_channel: str | None) -> None:
        """A leg we placed whose call this process does not run (answered during a restart).

        An emergency line that answers for a caller still here is bridged with them (issue 11 D);
        any other leg is hung up.
        """
        call = self._call_by_channel(caller_channel) if caller_channel else None
        running = self.calls.get(call.call_id) if call is not None else None
        if call is not None and call.emergency and caller_channel:
            try:
                await self.client.get(f"channels/{caller_channel}")
                caller_here = True
            except AriError:
                caller_here = False
            if caller_here:
                bridge_id = call.bridge_id or f"callflow-{call.call_id}"
                if bridge_id not in {b["id"] for b in await self.client.get("bridges")}:
                    await self.client.post("bridges", type="mixing,dtmf_events", bridgeId=bridge_id, name=bridge_id)
                ids = [leg_id] + ([] if caller_channel in (await self.client.get(f"bridges/{bridge_id}")).get("channels", [])
                                  else [caller_channel])
                if running is not None and running.channel is not None:
                    try:
                        await running.channel.stop_moh()
                    except Exception:
                        pass
                await self.client.post(f"bridges/{bridge_id}/addChannel", channel=",".join(ids))
                call.set_bridge(bridge_id)
                call.set_leg("emergency", leg_id)
                await self._adopt_bridge(bridge_id, call.call_id)
                log.warning("emergency line answered across a restart: bridged with its caller",
                            extra={"call": call.call_id, "bridge": bridge_id})
                return
        await self.line.hang_up_leg(leg_id, call_id=call.call_id if call else None, role="leg",
                                    caller_up=False)

    async def _close_vanished(self, existing: set[str]) -> None:
        """Calls in the durable state whose caller is gone while we were away: records closed, state ended."""
        for call in list(self.registry.calls.values()):
            if call.ended or call.channel_id is None or call.channel_id in existing:
                continue
            if call.call_id in self.calls:
                continue
            if self.close_interrupted is not None:
                await self.close_interrupted(call, "interrupted")
            call.end("caller gone during a restart")
            self.registry.forget(call.call_id)

    def _call_by_channel(self, channel_id: str | None) -> Call | None:
        if not channel_id:
            return None
        for call in self.registry.calls.values():
            if call.channel_id == channel_id and not call.ended:
                return call
        return None

    def _call_for(self, key: str) -> Call | None:
        return self.registry.get(key) or self._call_by_channel(key)

    async def _mirror_on_channel(self, call: Call) -> None:
        """Keep the call's state on the caller's channel as variables (only those that changed)."""
        channel = call.channel if call.call_id in self.calls else None
        if channel is None or channel.hung_up or not channel.in_stasis:
            return  # out of Stasis (AudioSocket) ARI cannot set variables: written once the caller is back
        wanted = call.channel_vars()
        done = self._mirrored.setdefault(call.call_id, {})
        changed = {k: v for k, v in wanted.items() if done.get(k) != v}
        if not changed:
            return
        try:
            await channel.set_vars(changed)
            done.update(changed)
        except (AriError, CallerHungUp):
            pass

    async def _adopt_bridge(self, bridge_id: str, call_id: str | None = None) -> None:
        """Watch a conversation no flow of ours runs (left by a stopped desk, or found after a restart)."""
        if bridge_id in self._adopted_bridges:
            if call_id and not self._adopted_bridges[bridge_id]:
                self._adopted_bridges[bridge_id] = call_id
            return
        self._adopted_bridges[bridge_id] = call_id
        await self.client.post(f"applications/{self.config.ari.app}/subscription", eventSource=f"bridge:{bridge_id}")
        log.info("watching a live conversation", extra={"bridge": bridge_id, "call": call_id})

    async def _after_adopted_bridge_change(self, bridge_id: str) -> None:
        """Someone came or went in an adopted bridge: decided one change at a time per bridge."""
        lock = self._adopted_locks.setdefault(bridge_id, asyncio.Lock())
        async with lock:
            if bridge_id not in self._adopted_bridges:
                return
            try:
                await self._check_adopted(bridge_id)
            except (AriError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                # cannot tell now (ARI down…): nothing is decided; the next event or reconcile looks again
                log.warning("adopted bridge not checked", extra={"bridge": bridge_id, "error": repr(exc)})
        if bridge_id not in self._adopted_bridges:
            self._adopted_locks.pop(bridge_id, None)

    def _call_of_bridge(self, bridge_id: str, members: list[str]) -> Call | None:
        known = self._adopted_bridges.get(bridge_id)
        call = self.registry.get(known) if known else None
        if call is None:
            call = next((c for m in members if (c := self._call_by_channel(m)) is not None), None)
        if call is None:
            call = next((c for c in self.registry.calls.values() if c.bridge_id == bridge_id and not c.ended), None)
        if call is None and bridge_id.startswith("callflow-"):
            call = self.registry.get(bridge_id[len("callflow-"):])
        return call

    async def _check_adopted(self, bridge_id: str) -> None:
        """The rules for a conversation nobody's flow runs any more:

        - the caller still with someone: nothing to do, it goes on;
        - the caller alone in it (the people left): a person takes the caller, urgent, with the diagnosis;
        - the caller verifiably gone (GET channels/{id} → 404; an error is not "gone"): the people and the
          line still in it are released through the guard, the bridge goes and the call's record is closed.
        """
        try:
            members = list((await self.client.get(f"bridges/{bridge_id}")).get("channels", []))
        except AriNotFound:
            members = []
        call = self._call_of_bridge(bridge_id, members)
        caller = call.channel_id if call is not None else next((m for m in members if _is_caller(m)), None)
        people = [m for m in members if m != caller and not _is_media(m)]
        if caller is not None and caller in members:
            self._elsewhere.pop(bridge_id, None)
            if people:
                return  # the conversation goes on
            await self._caller_alone(bridge_id, caller, call, members)
            return
        if caller is not None and not await self._channel_gone(caller):
            if call is not None and call.call_id in self.calls:
                return  # the caller is with a flow of ours again, which owns what happens next
            if bridge_id not in self._elsewhere:
                log.warning("adopted bridge: the caller is elsewhere; the people stay until the caller's end",
                            extra={"bridge": bridge_id, "caller": caller})
            self._look_again_later(bridge_id)
            return
        # the caller is gone: nobody left in this bridge is there for anyone
        del self._adopted_bridges[bridge_id]
        self._elsewhere.pop(bridge_id, None)
        for member in members:
            if _is_media(member):
                await self.line.hang_up_media(member)
            elif member.startswith("cb-"):
                await self._continue_to_agents(member, "conversation_ended_after_restart")
            else:
                role = next((r for r, leg in (call.legs if call else {}).items() if leg == member), "leg")
                await self.line.hang_up_leg(member, call_id=call.call_id if call else None, role=role,
                                            caller_up=False)
        await self.line.destroy_bridge(bridge_id, call_id=call.call_id if call else None, members=[])
        if call is not None and self.close_left is not None:
            # closed only if still open: a flow of ours (the line dialled again) writes no end of its own
            await self.close_left(call, "caller hung up (conversation kept across a controller stop)")
        if call is not None and call.call_id not in self.calls:
            if not call.ended:
                call.end("caller gone (adopted conversation)")  # written through by the registry's writer
            self.registry.forget(call.call_id)  # (kept known until now by `_run_call` for this very check)
        log.info("adopted conversation over: the caller left, the others released",
                 extra={"bridge": bridge_id, "released": people})

    def _look_again_later(self, bridge_id: str) -> None:
        """The caller is out of the bridge but its channel still answers: usually a hang-up in progress,
        whose ChannelDestroyed settles it — unless that event is lost (an ARI reconnect) or never sent to
        us. Looked at again on a backing-off timer, so the people are released even then."""
        if bridge_id in self._looking_later:
            return  # one timer per bridge
        tries = self._elsewhere.get(bridge_id, 0)
        self._elsewhere[bridge_id] = tries + 1
        delay = _ELSEWHERE_RECHECKS[min(tries, len(_ELSEWHERE_RECHECKS) - 1)]
        self._looking_later.add(bridge_id)

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._looking_later.discard(bridge_id)
            await self._after_adopted_bridge_change(bridge_id)

        asyncio.get_running_loop().create_task(later(), name=f"adopted-later:{bridge_id}")

    async def _caller_alone(self, bridge_id: str, caller: str, call: Call | None, members: list[str]) -> None:
        """The people (or the emergency line) left the caller alone: a person takes the caller."""
        if call is not None and call.call_id in self.calls:
            return  # a flow of ours runs this call (e.g. the emergency line dialled again): it decides
        del self._adopted_bridges[bridge_id]
        for member in members:
            if _is_media(member):
                await self.line.hang_up_media(member)
        if caller.startswith("cb-") or call is None or self.resume is None:
            await self.line.take_out(bridge_id, caller, call_id=None, members=members)
            await self._continue_to_agents(caller, "conversation_ended_after_restart")
        else:
            # urgent, with the diagnosis: the desk (or the emergency procedure) takes the caller again
            call.set_leg("emergency", None)
            await self.line.take_out(bridge_id, caller, call_id=call.call_id, members=members)
            chan = await self.client.get(f"channels/{caller}")
            self._start_flow(chan, call_id=call.call_id, args=[], run=self.resume)
        await self.line.destroy_bridge(bridge_id, call_id=None, members=[])

    async def _channel_gone(self, channel_id: str) -> bool:
        """Issue 11 H: gone only when Asterisk says so — its ChannelDestroyed event, or a 404; any other
        error propagates (not gone)."""
        if channel_id in self._destroyed:
            return True
        try:
            await self.client.get(f"channels/{channel_id}")
        except AriNotFound:
            return True
        return False

    # -- events no call owns yet ----------------------------------------------------------------

    async def _on_unrouted(self, event: AriEvent) -> None:
        if event.type == "StasisStart" and event.channel is not None:
            route = event.args[0] if event.args else ""
            if route == "inbound":
                await self._new_call(event)
            elif route == "callback":
                # a callback answered while its waiting task is gone (restart): a person asked to be called
                await self._continue_to_agents(event.channel.id, "callback_answered_after_restart")  # issue 11 G
            elif route == "leg":
                await self._stray_leg(event.channel.id, caller_channel=event.args[1] if len(event.args) > 1 else None)
            elif route == "media":
                await self.line.hang_up_media(event.channel.id)  # a media fork whose call is gone
            elif route == "back":
                # back from the AudioSocket listen context with no call running it here (a restarted
                # controller): rebuilt from its durable state and handed to people like any call left in the IVR
                await self._take_back(event.channel.id, event.raw.get("channel") or {"id": event.channel.id})
            else:
                log.warning("unknown Stasis route; sending to agents", extra={"route": route})
                await self._continue_to_agents(event.channel.id, "unknown_route")
        else:
            log.debug("unrouted ari event ignored", extra={"event": event.type})

    async def _new_call(self, event: AriEvent) -> None:
        info = event.channel
        assert info is not None
        if self.draining:  # SIGTERM: no new call is taken; the dialplan's agents take it
            await self._continue_to_agents(info.id, "draining")
            return
        self._start_flow(event.raw.get("channel") or {"id": info.id}, call_id=info.id, args=list(event.args[1:]),
                           run=self.flow, info=info)

    def _start_flow(self, chan: dict, *, call_id: str, args: list[str], run: Flow, info=None) -> Call:
        """A flow of ours takes the caller of `chan`: a new call, or a call taken back (its Call kept)."""
        if info is None:
            info = AriEvent.from_dict({"type": "StasisStart", "channel": chan}).channel
        caller = Caller(number=info.caller_number, name=info.caller_name, dialed=info.dialed, language=info.language or "fr")
        key = call_id

        def claim(object_id: str) -> None:
            self.router.claim(key, object_id)

        def media_fork(chan: AriChannel) -> MediaFork | AudioSocketMedia:
            def on_reading(reading) -> None:
                chan.on_reading(reading)
                self._observe_reading(key, reading)

            if self.audiosocket is not None:
                def on_path(path: str) -> None:
                    call = self.registry.get(key)
                    if call is not None and not call.ended:
                        call.set_media(path)

                def guard() -> Guard:  # the call's one state as it is now: decides each move to the listen context
                    call = self.registry.get(key) or Call(call_id=key, channel_id=chan.id)
                    return Guard(call, _logged_note(key), chan.now)

                return AudioSocketMedia(self.client, chan, self.audiosocket, self.receiver, self.prompts,
                                        on_taps=chan.push_input, on_reading=on_reading, answered_at=chan.answered_at,
                                        context=self.config.media.listen_context, on_path=on_path, guard=guard)
            return MediaFork(self.client, chan.id, self.receiver, claim=claim, on_taps=chan.push_input,
                             on_reading=on_reading,
                             answered_at=chan.answered_at)

        channel = AriChannel(self.client, info.id, caller, claim=claim, sounds_prefix=self.config.prompts.sounds_prefix,
                             media_factory=media_fork, answered=info.state == "Up")
        call = self.registry.open(key, channel=channel, args=args, channel_id=info.id, number=caller.number)
        self.calls[key] = call
        self.router.open(key, channel.route)  # the call's events, in order, to its channel (legs, fork)
        self.router.claim(key, info.id)
        log.info("call in", extra={"call": key, "caller": caller.masked})
        call.task = asyncio.get_running_loop().create_task(self._run_call(call, channel, run), name=f"call:{key}")
        for observe in self.call_observers:
            try:
                observe(key)
            except Exception:
                log.exception("call observer failed", extra={"call": key})
        return call

    def _observe_reading(self, call_id: str, reading: object) -> None:
        for observe in self.reading_observers:
            try:
                observe(call_id, reading)
            except Exception:
                log.exception("reading observer failed", extra={"call": call_id})

    async def _run_call(self, call: Call, channel: AriChannel, run: Flow) -> None:
        key = call.call_id
        self.metrics.calls_in_progress.inc()
        try:
            await run(call)
        except CallerHungUp:
            log.info("caller hung up", extra={"call": key})
            await self._stop_media(key, channel)
        except asyncio.CancelledError:
            await self._rescue(key, channel, "draining" if self.draining else "handler_error")
            raise
        except Exception:
            self.metrics.handler_errors.inc()
            log.exception("flow failed; sending the call to the agents", extra={"call": key})
            await self._rescue(key, channel, "handler_error")
        else:
            await self._rescue(key, channel, "flow_ended")
        finally:
            self.metrics.calls_in_progress.dec()
            self.metrics.calls_handled.inc()
            await self.router.close(key)
            mine = self.calls.get(key) is call and call.task is asyncio.current_task()
            if mine:
                del self.calls[key]  # (a flow started again for this call since — a take-back — keeps its entry)
            # a conversation of this call the watch left to this flow (`_check_adopted`: "a flow of ours runs
            # this call"): the flow is over, so the watch decides now. The caller's ChannelDestroyed may have
            # come while the flow still ran (the watch then deferred to it) and no later event comes: a resumed
            # emergency whose caller hung up left the agent's leg and the bridge up, the record open
            watched = [b for b, owner in self._adopted_bridges.items() if owner == key] if mine else []
            for bridge_id in watched:
                try:
                    await self._after_adopted_bridge_change(bridge_id)
                except Exception:
                    log.exception("adopted bridge not checked after its flow", extra={"bridge": bridge_id})
            self._mirrored.pop(key, None)
            if call.channel is channel:
                call.detach()  # the flow is over: the Call (which may outlive it) does not keep the channel
            if channel.hung_up:
                # not `await registry.flush()`: the writer's queue keeps the Call until its end is written;
                # waiting here kept the call's task, channel and media fork alive as long as the writer lagged
                # (~10 ended calls at a time at 30 concurrent on a quiet machine, ~60 under load: the soak's leak)
                if not call.ended:
                    call.end("caller gone")
                if not any(owner == key for owner in self._adopted_bridges.values()):
                    # still watched (the caller's end not yet verified: looked at again later): the watch needs
                    # the call (whose record to close) and forgets it once the conversation is over
                    self.registry.forget(key)
            elif not channel.in_stasis and not call.emergency and call.media != "audiosocket":
                # the dialplan has the caller now (the agents' queue): not a call of this process any more, and
                # kept here it stayed for ever (no event about it reaches us). Its durable state stays: a
                # restart's reconcile closes it once the caller is gone. An emergency stays known to us.
                self.registry.forget(key)

    async def _stop_media(self, key: str, channel: AriChannel) -> None:
        """The flow is over: nobody listens to this caller any more. A fork left running (a caller who hung
        up while a flow listened: no rescue ran) kept its poller asking Asterisk about the dead channel every
        second, its audio in the receiver (analysed every tick) and, through their callbacks, the channel:
        the soak's hung-up channels alive after gc."""
        try:
            await channel.stop_listening()
        except Exception:
            log.exception("media fork teardown failed", extra={"call": key})

    async def _rescue(self, key: str, channel: AriChannel, reason: str) -> None:
        """A caller still in our app after the flow must meet a person, not silence."""
        await self._stop_media(key, channel)
        if channel.hung_up or not channel.in_stasis:
            return
        # in a conversation (an agent, the emergency line): never pulled out of it; watched
        for bridge in await self.client.get("bridges"):
            if channel.id in bridge.get("channels", []) and len(bridge["channels"]) > 1:
                await self._adopt_bridge(bridge["id"], key)  # watched: alone → a person; gone → released
                return
        call = self.registry.get(key)
        emergency = call is not None and call.emergency
        if await self._continue_to_agents(channel.id, f"{reason}_emergency" if emergency else reason):  # a person
            channel.left_stasis()

    async def _on_handler_error(self, owner: str, exc: BaseException) -> None:
        self.metrics.handler_errors.inc()
        call = self.calls.get(owner)
        if call is not None and call.task is not None and not call.task.done():
            call.task.cancel()  # _run_call's CancelledError path sends it to the agents

    async def _continue_to_agents(self, channel_id: str, reason: str) -> bool:
        """True once the caller is in the agents' dialplan (out of our app)."""
        try:
            if not await self.line.move(channel_id, self.config.routing.agents_context):
                return False
            self.metrics.sent_to_agents.labels(reason=reason).inc()
            log.info("call sent to the agents", extra={"channel": channel_id, "reason": reason})
            return True
        except AriError as exc:
            log.info("could not send to agents (channel gone?)", extra={"channel": channel_id, "error": str(exc)})
            return False

    # -- calls we place for the outbox (callbacks, caregivers, J+1 / J+3) ---------------------

    async def place_callback(self, number: str, call_id: str, target: str) -> str:
        """Ring `number`; once answered, connect it to the agents. Returns the outcome cause.

        The new channel comes into our app (route "callback") so we know when it
        is answered; then it continues to the agents' context like any caller.
        """
        channel_id = f"cb-{uuid.uuid4().hex[:16]}"
        placing = f"placing:{channel_id}"  # the answered leg becomes a call of its own (key channel_id)
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def handle(event: AriEvent) -> None:
            if event.channel_id != channel_id or outcome.done():
                return
            if event.type == "StasisStart":
                if target == "supervisor":  # seed 001: the supervisor calls back when nobody answered
                    await self.line.move(channel_id, "hotline-agent-direct", extension=self.config.escalation.supervisor)
                elif self.callback_flow is not None and not self.draining:
                    # through the agents' desk: the agent's console shows the original call while it rings
                    from callflow.agents.callback_leg import args_for

                    self._start_flow(event.raw.get("channel") or {"id": channel_id}, call_id=channel_id,
                                       args=args_for(call_id, target, number), run=self.callback_flow)
                else:
                    await self._continue_to_agents(channel_id, f"callback:{target}")
                outcome.set_result("answered")
            elif event.type == "ChannelDestroyed":
                outcome.set_result(_CAUSES.get(event.cause or 0, "failed"))

        self.router.open(placing, handle)
        self.router.claim(placing, channel_id)
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
            await self.router.close(placing)

    # -- HTTP ---------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        ok = self.client.connected.is_set() and self.app_registered
        body = {"status": "ok" if ok else "unavailable", "ari_connected": self.client.connected.is_set(),
                "app_registered": self.app_registered, "calls_in_progress": len(self.calls)}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _logged_note(call_id: str):
    """The guard's notes where no recorder is at hand (the controller): the log."""
    async def note(kind: str, detail: str) -> None:
        log.warning("guard: %s", kind, extra={"call": call_id, "detail": detail})
    return note


def _is_media(channel_id: str) -> bool:
    """A media fork's snoop / externalMedia channel (telephony/media.py names them), never a person."""
    return channel_id.startswith(("snoop-", "media-"))


def _is_caller(channel_id: str) -> bool:
    """A caller's channel: Asterisk's own id (legs, callbacks and media forks get ours)."""
    return not channel_id.startswith(("leg-", "cb-", "snoop-", "media-"))


def _leg_caller(chan: dict) -> str | None:
    """The caller's channel id a leg was placed for (appArgs "leg,<caller channel>")."""
    data = (chan.get("dialplan") or {}).get("app_data", "")
    parts = data.split(",")
    return parts[2] if len(parts) > 2 and parts[1] == "leg" else None


def _epoch(value: str | None) -> float | None:
    """A channel variable holding epoch seconds ("" or garbage: unknown)."""
    try:
        return float(value) if value else None
    except ValueError:
        return None
