"""Each thing the caller did, once: a press reported many times is one press; the keypad's clicks are not taps.

The burst below is the one a loaded sandbox PBX produced (its log: one « 1 » reported 8 times in 650 ms),
replayed through the ARI channel with Asterisk's own event times."""

from __future__ import annotations

import pytest

from callflow.core.channel import SAME_KEY_WINDOW, TAPS_AFTER_KEY, Caller, DigitInput, InputFilter, TapInput
from callflow.telephony.ari.channel import AriChannel
from callflow.telephony.ari.events import AriEvent

# Asterisk's DTMF end times for one press of « 1 » whose RFC 2833 packets came out of order (ms after .700)
REAL_BURST_MS = [85, 175, 268, 397, 487, 579, 678, 724]


def passed(filt: InputFilter, inputs: list[tuple[float, object]]) -> list:
    return [item for at, item in inputs if filt.refuses(item, now=at) is None]


def test_the_real_burst_is_one_press():
    inputs = [(ms / 1000, DigitInput("1", ms / 1000)) for ms in REAL_BURST_MS]
    assert len(passed(InputFilter(), inputs)) == 1


@pytest.mark.parametrize("gap", [0.2, 0.3, 0.4])
def test_the_same_key_pressed_again_counts_again(gap):
    # « 0 6 6 … »: two real presses of one key are at least ~200 ms apart (press, release, press)
    inputs = [(0.0, DigitInput("0", 0)), (gap, DigitInput("6", gap)), (2 * gap, DigitInput("6", 2 * gap))]
    assert [i.digit for i in passed(InputFilter(), inputs)] == ["0", "6", "6"]


def test_other_keys_close_together_all_count():
    inputs = [(i * 0.05, DigitInput(d, i * 0.05)) for i, d in enumerate("0698")]
    assert [i.digit for i in passed(InputFilter(), inputs)] == list("0698")


def test_the_pbx_time_keeps_presses_apart_that_arrive_bunched():
    # a stalled controller receives two real presses 400 ms apart within 10 ms of each other
    filt = InputFilter()
    assert filt.refuses(DigitInput("7", 0), now=100.000, pressed_at=50.0) is None
    assert filt.refuses(DigitInput("7", 0), now=100.010, pressed_at=50.4) is None
    assert filt.refuses(DigitInput("7", 0), now=100.020, pressed_at=50.4 + SAME_KEY_WINDOW / 2) is not None


def test_taps_heard_while_keying_are_the_keypad_and_taps_later_count():
    filt = InputFilter()
    assert filt.refuses(TapInput(2, 0), now=1.0) is None  # no key yet: taps are the caller's
    assert filt.refuses(DigitInput("5", 0), now=10.0) is None
    assert filt.refuses(TapInput(1, 0), now=11.5) == "the keypad's own sound"
    assert filt.refuses(TapInput(1, 0), now=10.0 + TAPS_AFTER_KEY + 0.1) is None


async def test_the_ari_channel_passes_one_press_and_no_keypad_taps():
    chan = AriChannel(object(), "c1", Caller(number=None), claim=lambda _: None, answered=True)
    for ms in REAL_BURST_MS:
        stamp = f"2026-11-29T23:09:35.{ms:03d}+0000"
        await chan.handle(AriEvent.from_dict({"type": "ChannelDtmfReceived", "digit": "1", "timestamp": stamp,
                                              "channel": {"id": "c1"}}))
    chan.push_input(TapInput(1, chan.now()))  # the group the key's clicks made, closed 1.3 s later
    first = await chan.next_input(0.1)
    assert first is not None and first.digit == "1"
    assert await chan.next_input(0.1) is None


async def test_the_ari_channel_uses_asterisks_times_not_the_arrival():
    chan = AriChannel(object(), "c1", Caller(number=None), claim=lambda _: None, answered=True)
    for stamp in ("2026-11-29T23:09:35.000+0000", "2026-11-29T23:09:35.400+0000"):  # delivered back to back
        await chan.handle(AriEvent.from_dict({"type": "ChannelDtmfReceived", "digit": "7", "timestamp": stamp,
                                              "channel": {"id": "c1"}}))
    assert [(await chan.next_input(0.1)).digit for _ in range(2)] == ["7", "7"]
