"""A small TCP proxy between the controller and Asterisk's ARI, to cut the link on purpose.

The fault campaign (test_faults.py) points the controller's `ari.url` here. `cut(seconds)`
closes every open connection (the event WebSocket and REST requests alike) and refuses
new ones for `seconds`, as a network cut or a half-dead link would; then it forwards again.
No library does "cut on command" for a plain asyncio test, hence these few lines.
"""

from __future__ import annotations

import asyncio
import time


class AriProxy:
    def __init__(self, upstream_host: str, upstream_port: int = 8088) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts = 0
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._refuse_until = 0.0

    async def start(self) -> "AriProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._open.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def cut(self, seconds: float) -> None:
        """Drop every connection now and refuse new ones for `seconds`."""
        self.cuts += 1
        self._refuse_until = time.monotonic() + seconds
        for writer in list(self._open):
            transport = writer.transport
            if transport is not None:
                transport.abort()  # no FIN handshake: like a cable pulled
        self._open.clear()

    async def close(self) -> None:
        self.cut(0)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
