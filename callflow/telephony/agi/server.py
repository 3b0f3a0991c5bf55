"""The FastAGI server: `AGI(agi://127.0.0.1:4573/silent_call)` runs a flow, unchanged.

Built on panoramisk's `Application` (its route table), with its weak points
closed: routes must be coroutine functions (panoramisk wraps plain functions
with `asyncio.coroutine`, gone since Python 3.11), the headers are read with a
timeout, an end and a size limit (protocol.read_headers), and every command
has a timeout (channel.AgiConnection).

Whatever happens — the flow ends, fails, Asterisk sends garbage, a command
times out — the connection closes and the dialplan's next line sends a caller
still there to the agents (dialplans/agi.conf), exactly like the ARI fail-safe.
The caller's audio uses the ARI controller beside it (snoop + externalMedia):
`callflow run` starts both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from panoramisk.fast_agi import Application

from callflow.core.call import REGISTRY, Call
from callflow.core.channel import Caller, CallerHungUp
from callflow.telephony.agi.channel import AgiChannel, AgiConnection
from callflow.telephony.agi.protocol import MAX_LINE_BYTES, AgiProtocolError, read_headers

if TYPE_CHECKING:
    from callflow.controller import Controller
    from callflow.telephony.ari.events import AriEvent
    from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)

Flow = Callable[[Call], Awaitable[None]]


def caller_from_headers(headers: dict[str, str]) -> Caller:
    number = headers.get("agi_callerid", "")
    name = headers.get("agi_calleridname", "")
    dialed = headers.get("agi_dnid", "") or headers.get("agi_extension", "")
    return Caller(number=None if number in ("", "unknown") else number,
                  name=None if name in ("", "unknown") else name,
                  dialed=None if dialed in ("", "unknown") else dialed,
                  language=headers.get("agi_language") or "fr")


class AgiServer(Application):
    """One asyncio server; one task per FastAGI connection; each route is a flow."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4573, *, controller: "Controller | None" = None,
                 sounds_prefix: str = "callflow", header_timeout: float = 5.0):
        super().__init__(loop=asyncio.get_running_loop())
        self.host = host
        self.port = port
        self.controller = controller
        self.sounds_prefix = sounds_prefix
        self.header_timeout = header_timeout
        self.channels: dict[str, AgiChannel] = {}  # call id → live channel
        self.bad_connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- routes -----------------------------------------------------------------------

    def add_route(self, path: str, endpoint) -> None:
        # panoramisk turns a plain function into a coroutine with asyncio.coroutine, which
        # Python 3.11 removed: the first call would crash. Refuse it here, at start-up.
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"FastAGI route {path!r}: an `async def` function is needed, got {endpoint!r}")
        super().add_route(path, endpoint)

    def add_flow(self, path: str, flow: Flow) -> None:
        """`AGI(agi://host:port/<path>)` runs `flow` for the call."""

        async def route(request: AgiConnection) -> None:
            await self._run_flow(request, flow)

        self.add_route(path, route)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self.handler, self.host, self.port, limit=MAX_LINE_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("fastagi listening", extra={"url": f"agi://{self.host}:{self.port}/"})
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- one connection ------------------------------------------------------------------

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            headers = await read_headers(reader, timeout=self.header_timeout)
        except AgiProtocolError as exc:
            self.bad_connections += 1
            log.warning("fastagi: bad request, connection closed (the dialplan's fail-safe takes the call)",
                        extra={"error": str(exc), "peer": str(writer.get_extra_info("peername"))})
            return
        script = headers.get("agi_network_script", "")
        route = self._route.get(script)
        if route is None:
            log.warning("fastagi: no such route; the dialplan's fail-safe takes the call", extra={"route": script})
            return
        request = AgiConnection(self, headers, reader, writer, encoding=self.default_encoding)
        request.start()
        try:
            await route(request)
        except Exception:  # a route's bug: this call goes to the fail-safe, the server keeps serving
            log.exception("fastagi route failed; the dialplan's fail-safe takes the call", extra={"route": script})
        finally:
            await request.close()

    async def _run_flow(self, request: AgiConnection, flow: Flow) -> None:
        channel = self._channel(request)
        key = channel.id or f"agi-{id(request):x}"
        self.channels[key] = channel
        metrics = self.controller.metrics if self.controller is not None else None
        if self.controller is not None:
            self.controller.router.open(key, lambda event: self._on_ari_event(channel, event))
        if metrics:
            metrics.calls_in_progress.inc()
        log.info("call in", extra={"call": key, "caller": channel.caller.masked, "via": "fastagi"})
        registry = self.controller.registry if self.controller is not None else REGISTRY
        call = registry.open(key, channel_id=channel.id or None, number=channel.caller.number)
        try:
            await channel.read_state()
            call.attach(channel, args=[a for k, a in sorted(request.headers.items()) if k.startswith("agi_arg_")])
            await flow(call)
        except CallerHungUp:
            log.info("caller hung up", extra={"call": key})
        except asyncio.CancelledError:
            log.warning("fastagi call cancelled; the dialplan's fail-safe takes it", extra={"call": key})
            raise
        except Exception:
            if metrics:
                metrics.handler_errors.inc()
            log.exception("flow failed; the dialplan's fail-safe sends the call to the agents", extra={"call": key})
        finally:
            try:
                await asyncio.shield(channel.stop_listening())
            except Exception:
                log.exception("media fork teardown failed", extra={"call": key})
            if channel.in_dialplan and metrics:
                metrics.sent_to_agents.labels(reason="fastagi_flow").inc()
            elif not channel.hung_up:
                log.info("call left to the dialplan's fail-safe (agents)", extra={"call": key})
            if metrics:
                metrics.calls_in_progress.dec()
                metrics.calls_handled.inc()
            self.channels.pop(key, None)
            # the AGI session is over: the dialplan has the caller (or nobody); kept here it stayed for ever
            if channel.hung_up and not call.ended:
                call.end("caller gone")
            registry.forget(key)
            if self.controller is not None:
                if channel.voice_watched and not channel.hung_up:
                    await self._unwatch(channel)
                await self.controller.router.close(key)

    def _channel(self, request: AgiConnection) -> AgiChannel:
        ctl = self.controller
        media_factory = watch_voice = None
        if ctl is not None:
            key = request.headers.get("agi_uniqueid", "")

            def claim(object_id: str) -> None:
                ctl.router.claim(key, object_id)

            def media_factory(chan: AgiChannel) -> "MediaFork":
                from callflow.telephony.media import MediaFork

                return MediaFork(ctl.client, chan.id, ctl.receiver, claim=claim, on_taps=chan.push_input,
                                 on_reading=chan.on_reading, answered_at=chan.answered_at)

            async def watch_voice(chan: AgiChannel) -> None:
                # TALK_DETECT's events for a channel outside Stasis: subscribe our ARI app to it
                claim(chan.id)
                await ctl.client.post(f"applications/{ctl.config.ari.app}/subscription",
                                      eventSource=f"channel:{chan.id}")

        return AgiChannel(request, caller_from_headers(request.headers), sounds_prefix=self.sounds_prefix,
                          media_factory=media_factory, watch_voice=watch_voice)

    async def _unwatch(self, channel: AgiChannel) -> None:
        """The caller goes on in the dialplan: its events are no business of our ARI app any more."""
        ctl = self.controller
        assert ctl is not None
        try:
            await ctl.client.request("DELETE", f"applications/{ctl.config.ari.app}/subscription",
                                     {"eventSource": f"channel:{channel.id}"})
        except Exception as exc:
            log.info("ari unsubscribe failed (channel gone?)", extra={"channel": channel.id, "error": str(exc)})

    async def _on_ari_event(self, channel: AgiChannel, event: "AriEvent") -> None:
        cid = event.channel_id
        if channel.media is not None and cid is not None and channel.media.owns(cid):
            await channel.media.handle(event)
        elif cid == channel.id and event.type == "ChannelTalkingStarted":
            channel.on_talking()
        elif cid == channel.id and event.type == "ChannelDtmfReceived" and event.digit:
            channel.on_ari_digit(event.digit)  # a key AGI may have thrown away between two commands
