"""RTP (RFC 3550) parsing and per-stream sequence tracking. No sockets here.

`parse_rtp` validates and splits one datagram; `SequenceTracker` decides, for
one call's stream, whether a packet is new, late, a duplicate or the start of
a new source (SSRC change, as chan_pjsip does when the media source changes).
Both are hot-path code: a handful of struct/int operations per packet.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "PT_PCMU",
    "PT_PCMA",
    "PT_CN",
    "PT_TELEPHONE_EVENT",
    "RTP_HEADER_LEN",
    "MAX_DATAGRAM",
    "RtpError",
    "RtpPacket",
    "parse_header",
    "parse_rtp",
    "build_rtp",
    "Verdict",
    "SequenceTracker",
    "TelephoneEvent",
    "parse_telephone_event",
]

PT_PCMU = 0
PT_PCMA = 8
PT_CN = 13  # RFC 3389 comfort noise
PT_TELEPHONE_EVENT = 101  # RFC 2833/4733: dynamic, 101 is what Asterisk offers by default

RTP_HEADER_LEN = 12
#: Anything larger is not one 20 ms G.711 frame from Asterisk; refuse it early.
MAX_DATAGRAM = 1500

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet. `reason` is a counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes
    csrc_count: int = 0
    has_extension: bool = False
    padding: int = 0  # bytes of padding removed from the payload


def parse_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int, bool, int, int]:
    """Hot-path parse: (payload_type, sequence, timestamp, ssrc, marker, start, end).

    The payload is data[start:end]. Raises RtpError(reason) for anything malformed.
    """
    size = len(data)
    if size > MAX_DATAGRAM:
        raise RtpError("oversize", f"{size} bytes")
    if size < RTP_HEADER_LEN:
        raise RtpError("truncated", f"{size} bytes")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data, 0)
    if b0 >> 6 != 2:
        raise RtpError("bad_version", str(b0 >> 6))
    csrc_count = b0 & 0x0F
    offset = RTP_HEADER_LEN + 4 * csrc_count
    has_extension = bool(b0 & 0x10)
    if has_extension:
        if size < offset + 4:
            raise RtpError("truncated", "extension header")
        _profile, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4 + 4 * words
    end = size
    padding = 0
    if b0 & 0x20:
        padding = data[-1]
        if padding == 0:
            raise RtpError("bad_padding", "zero padding count")
        end -= padding
    if end < offset:
        raise RtpError("truncated", "header longer than packet")
    return b1 & 0x7F, sequence, timestamp, ssrc, bool(b1 & 0x80), offset, end


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram into an RtpPacket; raise RtpError(reason) if malformed."""
    payload_type, sequence, timestamp, ssrc, marker, start, end = parse_header(data)
    b0 = data[0]
    return RtpPacket(
        payload_type=payload_type,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=marker,
        payload=bytes(data[start:end]),
        csrc_count=b0 & 0x0F,
        has_extension=bool(b0 & 0x10),
        padding=data[-1] if b0 & 0x20 else 0,
    )


def build_rtp(
    payload: bytes,
    *,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = PT_PCMU,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    """Build an RTP datagram (tests, benchmarks, generators)."""
    b0 = 0x80 | (len(csrcs) & 0x0F)
    if extension is not None:
        b0 |= 0x10
    if padding:
        b0 |= 0x20
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    parts = [_HEADER.pack(b0, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)]
    parts += [struct.pack("!I", c) for c in csrcs]
    if extension is not None:
        if len(extension) % 4:
            raise ValueError("extension length must be a multiple of 4")
        parts.append(_EXT_HEADER.pack(0xBEDE, len(extension) // 4) + extension)
    parts.append(payload)
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 telephone-event payload (a DTMF key, not audio)."""

    event: int
    end: bool
    volume: int
    duration: int


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    if len(payload) < 4:
        raise RtpError("truncated", "telephone-event")
    event, flags, duration = struct.unpack_from("!BBH", payload, 0)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


class Verdict(enum.IntEnum):
    ACCEPT = 0  # next in order (possibly after a gap of lost packets)
    DUPLICATE = 1
    LATE = 2  # older than what we already played on; dropped, we keep no jitter buffer
    NEW_SOURCE = 3  # first packet, SSRC change or a jump too big to be loss: accept and resync


#: A forward jump larger than this is treated as a restarted stream, not loss.
_MAX_FORWARD_JUMP = 3000  # 60 s of 20 ms packets
_HALF = 0x8000


class SequenceTracker:
    """Order bookkeeping for one stream: wrap-around, loss, late, duplicates, SSRC."""

    __slots__ = ("ssrc", "highest", "cycles", "lost", "started")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.highest = 0
        self.cycles = 0  # times the 16-bit sequence wrapped
        self.lost = 0
        self.started = False

    def check(self, ssrc: int, sequence: int) -> Verdict:
        if not self.started or ssrc != self.ssrc:
            self.ssrc = ssrc
            self.highest = sequence
            self.started = True
            return Verdict.NEW_SOURCE
        delta = (sequence - self.highest) & 0xFFFF
        if delta == 0:
            return Verdict.DUPLICATE
        if delta < _HALF:
            if delta > _MAX_FORWARD_JUMP:
                self.highest = sequence
                return Verdict.NEW_SOURCE
            if sequence < self.highest:
                self.cycles += 1
            self.lost += delta - 1
            self.highest = sequence
            return Verdict.ACCEPT
        return Verdict.LATE

    @property
    def extended_highest(self) -> int:
        return (self.cycles << 16) | self.highest
