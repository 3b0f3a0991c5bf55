"""Property-based tests (hypothesis) of the RTP parser and the receiver on hostile input (issue 12, item 5).

Whatever arrives — truncated or malformed RTP, CSRC counts or extension lengths past the
end, padding longer than the payload, another SSRC or payload type mid-call, a flood
from an unknown source — the parser raises only RtpError, the receiver never raises,
keeps taking a call's good packets afterwards, and never puts one call's (or a
stranger's) bytes into another call's audio.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callflow.audio.classifier import analyse_calls
from callflow.audio.g711 import ALAW_DECODE, ULAW_DECODE
from callflow.audio.receiver import RtpReceiver
from callflow.audio.rtp import MAX_DATAGRAM, RTP_HEADER_LEN, RtpError, SequenceTracker, Verdict, build_rtp, parse_header, parse_rtp

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

A, B, STRANGER = ("127.0.0.1", 40000), ("127.0.0.1", 40002), ("127.0.0.1", 40004)
MARK = {A: 0x11, B: 0x22}  # every byte a source puts where audio may be read from


# ---------------------------------------------------------------------------- parser
@SETTINGS
@given(st.binary(max_size=MAX_DATAGRAM + 20))
def test_any_bytes_parse_or_raise_rtp_error(data):
    try:
        pt, seq, ts, ssrc, marker, start, end = parse_header(data)
    except RtpError as exc:
        assert exc.reason in {"truncated", "oversize", "bad_version", "bad_padding"}
        return
    assert RTP_HEADER_LEN <= start <= end <= len(data)
    assert 0 <= pt < 128 and 0 <= seq < 65536
    packet = parse_rtp(data)
    assert packet.payload == bytes(data[start:end])


@st.composite
def header_fields(draw, marker_byte: int = 0x11):
    """An RTP datagram whose header fields may lie: CSRC count, extension words and padding
    count drawn independently of what is really there. Every byte after the fixed header
    except the extension header is `marker_byte`."""
    version = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))
    csrc_count = draw(st.integers(0, 15))
    csrc_present = draw(st.integers(0, 15))
    has_ext = draw(st.booleans())
    ext_words_claimed = draw(st.integers(0, 0xFFFF))
    ext_words_present = draw(st.integers(0, 8))
    padding_flag = draw(st.booleans())
    payload_len = draw(st.integers(0, 400))
    pad_count = draw(st.integers(0, 255))
    pt = draw(st.sampled_from([0, 0, 0, 8, 13, 101, 96, 127]))
    seq = draw(st.integers(0, 0xFFFF))
    ssrc = draw(st.sampled_from([42, 42, 42, 7, 0xFFFFFFFF]))
    b0 = (version << 6) | (0x20 if padding_flag else 0) | (0x10 if has_ext else 0) | csrc_count
    # Whatever follows the fixed header may be read as audio when the header lies: all marker bytes.
    fill = bytes([marker_byte])
    parts = [struct.pack("!BBHII", b0, pt, seq, seq * 160 & 0xFFFFFFFF, ssrc), fill * (4 * csrc_present)]
    if has_ext:
        parts.append(struct.pack("!HH", 0xBEDE, ext_words_claimed) + fill * (4 * ext_words_present))
    parts.append(bytes([marker_byte]) * payload_len)
    if padding_flag:
        parts.append(bytes([marker_byte]) * max(pad_count - 1, 0) + bytes([pad_count]))
    data = b"".join(parts)
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))  # truncated anywhere
    return data if cut is None else data[:cut]


@SETTINGS
@given(header_fields())
def test_lying_headers_never_read_past_the_end(data):
    try:
        _pt, _seq, _ts, _ssrc, _m, start, end = parse_header(data)
    except RtpError:
        return
    assert RTP_HEADER_LEN <= start <= end <= len(data)
    b0 = data[0]
    # The payload starts after the header, the CSRCs and the extension the header announces.
    offset = RTP_HEADER_LEN + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    assert start == offset
    if b0 & 0x20:
        assert end == len(data) - data[-1]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(0, 0xFFFF)), max_size=200))
def test_sequence_tracker_never_goes_backwards_on_one_source(events):
    t = SequenceTracker()
    for ssrc, seq in events:
        before = (t.ssrc, t.extended_highest)
        verdict = t.check(ssrc, seq)
        if verdict in (Verdict.DUPLICATE, Verdict.LATE):
            assert (t.ssrc, t.extended_highest) == before
        assert t.lost >= 0


# ---------------------------------------------------------------------------- receiver
def _call_bytes(receiver: RtpReceiver, call_id: str) -> bytes:
    """Every G.711 byte waiting for call `call_id`: its pooled packets and its own buffer."""
    audio = receiver.streams[call_id].audio
    pool = audio._pool
    pooled = b"".join(p[RTP_HEADER_LEN:] for p, s in zip(pool.packets, pool.owners) if s == audio._slot)
    return pooled + bytes(audio._raw)


def _call_samples(receiver: RtpReceiver, call_id: str) -> set[int]:
    """Samples already decoded for the call (a codec change decodes what came before)."""
    audio = receiver.streams[call_id].audio
    return {int(v) for p in audio._pcm for v in np.unique(p)}


def _decoded(mark: int) -> set[int]:
    return {int(ULAW_DECODE[mark]), int(ALAW_DECODE[mark])}


def _receiver_with_two_calls() -> RtpReceiver:
    receiver = RtpReceiver()
    receiver.register("a", source=A)
    receiver.register("b", source=B)
    return receiver


source_and_datagram = st.one_of(
    st.tuples(st.just(A), header_fields(MARK[A])),
    st.tuples(st.just(B), header_fields(MARK[B])),
    st.tuples(st.just(STRANGER), st.one_of(header_fields(0x33), st.binary(max_size=MAX_DATAGRAM + 10))),
)


@SETTINGS
@given(st.lists(source_and_datagram, max_size=60))
def test_receiver_never_crashes_nor_mixes_calls(traffic):
    receiver = _receiver_with_two_calls()
    try:
        for address, data in traffic:
            receiver.datagram_received(data, address)
        for call_id, address in (("a", A), ("b", B)):
            assert set(_call_bytes(receiver, call_id)) <= {MARK[address]}, f"call {call_id} holds bytes from another source"
            assert _call_samples(receiver, call_id) <= _decoded(MARK[address])
        # Never stalls: after whatever came before, a fresh stream from A is taken...
        a = receiver.streams["a"]
        accepted = a.accepted
        for seq in range(5):
            receiver.datagram_received(build_rtp(bytes([MARK[A]]) * 160, sequence=seq, timestamp=seq * 160, ssrc=0xABCDEF), A)
        assert a.accepted == accepted + 5
        # ...and the analysis of both calls runs (no exception, bounded pending audio).
        analyse_calls([s.audio for s in receiver.streams.values()], now=1.0)
        assert a.audio.pending_bytes() < 160
    finally:
        for call_id in list(receiver.streams):
            receiver.unregister(call_id)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.sampled_from([0, 8, 13, 101, 3]), st.sampled_from([1, 2, 3])), max_size=80))
def test_ssrc_and_payload_type_changes_mid_call_stay_in_the_call(packets):
    """chan_pjsip may change SSRC; a stream may switch codec or send CN/DTMF: all of it is the
    call's own source, handled (or dropped) without an exception, none of it reaching call b."""
    receiver = _receiver_with_two_calls()
    try:
        for seq, pt, ssrc in packets:
            receiver.datagram_received(build_rtp(bytes([MARK[A]]) * 160, sequence=seq, timestamp=seq, ssrc=ssrc, payload_type=pt), A)
        assert _call_bytes(receiver, "b") == b"" and not _call_samples(receiver, "b")
        assert receiver.streams["b"].accepted == 0
        analyse_calls([s.audio for s in receiver.streams.values()], now=2.0)
    finally:
        for call_id in list(receiver.streams):
            receiver.unregister(call_id)


async def test_a_flood_from_an_unknown_source_does_not_stall_a_call():
    """5,000 datagrams from a stranger, then 20 of the call's own: the drain loop takes them
    all (a bounded number of drains) and only the call's 20 reach its audio."""
    receiver = RtpReceiver(tick=3600)  # analysis by hand below
    await receiver.start("127.0.0.1", 0)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind(("127.0.0.1", 0))
        caller.bind(("127.0.0.1", 0))
        stream = receiver.register("call", source=caller.getsockname())
        rng = np.random.default_rng(5)
        for i in range(5000):
            data = build_rtp(b"\x33" * 160, sequence=i, timestamp=i * 160, ssrc=42) if i % 2 else rng.bytes(int(rng.integers(0, 200)))
            stranger.sendto(data, receiver.local_address)
        for seq in range(20):
            good = build_rtp(b"\x11" * 160, sequence=seq, timestamp=seq * 160, ssrc=9)
            caller.sendto(good, receiver.local_address)
            # The call's own address sends junk too (truncated, wrong version, oversize): dropped.
            junk = (good[:7], bytes([0x40]) + good[1:], good + b"\x11" * MAX_DATAGRAM)[seq % 3]
            caller.sendto(junk, receiver.local_address)
        for _ in range(400):  # the socket is drained by the loop's reader and by hand
            if stream.accepted >= 20:
                break
            receiver._drain()
            await asyncio.sleep(0.005)
        assert stream.accepted == 20
        assert sum(stream.counters[r] for r in ("truncated", "bad_version", "oversize")) == 20
        assert set(_call_bytes(receiver, "call")) <= {0x11}
        assert receiver.counters["unknown_source"] >= 1
    finally:
        stranger.close()
        caller.close()
        await receiver.stop()


@pytest.mark.parametrize("claimed_words", [1, 100, 0xFFFF])
def test_extension_past_the_end_is_truncated_not_read(claimed_words):
    data = build_rtp(b"\x11" * 8, sequence=1, timestamp=1, ssrc=1)
    data = bytes([data[0] | 0x10]) + data[1:12] + struct.pack("!HH", 0xBEDE, claimed_words)
    with pytest.raises(RtpError) as info:
        parse_header(data)
    assert info.value.reason == "truncated"
