"""The fork asks Asterisk for the caller's RTP count (a REST request) only when it hears no real sound.

Real receiver on a real UDP socket; the ARI client is a stand-in that counts the requests
and plays Asterisk's rxcount (the thing under test is when MediaFork asks, not ARI).
"""

import asyncio
import socket

import numpy as np
import pytest

from callflow.audio.g711 import ulaw_encode
from callflow.audio.receiver import RtpReceiver
from callflow.audio.rtp import build_rtp
from callflow.core.channel import AudioState
from callflow.telephony.media import MediaFork

NOISE = ulaw_encode((np.random.default_rng(7).standard_normal(160 * 50) * 8).astype(np.int16))  # ≈ −72 dBFS: read as silence
DIGITAL_SILENCE = bytes([0xFF]) * 160  # what a snoop sends while the caller sends nothing


class CountingAri:
    app = "callflow"

    def __init__(self, *, phone_sends: bool) -> None:
        self.rxcount_requests = 0
        self.rxcount = 100
        self.phone_sends = phone_sends

    async def get(self, path: str, **params: object) -> dict:
        assert params == {"variable": "CHANNEL(rtcp,rxcount)"}
        self.rxcount_requests += 1
        if self.phone_sends:
            self.rxcount += 5
        return {"value": str(self.rxcount)}


@pytest.fixture
async def receiver():
    r = RtpReceiver(tick=0.02)
    await r.start("127.0.0.1", 0)
    yield r
    await r.stop()


@pytest.fixture
def phone():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


async def stream(receiver: RtpReceiver, phone: socket.socket, payload: bytes, frames: int, start: int) -> None:
    for n in range(frames):
        chunk = payload[(n * 160) % len(payload):][:160]
        phone.sendto(build_rtp(chunk, sequence=start + n, timestamp=(start + n) * 160, ssrc=9), receiver.local_address)
        await asyncio.sleep(0.01)


def fork_listening(receiver: RtpReceiver, phone: socket.socket, ari: CountingAri, poll: float = 0.1) -> MediaFork:
    loop = asyncio.get_running_loop()
    fork = MediaFork(ari, "caller-1", receiver, claim=lambda _: None, on_taps=lambda _: None,
                     answered_at=loop.time(), rtp_poll_interval=poll)
    audio_stream = receiver.register("caller-1", source=phone.getsockname())
    fork._audio = audio_stream.audio
    return fork


async def test_line_noise_needs_no_poll_digital_silence_does(receiver, phone):
    ari = CountingAri(phone_sends=True)
    # a 0.4 s interval (the product's is longer): the fork polls when it heard nothing for one interval, and
    # at 0.1 s a loaded machine's pause between two of this test's packets was enough to make it poll
    fork = fork_listening(receiver, phone, ari, poll=0.4)
    poller = asyncio.create_task(fork._poll_caller_rtp())
    try:
        await stream(receiver, phone, NOISE, 15, 0)  # before the first sound: a baseline poll or two
        before = ari.rxcount_requests
        await stream(receiver, phone, NOISE, 120, 15)  # a quiet caller: line noise, read as silence
        assert fork._audio.last_reading is not None and fork._audio.last_reading.state is AudioState.SILENCE
        assert fork._audio.hears_sound(0.4)
        assert ari.rxcount_requests == before  # 1.2 s at a 0.4 s interval: three polls saved
        await stream(receiver, phone, DIGITAL_SILENCE, 150, 135)  # the snoop's filler: proves nothing
        assert not fork._audio.hears_sound(0.1)
        assert ari.rxcount_requests >= before + 2
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)


async def test_no_sound_and_no_rtp_at_asterisk_is_still_a_dead_line(receiver, phone):
    ari = CountingAri(phone_sends=False)  # rxcount never moves: the caller's phone sends nothing
    fork = fork_listening(receiver, phone, ari)
    poller = asyncio.create_task(fork._poll_caller_rtp())
    try:
        await stream(receiver, phone, NOISE, 20, 0)
        for _ in range(200):
            reading = await fork._audio.next_reading(0.5)
            if reading is not None and reading.state is AudioState.DEAD_LINE:
                break
        assert reading is not None and reading.state is AudioState.DEAD_LINE
        assert ari.rxcount_requests >= 3  # a baseline, then two polls that saw nothing new
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
