"""A small ARI client on aiohttp: REST calls and the events WebSocket.

Hand-written on purpose: ari-py (the reference client) does not import on
Python 3, aioari is unmaintained since 2020 and asyncari drags anyio in. What
we need is small — authenticated REST, one WebSocket with our own ping, a
gapless handover to a new socket when the link stalls, and a reconnect loop —
and we want full control of the reconnect and keep-alive behaviour because
caller safety depends on it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential_jitter

from callflow.telephony.ari.events import AriEvent

log = logging.getLogger(__name__)


class AriError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, message: str):
        self.status = status
        super().__init__(f"ARI {method} {path} → {status}: {message}")


class AriNotFound(AriError):
    """The channel / bridge / playback is gone (usually: the caller hung up)."""


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str, *, ping_interval: float = 5.0,
                 request_timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.ping_interval = ping_interval
        # The header itself (RFC 7617): aiohttp 3.14 deprecates BasicAuth and the session's auth=.
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._closing: set[asyncio.Future] = set()
        self.handovers = 0  # sockets replaced by a new one while the app stayed registered (_one_connection)
        #: seconds a stalled socket may still deliver what it holds once its successor registered the app
        #: (the new socket's events wait meanwhile: a really dead path costs this much more than a reconnect)
        self.drain_timeout = max(ping_interval, 2.0)

    async def __aenter__(self) -> "AriClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- REST ------------------------------------------------------------------

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, url, params=clean, json=body) as resp:
            text = await resp.text()
            if resp.status == 404:
                raise AriNotFound(resp.status, method, path, _message(text))
            if resp.status >= 400:
                raise AriError(resp.status, method, path, _message(text))
            if not text:
                return None
            return json.loads(text)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params)

    async def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        return await self.request("POST", path, params, body)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, params)

    # -- events ------------------------------------------------------------------

    async def run_events(self, on_event: Callable[[AriEvent], Awaitable[None]],
                         on_connect: Callable[[], Awaitable[None]],
                         on_disconnect: Callable[[], Awaitable[None]] | None = None) -> None:
        """Receive events forever: reconnect with backoff, call on_connect after each (re)connect."""
        first = True
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((aiohttp.ClientError, OSError, asyncio.TimeoutError, ConnectionError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            stop=stop_never,
            reraise=True,
        ):
            with attempt:
                if not first:
                    self.reconnects += 1
                first = False
                try:
                    await self._one_connection(on_event, on_connect)
                finally:
                    if self.connected.is_set():
                        self.connected.clear()
                        if on_disconnect is not None:
                            await on_disconnect()
                raise ConnectionError("ARI WebSocket closed")  # a clean close is retried too

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        ws_url = self.base_url.replace("http", "ws", 1) + "/events"
        # autoping off: the pongs are read here, as the proof the link carries our data (see _watch)
        return await self.session.ws_connect(ws_url, params={"app": self.app, "subscribeAll": "false"},
                                             autoping=False, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))

    async def _one_connection(self, on_event: Callable[[AriEvent], Awaitable[None]],
                              on_connect: Callable[[], Awaitable[None]]) -> None:
        """One registration of the app, handed over from socket to socket without a gap while Asterisk answers.

        ARI does not replay events: a key pressed while the app has no socket is lost. So a link that
        looks stalled (no pong in time: a loaded machine, or a dead path) is not closed first: a new
        socket registers the app *before* the old one goes. Asterisk then sends the old socket
        `ApplicationReplaced` after its last event and every later event to the new one (measured on
        Asterisk 22: the old socket's close does not unregister the app). The old socket is read to that
        marker, then the new one: nothing lost, nothing reordered, no reconcile needed. Only when the
        marker never comes (the old path really dead) may events have been lost: reconcile then, as after
        any reconnect. When no new socket can be opened the link is down: closed, and run_events retries.
        """
        ws = await self._open()
        try:
            self.connected.set()
            log.info("ari connected", extra={"app": self.app})
            await on_connect()
            while True:
                successor, gapless = await self._read(ws, on_event)
                if successor is None:
                    return
                # closed aside: its close handshake (up to ws_close s on a stalled path) must not hold the new events
                closing = asyncio.ensure_future(ws.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
                ws = successor
                self.handovers += 1
                if gapless:
                    log.info("ari link handed over to a new socket without a gap", extra={"app": self.app})
                else:
                    log.warning("ari link handed over; the old socket went silent: reconciling", extra={"app": self.app})
                    await on_connect()
        finally:
            await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, on_event: Callable[[AriEvent], Awaitable[None]]
                    ) -> tuple[aiohttp.ClientWebSocketResponse | None, bool]:
        """Events from `ws` until it ends; returns (its successor or None, whether the handover lost nothing)."""
        link = _Link()
        watcher = asyncio.ensure_future(self._watch(ws, link))
        try:
            while True:
                msg = await ws.receive()
                link.heard = asyncio.get_running_loop().time()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = AriEvent.from_json(msg.data)
                    except ValueError:
                        log.warning("ari: unreadable event dropped", extra={"size": len(msg.data)})
                        continue
                    if event.type == "ApplicationReplaced" and link.pending is not None:
                        # our own new socket took over: this one has said all. Asterisk sends the marker as it
                        # registers the new socket, which can be before `_open()` has handed it to us
                        successor = await link.pending
                        if successor is not None:
                            return successor, True
                    await on_event(event)
                elif msg.type == aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == aiohttp.WSMsgType.PONG:
                    continue
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED):
                    return link.successor, False
        except BaseException:
            if link.successor is not None:  # opened for a handover that will not happen now
                await link.successor.close()
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse, link: "_Link") -> None:
        """Our own heartbeat: a ping every ping_interval; nothing heard within half of it → a new socket
        takes over (`_one_connection`); the old one gets `drain_timeout` to deliver what it still holds."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.ping_interval)
            sent = loop.time()
            try:
                await ws.ping()
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return  # closing: the reader sees it
            await asyncio.sleep(self.ping_interval / 2)
            if link.heard >= sent:
                continue
            log.warning("ari link silent past the pong deadline: opening a new socket before closing this one",
                        extra={"app": self.app})
            link.pending = loop.create_future()
            try:
                link.successor = await self._open()
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                link.pending.set_result(None)
                await ws.close()  # Asterisk unreachable: the link is down; run_events reconnects
                return
            link.pending.set_result(link.successor)
            await asyncio.sleep(self.drain_timeout)
            await ws.close()  # the marker never came: the reader stops here (not gapless)
            return


class _Link:
    """What the reader and the heartbeat of one socket share."""

    def __init__(self) -> None:
        self.heard = asyncio.get_running_loop().time()
        self.successor: aiohttp.ClientWebSocketResponse | None = None
        # set when a handover starts; resolves to the new socket (None when it could not be opened)
        self.pending: asyncio.Future[aiohttp.ClientWebSocketResponse | None] | None = None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _message(text: str) -> str:
    try:
        return json.loads(text).get("message", text)
    except (ValueError, AttributeError):
        return text[:200]
