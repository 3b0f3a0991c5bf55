"""The AudioSocket media path against a fake Asterisk that speaks the protocol over real TCP.

The fake plays app_audiosocket.c's side (uuid first, slin frames, DTMF frames, the
socket's close when the caller hangs up, the hang-up frame from us ending the app and
the dialplan's Stasis(callflow,back)) and ARI's (the `continue`, GET of the channel).
The thing under test is the adapter: AudioSocketMedia behind the real AriChannel,
feeding the real receiver's classifier.
"""

from __future__ import annotations

import asyncio
import struct
import uuid

import numpy as np
import pytest

from callflow.audio.g711 import ulaw_decode, ulaw_encode
from callflow.audio.receiver import RtpReceiver
from callflow.core.call import Call, CallState
from callflow.core.channel import AudioState, Caller, CallerHungUp, DigitInput
from callflow.core.guard import Guard
from callflow.telephony.ari.channel import AriChannel
from callflow.telephony.ari.client import AriNotFound
from callflow.telephony.ari.events import AriEvent
from callflow.telephony import audiosocket as asock
from callflow.telephony.audiosocket import (
    FRAME_BYTES,
    KIND_AUDIO,
    KIND_DTMF,
    KIND_HANGUP,
    KIND_UUID,
    AudioSocketMedia,
    AudioSocketServer,
    Prompts,
    HEADER,
    encode_frame,
    slin_to_ulaw,
)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """Asterisk's side: one frame, or None once the peer closed."""
    try:
        kind, length = HEADER.unpack(await reader.readexactly(HEADER.size))
        return kind, (await reader.readexactly(length) if length else b"")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None

CHANNEL = "1700000000.42"


def test_slin_back_to_ulaw_gives_the_callers_own_codes():
    codes = bytes(range(256))
    slin = ulaw_decode(codes).astype("<i2").tobytes()  # what Asterisk writes for those μ-law codes
    back = slin_to_ulaw(slin)
    # 0x7F and 0xFF are both zero: either decodes to the same sample
    assert np.array_equal(ulaw_decode(back), ulaw_decode(codes))


async def test_frames_split_anywhere_across_reads_are_parsed_whole():
    got: list[tuple[str, object]] = []
    server = AudioSocketServer()
    conn = asock.AudioSocketConnection(server, lambda: 0.0)
    fut = server.expect(str(uuid.UUID(int=7)))
    conn.on_audio = lambda payload: got.append(("audio", payload))
    conn.on_digit = lambda digit: got.append(("key", digit))
    stream = (encode_frame(KIND_UUID, uuid.UUID(int=7).bytes) + encode_frame(KIND_AUDIO, b"\1\2" * 160)
              + encode_frame(KIND_DTMF, b"5") + encode_frame(KIND_AUDIO, b"\3\4" * 160))
    for i in range(0, len(stream), 7):  # TCP may cut anywhere
        conn.data_received(stream[i:i + 7])
    assert fut.done() and fut.result() is conn and conn.uuid == str(uuid.UUID(int=7))
    assert got == [("audio", b"\1\2" * 160), ("key", "5"), ("audio", b"\3\4" * 160)]


class FakeAsterisk:
    """ARI (the few requests the adapter makes) and the dialplan's AudioSocket() for one caller."""

    app = "callflow"

    def __init__(self) -> None:
        self.channel: AriChannel | None = None
        self.requests: list[tuple[str, str, dict]] = []
        self.variables: dict[str, str] = {}
        self.caller_gone = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.back = asyncio.Event()
        self.frames_to_caller: list[tuple[float, int, bytes]] = []
        self._reading: asyncio.Task | None = None
        self.connect = True
        self.connect_delay = 0.0  # AudioSocket() connecting this long after the caller left Stasis

    async def request(self, method: str, path: str, params: dict | None = None) -> object:
        self.requests.append((method, path, dict(params or {})))
        if self.caller_gone:
            raise AriNotFound(404, method, path, "Channel not found")
        return {}

    async def get(self, path: str, **params: object) -> object:
        return await self.request("GET", path, params)

    async def delete(self, path: str, **params: object) -> object:
        return await self.request("DELETE", path, params)

    async def post(self, path: str, body=None, **params: object) -> object:
        result = await self.request("POST", path, params)
        if path.endswith("/variable"):
            self.variables[str(params["variable"])] = str(params["value"])
        if path.endswith("/continue") and params.get("context") == "callflow-listen" and self.connect:
            asyncio.get_running_loop().create_task(self._audiosocket())
        return result

    async def _audiosocket(self) -> None:
        """AudioSocket(${CALLFLOW_AUDIOSOCKET}): connect, send the uuid, then read what we get."""
        await self.channel.handle(AriEvent.from_dict({"type": "StasisEnd", "channel": {"id": CHANNEL}}))
        await asyncio.sleep(self.connect_delay)
        call_uuid, service = self.variables["CALLFLOW_AUDIOSOCKET"].split(",")
        host, port = service.rsplit(":", 1)
        self.back.clear()
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.writer.write(encode_frame(KIND_UUID, uuid.UUID(call_uuid).bytes))
        self.connected.set()
        self._reading = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await read_frame(self.reader)
            if frame is None or frame[0] == KIND_HANGUP:
                break
            self.frames_to_caller.append((loop.time(), *frame))
        self.writer.close()
        if not self.caller_gone:  # AudioSocket() returned 0: the dialplan goes on to Stasis(callflow,back)
            await self.channel.handle(AriEvent.from_dict({"type": "StasisStart", "args": ["back"],
                                                          "channel": {"id": CHANNEL}}))
            self.back.set()

    def send_audio(self, ulaw: bytes) -> None:
        """The caller's RTP, as Asterisk forwards it: slin frames of 20 ms."""
        for i in range(0, len(ulaw), 160):
            slin = ulaw_decode(ulaw[i:i + 160]).astype("<i2").tobytes()
            self.writer.write(encode_frame(KIND_AUDIO, slin))

    def press(self, digit: str) -> None:
        self.writer.write(encode_frame(KIND_DTMF, digit.encode()))

    async def caller_hangs_up(self) -> None:
        self.caller_gone = True
        self.writer.close()  # app_audiosocket returns, close(s)


@pytest.fixture
async def rig(tmp_path):
    (tmp_path / "fr").mkdir()
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    (tmp_path / "fr" / "greeting.ulaw").write_bytes(ulaw_encode(tone))  # 1 s
    receiver = RtpReceiver()
    await receiver.start("127.0.0.1", 0)
    server = AudioSocketServer("127.0.0.1", 0)
    await server.start()
    ari = FakeAsterisk()
    paths: list[str] = []
    call = ari.call = Call(call_id=CHANNEL, channel_id=CHANNEL)  # the call's one state, read by the guard
    ari.notes = []

    async def _notes(kind: str, detail: str) -> None:
        ari.notes.append((kind, detail))

    def media(chan: AriChannel) -> AudioSocketMedia:
        return AudioSocketMedia(ari, chan, server, receiver, Prompts([tmp_path]), on_taps=chan.push_input,
                                on_reading=chan.on_reading, answered_at=chan.answered_at, on_path=paths.append,
                                guard=lambda: Guard(call, _notes, chan.now))

    channel = AriChannel(ari, CHANNEL, Caller(number="0611223344"), claim=lambda _id: None, media_factory=media,
                         answered=True)
    ari.channel = channel
    yield ari, channel, server, paths
    if channel.media is not None and channel.media.active and not ari.caller_gone:
        await channel.stop_listening()
    await server.stop()
    await receiver.stop()


async def test_listening_opens_the_socket_and_stopping_brings_the_caller_back_to_stasis(rig):
    ari, channel, server, paths = rig
    await channel.start_listening()
    assert ("POST", f"channels/{CHANNEL}/continue", {"context": "callflow-listen", "extension": "s", "priority": 1}) \
        in ari.requests
    assert channel.media.active and not channel.in_stasis and paths == ["audiosocket"]
    await channel.stop_listening()
    assert ari.back.is_set() and channel.in_stasis and not channel.media.active
    assert paths == ["audiosocket", ""]
    # listening again: a new uuid, a new connection
    await channel.start_listening()
    assert channel.media.starts == 2 and channel.media.active


async def test_a_key_on_the_socket_is_an_input_and_stops_the_prompt(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    playing = asyncio.ensure_future(channel.play("greeting"))
    await asyncio.sleep(0.2)
    ari.press("1")
    result = await asyncio.wait_for(playing, 2.0)
    assert not result.completed and result.interrupted_by == DigitInput("1", result.interrupted_by.at)
    assert (await channel.next_input(0.1)).digit == "1"
    # no ARI playback at all: the prompt went out on the socket
    assert not any("/play/" in path for _m, path, _p in ari.requests)


async def test_a_prompt_goes_out_at_twenty_milliseconds_a_frame(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await channel.play("greeting")
    took = loop.time() - started
    assert result.completed
    await asyncio.sleep(0.1)  # the fake's reader takes the last frame
    audio = [f for f in ari.frames_to_caller if f[1] == KIND_AUDIO and any(f[2])]
    assert len(audio) == 50 and all(len(f[2]) == FRAME_BYTES for f in audio)
    assert 0.9 <= took < 2.5, took  # 1 s of prompt, paced (not sent in one burst)
    spread = audio[-1][0] - audio[0][0]
    assert spread >= 0.85, spread


async def test_silence_keeps_the_socket_open_between_prompts(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    await asyncio.sleep(1.3)
    silent = [f for f in ari.frames_to_caller if f[1] == KIND_AUDIO and not any(f[2])]
    assert len(silent) >= 2  # AudioSocket() gives up after 2 s without traffic either way
    assert channel.media.active


async def test_the_callers_audio_reaches_the_classifier_and_no_audio_is_a_dead_line(rig, monkeypatch):
    ari, channel, server, _ = rig
    await channel.start_listening()
    noise = ulaw_encode((np.random.default_rng(3).standard_normal(8000) * 3000).astype(np.int16))
    for _ in range(3):  # 3 s of loud noise, in real time
        ari.send_audio(noise)
        await asyncio.sleep(1.0)
    states = []
    while (reading := await channel.next_reading(0)) is not None:
        states.append(reading.state)
    assert states and AudioState.DEAD_LINE not in states and AudioState.BACKGROUND_NOISE in states
    # the phone now sends nothing at all: after DEAD_AFTER the line reads as dead (no rxcount poll)
    deadline = asyncio.get_running_loop().time() + asock.DEAD_AFTER + 2.0
    dead = False
    while asyncio.get_running_loop().time() < deadline and not dead:
        reading = await channel.next_reading(0.5)
        dead = reading is not None and reading.state is AudioState.DEAD_LINE
    assert dead
    assert not any("rxcount" in str(p) for _m, _path, p in ari.requests)


async def test_the_socket_closing_is_a_hang_up_only_once_ari_says_the_channel_is_gone(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    waiting = asyncio.ensure_future(channel.next_input(5.0))
    await ari.caller_hangs_up()
    with pytest.raises(CallerHungUp):
        await asyncio.wait_for(waiting, 3.0)
    assert ("GET", f"channels/{CHANNEL}", {}) in ari.requests  # confirmed through ARI (bug H)
    assert channel.hung_up


async def test_a_socket_that_ends_by_itself_with_the_caller_there_is_not_a_hang_up(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    conn = next(iter(server.connections))
    ari.writer.close()  # AudioSocket() ended (an error): the dialplan goes on to Stasis(callflow,back)
    await asyncio.wait_for(ari.back.wait(), 3.0)
    await asyncio.wait_for(conn.closed.wait(), 3.0)
    await asyncio.sleep(0.1)
    assert not channel.hung_up and channel.in_stasis and not channel.media.active
    # the next listen opens it again
    await channel.start_listening()
    assert channel.media.active


async def test_an_ari_only_operation_first_brings_the_caller_back_to_stasis(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    await channel.start_moh()
    assert ari.back.is_set() and channel.in_stasis
    assert ari.requests[-1][:2] == ("POST", f"channels/{CHANNEL}/moh")


async def test_a_prompt_with_no_sound_file_here_is_played_by_asterisk_after_leaving_the_socket(rig):
    ari, channel, server, _ = rig
    await channel.start_listening()
    playing = asyncio.ensure_future(channel.play("no_such_prompt"))
    await asyncio.wait_for(ari.back.wait(), 3.0)
    await asyncio.sleep(0.05)
    assert any("/play/" in path for _m, path, _p in ari.requests)
    playing.cancel()


async def test_an_unknown_uuid_is_refused_and_a_connect_that_never_comes_fails_cleanly(rig, monkeypatch):
    ari, channel, server, _ = rig
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(encode_frame(KIND_UUID, uuid.uuid4().bytes))
    assert await asyncio.wait_for(reader.read(), 3.0) == b""  # closed by the server
    assert server.unknown == 1
    monkeypatch.setattr(asock, "CONNECT_TIMEOUT", 0.3)
    monkeypatch.setattr(asock, "BACK_TIMEOUT", 0.3)
    ari.connect = False
    with pytest.raises(RuntimeError, match="AudioSocket"):
        await channel.start_listening()
    assert not channel.media.active


async def test_a_flow_stopped_while_the_caller_goes_to_audiosocket_gets_them_back_to_stasis(rig):
    """SIGTERM's drain cancels a flow just after it sent the caller to [callflow-listen]: the socket that
    opens then is refused and the caller is back in Stasis before the rescue runs (seen in a full run: a drain
    0.1 s into the call ended the flow with the caller out of Stasis, so no rescue could reach them)."""
    ari, channel, server, _ = rig
    ari.connect_delay = 0.3
    starting = asyncio.create_task(channel.start_listening())
    await asyncio.sleep(0.1)
    assert not channel.in_stasis  # on the way to AudioSocket(), the socket not open yet
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert channel.in_stasis and ari.back.is_set()  # the rescue can now hand the caller to a person
    assert server.unknown == 1 and not channel.media.active  # the late socket was refused


@pytest.mark.parametrize("state", ["emergency", "bridged", "leg_ringing", "with_agent"])
async def test_the_guard_keeps_the_caller_in_stasis_where_leaving_it_is_unsafe(rig, state):
    """Issue 11's last gap: the listen context's `continue` goes through the guard, which refuses it during an
    emergency, in a conversation, with a leg ringing for the caller (out of Stasis none of them can reach them)."""
    ari, channel, server, paths = rig
    call = ari.call
    if state == "emergency":
        call.latch_emergency("cas F")
    elif state == "bridged":
        call.set_bridge("callflow-x")
    elif state == "leg_ringing":
        call.set_leg("agent", "leg-1")
    else:
        call.move(CallState.WAITING_AGENT, "queue")
        call.move(CallState.WITH_AGENT, "answered")
    with pytest.raises(asock.ListenRefused):
        await channel.start_listening()
    assert not [r for r in ari.requests if r[1].endswith("/continue")], ari.requests
    assert channel.in_stasis and not channel.media.active and paths == []
    assert [kind for kind, _ in ari.notes] == ["listen_refused"], ari.notes
