"""The shared RTP receiver on a real UDP socket (127.0.0.1), hostile input included."""

import asyncio
import os
import random
import socket
import struct

import numpy as np
import pytest

from callflow.audio.classifier import CallAudio
from callflow.audio.g711 import ulaw_encode
from callflow.audio.receiver import RtpReceiver
from callflow.audio.rtp import PT_CN, PT_PCMA, build_rtp
from callflow.core.channel import AudioState

FRAME = ulaw_encode((np.random.default_rng(1).standard_normal(160) * 300).astype(np.int16))


@pytest.fixture
async def receiver():
    r = RtpReceiver(tick=0.05)
    await r.start("127.0.0.1", 0)
    yield r
    await r.stop()


@pytest.fixture
def sender():
    socks = []

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        return s

    yield make
    for s in socks:
        s.close()


async def settle(receiver: RtpReceiver, packets: int) -> None:
    """Wait until the receiver has seen `packets` datagrams (no wall-clock assertion)."""
    for _ in range(1000):  # generous: a loaded CI machine must not fail this
        if receiver.counters["packets"] >= packets:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {receiver.counters['packets']} of {packets} datagrams arrived")


async def test_audio_from_the_registered_source_reaches_the_call(receiver, sender):
    s = sender()
    stream = receiver.register("call-1", source=s.getsockname())
    for seq in range(10):
        s.sendto(build_rtp(FRAME, sequence=seq, timestamp=seq * 160, ssrc=42), receiver.local_address)
    await settle(receiver, 10)
    assert stream.accepted == 10
    assert stream.audio.pending_bytes() == 1600 and stream.accepted == 10


async def test_other_sources_are_dropped_and_counted(receiver, sender):
    good, intruder = sender(), sender()
    stream = receiver.register("call-1", source=good.getsockname())
    intruder.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    await settle(receiver, 1)
    assert receiver.counters["unknown_source"] == 1
    assert stream.accepted == 0


async def test_register_before_the_source_is_known_then_set_it(receiver, sender):
    s = sender()
    stream = receiver.register("call-1")
    s.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    await settle(receiver, 1)
    assert stream.accepted == 0  # strict: nothing is learnt from a first packet
    receiver.set_source("call-1", *s.getsockname())
    s.sendto(build_rtp(FRAME, sequence=2, timestamp=2, ssrc=1), receiver.local_address)
    await settle(receiver, 2)
    assert stream.accepted == 1


async def test_source_can_move_and_the_old_one_is_forgotten(receiver, sender):
    a, b = sender(), sender()
    stream = receiver.register("call-1", source=a.getsockname())
    receiver.set_source("call-1", *b.getsockname())
    a.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    b.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    await settle(receiver, 2)
    assert stream.accepted == 1 and receiver.counters["unknown_source"] == 1


async def test_awkward_but_valid_streams(receiver, sender):
    s = sender()
    events = []
    stream = receiver.register("call-1", source=s.getsockname())
    stream.on_telephone_event = events.append
    to = receiver.local_address
    packets = [
        build_rtp(FRAME, sequence=65535, timestamp=0, ssrc=7),
        build_rtp(FRAME, sequence=0, timestamp=160, ssrc=7),  # wrap-around
        build_rtp(FRAME, sequence=0, timestamp=160, ssrc=7),  # duplicate
        build_rtp(FRAME, sequence=65535, timestamp=0, ssrc=7),  # late
        build_rtp(struct.pack("!BBH", 1, 0x0A, 160), sequence=1, timestamp=320, ssrc=7, payload_type=101),  # DTMF
        build_rtp(b"\x40", sequence=2, timestamp=480, ssrc=7, payload_type=PT_CN),  # comfort noise
        build_rtp(FRAME, sequence=3, timestamp=640, ssrc=7, payload_type=PT_PCMA, csrcs=(1,), extension=bytes(4), padding=2),
        build_rtp(FRAME, sequence=900, timestamp=0, ssrc=8),  # SSRC change
        build_rtp(FRAME, sequence=901, timestamp=160, ssrc=8, payload_type=96),  # unexpected payload type
    ]
    for p in packets:
        s.sendto(p, to)
    await settle(receiver, len(packets))
    c = stream.counters
    assert (stream.accepted, c["duplicate"], c["late"], c["telephone_event"], c["ssrc_change"], c["bad_payload_type"]) == (
        5, 1, 1, 1, 1, 1,
    )
    assert len(events) == 1
    assert stream.audio.pending_bytes() == 160 * 4  # DTMF/CN are not audio


async def test_hostile_datagrams_never_crash_it(receiver, sender):
    s = sender()
    stream = receiver.register("call-1", source=s.getsockname())
    rng = random.Random(1234)
    garbage = [b"", b"\x80", os.urandom(11), bytes([0x8F]) + os.urandom(5), bytes([0xBF]) + os.urandom(30)]
    garbage += [bytes([rng.randrange(256)]) + os.urandom(rng.randrange(0, 400)) for _ in range(300)]
    garbage += [bytes([0x80, 0]) + os.urandom(1450)]  # big but legal-size junk audio
    garbage += [bytes([0x80, 0]) + os.urandom(9000)]  # bigger than we accept
    for i, g in enumerate(garbage, 1):
        s.sendto(g, receiver.local_address)
        if i % 50 == 0:  # let the socket buffer drain: we test parsing, not kernel drops
            await settle(receiver, i)
    await settle(receiver, len(garbage))
    receiver.analyse()  # the analysis of whatever junk got through must not raise either
    # Still alive and still serving the call:
    s.sendto(build_rtp(FRAME, sequence=rng.randrange(65536), timestamp=0, ssrc=0xABCDEF), receiver.local_address)
    await settle(receiver, len(garbage) + 1)
    assert receiver.counters["packets"] == len(garbage) + 1
    assert receiver.counters["oversize"] >= 1
    assert receiver._task is not None and not receiver._task.done()
    assert stream.accepted >= 1


async def test_readings_flow_and_caller_hint_makes_a_dead_line(receiver, sender):
    s = sender()
    stream = receiver.register("call-1", source=s.getsockname())
    noise = (np.random.default_rng(3).standard_normal(160 * 20) * 2000).astype(np.int16)
    payload = ulaw_encode(noise)
    for seq in range(20):
        s.sendto(build_rtp(payload[seq * 160 : (seq + 1) * 160], sequence=seq, timestamp=seq * 160, ssrc=5), receiver.local_address)
    await settle(receiver, 20)
    reading = await stream.audio.next_reading(timeout=2.0)
    assert reading is not None and reading.state is not AudioState.DEAD_LINE
    receiver.caller_rtp_active("call-1", False)
    for _ in range(10):
        reading = await stream.audio.next_reading(timeout=2.0)
        if reading.state is AudioState.DEAD_LINE:
            break
    assert reading.state is AudioState.DEAD_LINE


async def test_unregister_stops_delivery(receiver, sender):
    s = sender()
    receiver.register("call-1", source=s.getsockname())
    assert receiver.unregister("call-1") is not None
    s.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    await settle(receiver, 1)
    assert receiver.counters["unknown_source"] == 1
    assert receiver.unregister("call-1") is None


def test_calls_can_bring_their_own_callaudio():
    audio = CallAudio()
    r = RtpReceiver()
    assert r.register("x", audio).audio is audio


async def test_the_same_callaudio_listens_again_after_unregister(receiver, sender):
    s = sender()
    audio = receiver.register("call-1", source=s.getsockname()).audio
    receiver.unregister("call-1")
    assert audio.closed
    stream = receiver.register("call-1", audio, source=s.getsockname())
    assert not audio.closed
    s.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    await settle(receiver, 1)
    assert stream.accepted == 1


async def test_stats_for_metrics(receiver, sender):
    s = sender()
    receiver.register("call-1", source=s.getsockname())
    receiver.register("call-2")
    s.sendto(build_rtp(FRAME, sequence=1, timestamp=1, ssrc=1), receiver.local_address)
    s.sendto(b"junk", receiver.local_address)
    await settle(receiver, 2)
    receiver.analyse()
    stats = receiver.stats()
    assert stats["rtp_packets_total"] == 2 and stats["rtp_accepted_total"] == 1 and stats["rtp_truncated_total"] == 1
    assert stats["rtp_streams"] == 2 and stats["rtp_streams_without_source"] == 1
    assert stats["audio_analysis_lag_p99_seconds"] >= 0
