"""RTP parsing and sequence tracking, including the awkward cases."""

import struct

import pytest

from callflow.audio.rtp import (
    MAX_DATAGRAM,
    PT_TELEPHONE_EVENT,
    RtpError,
    SequenceTracker,
    Verdict,
    build_rtp,
    parse_rtp,
    parse_telephone_event,
)

PAYLOAD = bytes(range(160))


def test_plain_packet():
    p = parse_rtp(build_rtp(PAYLOAD, sequence=7, timestamp=1120, ssrc=0xDEADBEEF, marker=True))
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) == (0, 7, 1120, 0xDEADBEEF, True)
    assert p.payload == PAYLOAD


def test_csrc_extension_and_padding_are_skipped():
    data = build_rtp(PAYLOAD, sequence=1, timestamp=2, ssrc=3, csrcs=(10, 11, 12), extension=b"\x01" * 8, padding=4)
    p = parse_rtp(data)
    assert p.csrc_count == 3 and p.has_extension and p.padding == 4
    assert p.payload == PAYLOAD


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "truncated"),
        (b"\x80\x00\x00", "truncated"),
        (build_rtp(PAYLOAD, sequence=1, timestamp=1, ssrc=1)[:11], "truncated"),
        (bytes([0x40]) + build_rtp(PAYLOAD, sequence=1, timestamp=1, ssrc=1)[1:], "bad_version"),
        (bytes([0x00]) + bytes(40), "bad_version"),
        (bytes([0x8F]) + bytes(20), "truncated"),  # 15 CSRCs announced, none there
        (bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\xff", "truncated"),  # extension longer than the packet
        (bytes([0xA0]) + bytes(11) + b"\x00" * 3 + b"\x00", "bad_padding"),
        (bytes([0xA0]) + bytes(11) + b"\x00\x00\x00\xff", "truncated"),  # padding longer than the packet
        (bytes([0x80, 0]) + bytes(MAX_DATAGRAM), "oversize"),
    ],
)
def test_malformed_packets_raise_with_a_reason(data, reason):
    with pytest.raises(RtpError) as info:
        parse_rtp(data)
    assert info.value.reason == reason


def test_telephone_event_payload():
    data = build_rtp(struct.pack("!BBH", 5, 0x80 | 10, 800), sequence=1, timestamp=1, ssrc=1, payload_type=PT_TELEPHONE_EVENT)
    p = parse_rtp(data)
    event = parse_telephone_event(p.payload)
    assert (p.payload_type, event.event, event.end, event.volume, event.duration) == (101, 5, True, 10, 800)


def test_sequence_in_order_and_loss():
    t = SequenceTracker()
    assert t.check(1, 100) is Verdict.NEW_SOURCE
    assert t.check(1, 101) is Verdict.ACCEPT
    assert t.check(1, 104) is Verdict.ACCEPT
    assert t.lost == 2


def test_sequence_wraps_around():
    t = SequenceTracker()
    t.check(9, 65534)
    assert t.check(9, 65535) is Verdict.ACCEPT
    assert t.check(9, 0) is Verdict.ACCEPT
    assert t.check(9, 1) is Verdict.ACCEPT
    assert t.cycles == 1 and t.lost == 0
    assert t.extended_highest == 65536 + 1


def test_duplicates_and_late_packets_are_refused():
    t = SequenceTracker()
    t.check(9, 65535)
    t.check(9, 0)
    t.check(9, 1)
    assert t.check(9, 1) is Verdict.DUPLICATE
    assert t.check(9, 0) is Verdict.LATE
    assert t.check(9, 65535) is Verdict.LATE  # late across the wrap
    assert t.check(9, 2) is Verdict.ACCEPT


def test_ssrc_change_resynchronises():
    t = SequenceTracker()
    t.check(1, 500)
    assert t.check(2, 9) is Verdict.NEW_SOURCE  # new source, far lower sequence: not "late"
    assert t.check(2, 10) is Verdict.ACCEPT


def test_huge_forward_jump_is_a_restart_not_loss():
    t = SequenceTracker()
    t.check(1, 0)
    assert t.check(1, 20000) is Verdict.NEW_SOURCE
    assert t.lost == 0
