"""A small ARI client on aiohttp: REST calls and the events WebSocket.

Hand-written on purpose: ari-py (the reference client) does not import on
Python 3, aioari is unmaintained since 2020 and asyncari drags anyio in. What
we need is small — authenticated REST, one WebSocket with our own ping, and a
reconnect loop — and we want full control of the reconnect and keep-alive
behaviour because caller safety depends on it.
"""

from __future__ import annotations

import asyncio
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
        self._auth = aiohttp.BasicAuth(user, password)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def __aenter__(self) -> "AriClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(auth=self._auth, timeout=self._timeout)
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
            wait=wait_exponential_jitter(initial=0.2, max=5.0, jitter=0.2),
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

    async def _one_connection(self, on_event: Callable[[AriEvent], Awaitable[None]],
                              on_connect: Callable[[], Awaitable[None]]) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/events"
        # heartbeat: our own ping every ping_interval; no pong within half of it closes the
        # socket, so a half-dead connection is noticed in seconds, not after TCP's ~40 s.
        async with self.session.ws_connect(ws_url, params={"app": self.app, "subscribeAll": "false"},
                                           heartbeat=self.ping_interval, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:
            self.connected.set()
            log.info("ari connected", extra={"app": self.app})
            await on_connect()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = AriEvent.from_json(msg.data)
                    except ValueError:
                        log.warning("ari: unreadable event dropped", extra={"size": len(msg.data)})
                        continue
                    await on_event(event)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break


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
