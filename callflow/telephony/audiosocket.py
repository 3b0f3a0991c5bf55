"""The AudioSocket media path (issue 15, `media.path = "audiosocket"`).

While a flow listens, the caller is `continue`d into the dialplan context
`[callflow-listen]` (dialplans/hotline.conf), which runs Asterisk's
`AudioSocket()` to this controller and then `Stasis(callflow,back)`. The
caller's own channel thread carries the audio both ways over one TCP
connection: no snoop channel, no timer, no bridge (docs/benchmarks.md measured
it at a fraction of the snoop fork's cost). While it runs, ARI neither plays to
the caller nor reports its keys or hang-up, so this connection carries them all:

- caller → us: kind 0x01 the call's uuid (first frame), 0x10 slin audio (8 kHz,
  16-bit little-endian, 20 ms frames), 0x03 a DTMF key (Asterisk 22.4+);
  the socket's close when the caller hangs up (app_audiosocket.c returns);
- us → caller: 0x10 slin audio (our prompts, paced at 20 ms), 0x00 hang-up
  (which only ends AudioSocket(): the dialplan goes on to Stasis(callflow,back)).

AudioSocket gives up after 2 s without traffic either way (MAX_WAIT_TIMEOUT_MSEC),
so between prompts we send a frame of silence every KEEPALIVE seconds. A dead
line then reads as what it is: no audio frames at all (Asterisk forwards only
the frames the caller's RTP brings; the snoop path's digital-silence filler is
gone, and so is the rxcount polling).

The frame format is four lines of struct; no maintained Python library speaks
it (the PyPI `audiosocket` packages are thin sync wrappers around a thread), so
it is written here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from callflow.audio.classifier import CallAudio
from callflow.audio.g711 import ulaw_decode, ulaw_encode
from callflow.audio.receiver import RtpReceiver
from callflow.core.channel import AudioReading, DigitInput, TapInput
from callflow.core.guard import Guard
from callflow.telephony.ari.client import AriClient, AriError
from callflow.telephony.listening import ListeningWindows


class ListenRefused(RuntimeError):
    """The guard kept the caller in Stasis (an emergency, a conversation…): no AudioSocket listening now."""


if TYPE_CHECKING:
    from callflow.telephony.ari.channel import AriChannel

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10  # slin, 8 kHz mono, 16-bit little-endian
KIND_ERROR = 0xFF
HEADER = struct.Struct("!BH")  # kind, payload length (big-endian)

FRAME_SECONDS = 0.020
FRAME_BYTES = 320  # 20 ms of slin at 8 kHz
SILENCE = bytes(FRAME_BYTES)
#: a frame of silence this often between prompts keeps AudioSocket() from its 2 s timeout
KEEPALIVE = 0.5
#: frames written at once when the loop was late (then the pace goes on from there)
MAX_BURST = 10
#: the caller sent no audio frame for this long: their phone sends nothing (a dead line),
#: as the snoop path's two rxcount polls a second apart said
DEAD_AFTER = 2.0
#: how long Asterisk has to connect after the `continue`, and to bring the caller back to Stasis
CONNECT_TIMEOUT = 5.0
BACK_TIMEOUT = 5.0


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def slin_to_ulaw(payload: bytes) -> bytes:
    """Asterisk's slin back to the caller's μ-law: G.711 decode then encode is exact, so the
    classifier gets the very codes the RTP path would have given it."""
    return ulaw_encode(np.frombuffer(payload[: len(payload) & ~1], dtype="<i2"))


class Prompts:
    """Prompt ids → slin bytes, from the same rendered files Asterisk plays (sounds/<lang>/<id>.ulaw,
    or a recorded .wav override), then the runtime speech folder. Decoded once, kept in memory."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = [Path(f) for f in folders if f]
        self._cache: dict[tuple[str, str], bytes | None] = {}

    def slin(self, prompt: str, language: str) -> bytes | None:
        key = (language, prompt)
        if key not in self._cache:
            self._cache[key] = self._load(prompt, language)
        return self._cache[key]

    def _load(self, prompt: str, language: str) -> bytes | None:
        if "/" in prompt.replace("dyn/", "", 1) or ".." in prompt:
            return None
        for folder in self.folders:
            ulaw = folder / language / f"{prompt}.ulaw"
            if ulaw.is_file():
                return ulaw_decode(ulaw.read_bytes()).astype("<i2").tobytes()
            wav = folder / language / f"{prompt}.wav"
            if wav.is_file():
                with wave.open(str(wav), "rb") as w:
                    if w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2:
                        return w.readframes(w.getnframes())
                    log.warning("prompt %s is not 8 kHz mono 16-bit: played by Asterisk instead", wav)
                    return None
        return None


class AudioSocketConnection(asyncio.Protocol):
    """One caller's AudioSocket connection: parses its frames as they arrive (an asyncio Protocol:
    no coroutine per frame, ~50 frames a second per caller), writes ours at the 20 ms pace."""

    def __init__(self, server: "AudioSocketServer", clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.uuid: str | None = None
        self.on_audio: Callable[[bytes], None] = lambda payload: None
        self.on_digit: Callable[[str], None] = lambda digit: None
        self.on_line: Callable[[bool], None] = lambda sending: None  # the caller's phone sends audio / nothing
        self.closed = asyncio.Event()
        self.closed_by_us = False
        self.opened_at = clock()
        self.last_audio: float | None = None
        self.line_sending: bool | None = None
        self.frames_in = 0
        self._buffer = bytearray()
        self._prompt: memoryview | None = None
        self._prompt_pos = 0
        self._prompt_done: asyncio.Future[bool] | None = None
        self._pace_origin = 0.0
        self._paced = 0
        self._last_write = clock()
        self._identify: asyncio.TimerHandle | None = None

    # -- reading ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 20 ms frames, no Nagle delay
        # the uuid must come first, and soon (Asterisk sends it right after connecting)
        self._identify = asyncio.get_running_loop().call_later(2.0, self._refuse)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos, size = 0, len(buffer)
        while size - pos >= 3:
            kind, length = HEADER.unpack_from(buffer, pos)
            if size - pos - 3 < length:
                break
            payload = bytes(buffer[pos + 3: pos + 3 + length])
            pos += 3 + length
            self._frame(kind, payload)
            if self.transport is not None and self.transport.is_closing():
                break  # refused, or the caller's hang-up frame
        del buffer[:pos]

    def _frame(self, kind: int, payload: bytes) -> None:
        if self.uuid is None:
            if kind == KIND_UUID and len(payload) == 16 and self.server._matched(self, str(uuid.UUID(bytes=payload))):
                if self._identify is not None:
                    self._identify.cancel()
                return
            self._refuse()
            return
        if kind == KIND_AUDIO:
            self.frames_in += 1
            self.last_audio = self.clock()
            if self.line_sending is not True:
                self.line_sending = True
                self.on_line(True)
            self.on_audio(payload)
        elif kind == KIND_DTMF and payload:
            self.on_digit(chr(payload[0]))
        elif kind == KIND_HANGUP:
            self.transport.close()
        elif kind == KIND_ERROR:
            log.warning("audiosocket error frame", extra={"uuid": self.uuid, "code": payload.hex()})
        # anything else (a second uuid, other slin rates) carries nothing for us

    def _refuse(self) -> None:
        if self.uuid is None and self.transport is not None:
            # Not a call we wait for (a restarted controller, a stray connection): closing ends
            # AudioSocket() and the caller comes back to Stasis(callflow,back) or the fail-safe.
            self.server.unknown += 1
            log.warning("audiosocket connection for no waiting call closed")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._identify is not None:
            self._identify.cancel()
        self._finish_prompt(False)
        self.closed.set()
        self.server.connections.discard(self)

    # -- writing (called by the server's pacer every 20 ms) ------------------------------
    @property
    def _writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.closed.is_set()

    def tick(self, now: float) -> None:
        if not self._writable:
            return
        if self._prompt is not None:
            due = min(int((now - self._pace_origin) / FRAME_SECONDS) + 1 - self._paced, MAX_BURST)
            for _ in range(max(due, 0)):
                chunk = self._prompt[self._prompt_pos: self._prompt_pos + FRAME_BYTES]
                if not chunk:
                    self._finish_prompt(True)
                    break
                self._write(KIND_AUDIO, bytes(chunk).ljust(FRAME_BYTES, b"\0"), now)
                self._prompt_pos += FRAME_BYTES
                self._paced += 1
            else:
                if self._prompt is not None and self._prompt_pos >= len(self._prompt):
                    self._finish_prompt(True)
        elif now - self._last_write >= KEEPALIVE:
            self._write(KIND_AUDIO, SILENCE, now)
        if self.line_sending is not False:
            since = self.last_audio if self.last_audio is not None else self.opened_at
            if now - since >= DEAD_AFTER:
                self.line_sending = False
                self.on_line(False)

    def _write(self, kind: int, payload: bytes, now: float) -> None:
        self.transport.write(encode_frame(kind, payload))
        self._last_write = now

    def play(self, slin: bytes) -> asyncio.Future[bool]:
        """Start a prompt (replacing any); the future says True once its last frame is sent,
        False when stopped or when the connection closed."""
        self._finish_prompt(False)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not self._writable:
            fut.set_result(False)
            return fut
        self._prompt = memoryview(slin)
        self._prompt_pos = 0
        self._prompt_done = fut
        self._pace_origin = self.clock()
        self._paced = 0
        self.tick(self._pace_origin)  # the first frame now, not at the next tick
        return fut

    def stop_prompt(self) -> None:
        self._finish_prompt(False)

    @property
    def playing(self) -> bool:
        return self._prompt is not None

    def _finish_prompt(self, completed: bool) -> None:
        fut, self._prompt, self._prompt_done = self._prompt_done, None, None
        if fut is not None and not fut.done():
            fut.set_result(completed)

    async def leave(self) -> None:
        """End AudioSocket() with its hang-up frame (which only ends the app: the dialplan goes on to
        Stasis(callflow,back)) and close."""
        self.closed_by_us = True
        self._finish_prompt(False)
        if self._writable:
            self.transport.write(encode_frame(KIND_HANGUP))
            self.transport.close()  # sends what is buffered first, then FIN
        try:
            await asyncio.wait_for(self.closed.wait(), 2.0)
        except asyncio.TimeoutError:
            if self.transport is not None:
                self.transport.abort()


class AudioSocketServer:
    """The controller's AudioSocket listener: connections are matched to calls by their uuid."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, clock: Callable[[], float] | None = None) -> None:
        self.host = host
        self.port = port
        self._clock = clock
        self._server: asyncio.base_events.Server | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._expected: dict[str, asyncio.Future[AudioSocketConnection]] = {}
        self.connections: set[AudioSocketConnection] = set()
        self.address: tuple[str, int] = (host, port)
        self.unknown = 0  # connections refused: no call waits for their uuid

    def clock(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AudioSocketConnection(self, self.clock), self.host, self.port)
        self.address = self._server.sockets[0].getsockname()[:2]
        self._pacer = loop.create_task(self._pace(), name="audiosocket-pacer")
        log.info("audiosocket listening", extra={"address": f"{self.address[0]}:{self.address[1]}"})
        return self.address

    async def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()  # a closed socket ends AudioSocket(); the dialplan's fail-safe takes over
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def service(self) -> str:
        """host:port as AudioSocket() wants it ([::1]:port for IPv6)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def expect(self, call_uuid: str) -> asyncio.Future[AudioSocketConnection]:
        fut: asyncio.Future[AudioSocketConnection] = asyncio.get_running_loop().create_future()
        self._expected[call_uuid] = fut
        return fut

    def forget(self, call_uuid: str) -> None:
        fut = self._expected.pop(call_uuid, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def _matched(self, conn: AudioSocketConnection, call_uuid: str) -> bool:
        fut = self._expected.pop(call_uuid, None)
        if fut is None or fut.done():
            return False
        conn.uuid = call_uuid
        self.connections.add(conn)
        fut.set_result(conn)
        return True

    async def _pace(self) -> None:
        """One timer for every connection: prompts at 20 ms a frame, keep-alives, dead-line watch."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(next_at - loop.time(), 0.0))
            now = self.clock()
            for conn in list(self.connections):
                try:
                    conn.tick(now)
                except Exception:  # one connection's trouble must not silence the others
                    log.exception("audiosocket tick failed", extra={"uuid": conn.uuid})
            if loop.time() - next_at > 5 * FRAME_SECONDS:
                next_at = loop.time()  # overloaded: go on from now (each prompt keeps its own pace)


class AudioSocketMedia(ListeningWindows):
    """One call's AudioSocket path, behind the same interface as telephony.media.MediaFork.

    It also carries what ARI cannot while the caller is in AudioSocket(): prompts
    (`play`), keys (pushed to the channel's input queue) and hang-up (the socket's close,
    confirmed through ARI before the caller is declared gone: issue 11 H).
    """

    carries_prompts = True

    def __init__(self, client: AriClient, channel: "AriChannel", server: AudioSocketServer, receiver: RtpReceiver,
                 prompts: Prompts, *, on_taps: Callable[[TapInput], None],
                 on_reading: Callable[[AudioReading], None] | None = None, answered_at: float,
                 context: str = "callflow-listen", on_path: Callable[[str], None] | None = None,
                 guard: Callable[[], Guard]) -> None:
        super().__init__(receiver)
        self.client = client
        self._guard = guard  # the call's guard (core/guard.py), built on its current state at each start
        self.channel = channel
        self.server = server
        self.prompts = prompts
        self._on_taps = on_taps
        self._on_reading = on_reading
        self._answered_at = answered_at
        self.context = context
        self._on_path = on_path or (lambda path: None)
        self._lock = asyncio.Lock()
        self._conn: AudioSocketConnection | None = None
        self._watch: asyncio.Task[None] | None = None
        self.starts = 0

    @property
    def active(self) -> bool:
        return self._conn is not None and not self._conn.closed.is_set()

    def owns(self, channel_id: str) -> bool:
        return False  # no channel of its own: the caller's channel carries everything

    async def handle(self, event) -> None:
        return None

    # -- entering and leaving the listen context ----------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            if self.active:
                return
            await self._settle()
            self.starts += 1
            loop = asyncio.get_running_loop()
            call_uuid = str(uuid.uuid4())
            waiting = self.server.expect(call_uuid)
            try:
                # one variable holds both of AudioSocket()'s arguments: "uuid,host:port"
                await self.client.post(f"channels/{self.channel.id}/variable", variable="CALLFLOW_AUDIOSOCKET",
                                       value=f"{call_uuid},{self.server.service}")
                # not a move away from us ([callflow-listen] comes back to Stasis(callflow,back), and if
                # we are gone by then the dialplan's fail-safe sends the caller to the agents), but still
                # the guard's to decide: never during an emergency, a conversation, a ringing leg
                if not await self._guard().listen_out_of_stasis(self.channel, self.context):
                    raise ListenRefused(f"the caller stays in Stasis (call state: {self._guard().call.state.value})")
                conn = await asyncio.wait_for(asyncio.shield(waiting), CONNECT_TIMEOUT)
            except ListenRefused:
                self.server.forget(call_uuid)
                raise
            except (AriError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
                # no socket, or the flow stopped (SIGTERM's drain, a handler error) with the caller on the
                # way to AudioSocket(): the socket it opens is refused (no longer expected), the dialplan
                # brings the caller back to Stasis, and only then can anyone (the rescue) reach them
                self.server.forget(call_uuid)
                if not self.channel.in_stasis:
                    await self._back_in_stasis()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise RuntimeError(f"could not open the caller's AudioSocket: {exc!r}") from exc
            audio = CallAudio(clock=loop.time, answered_at=self._answered_at, on_taps=self._on_taps,
                              on_reading=self._on_reading)
            self.receiver.register(self.channel.id, audio)  # the same analysis ticks as the RTP path
            conn.on_audio = lambda payload: audio.push_payload(slin_to_ulaw(payload))
            conn.on_digit = lambda digit: self.channel.push_input(DigitInput(digit, self.channel.now()))
            conn.on_line = lambda sending: self.receiver.caller_rtp_active(self.channel.id, sending)
            self._conn, self._audio = conn, audio
            self._on_path("audiosocket")
            self._watch = loop.create_task(self._watch_close(conn), name=f"audiosocket:{self.channel.id}")

    async def stop(self) -> None:
        async with self._lock:
            conn = self._conn
            if conn is None:
                return
            if not conn.closed.is_set():
                await conn.leave()
            await self._settle()

    async def _settle(self) -> None:
        """After the socket closed: the caller back in Stasis, or verifiably gone. Bounded."""
        conn = self._conn
        if conn is None:
            return
        if self._watch is not None and self._watch is not asyncio.current_task():
            await asyncio.gather(self._watch, return_exceptions=True)
        self._release()
        if not self.channel.in_stasis and not self.channel.hung_up:
            await self._back_in_stasis()
        self._on_path("")

    def _release(self) -> None:
        self._close_window(self.channel.id)
        self._conn = None
        self._watch = None

    async def _watch_close(self, conn: AudioSocketConnection) -> None:
        await conn.closed.wait()
        self._close_window(self.channel.id)
        if not conn.closed_by_us:
            # The caller hung up, or AudioSocket() ended by itself (an error, its 2 s timeout):
            # which one, ARI says (bug H: a closed socket alone is no proof the caller is gone).
            await self._back_in_stasis()
            if self._conn is conn:
                self._conn = None
                self._watch = None
                self._on_path("")

    async def _back_in_stasis(self) -> None:
        """Wait for the caller's StasisStart (route "back") or for ARI to say the channel is gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BACK_TIMEOUT
        while loop.time() < deadline:
            if self.channel.in_stasis or self.channel.hung_up:
                return
            if await self.channel.wait_in_stasis(0.25):
                return
            if await self.channel.verifiably_gone():
                self.channel.gone_outside_stasis()
                return
        log.warning("caller neither back from AudioSocket nor gone", extra={"channel": self.channel.id})

    # -- prompts ------------------------------------------------------------------------------
    def can_play(self, prompt: str, language: str) -> bool:
        return self.active and self.prompts.slin(prompt, language) is not None

    async def play(self, prompt: str, language: str) -> bool:
        """Play through the socket; True when played to its end."""
        conn = self._conn
        slin = self.prompts.slin(prompt, language)
        if conn is None or slin is None:
            return False
        fut = conn.play(slin)
        try:
            return await fut
        except asyncio.CancelledError:
            conn.stop_prompt()
            raise

    def stop_prompt(self) -> None:
        if self._conn is not None:
            self._conn.stop_prompt()
