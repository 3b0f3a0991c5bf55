"""The caller-safety guard (one room) and the timers it relies on."""

from __future__ import annotations

import pytest

from callflow.core.channel import AudioReading, AudioState, DigitInput, TapInput
from callflow.core.errors import ConfigError
from callflow.core.recorder import MemoryRecorder
from callflow.flows.safety import SafeHangup
from callflow.flows.timers import SilentCallTimers
from callflow.telephony.fake import CallerScript, FakeChannel



class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def make_guard(**timers):
    channel = FakeChannel(CallerScript())
    await channel.answer()
    recorder = MemoryRecorder()
    await recorder.start("s-1", number=None, started_at=0.0, flow="test", language="fr")
    clock = Clock()
    guard = SafeHangup(channel, recorder, "s-1", SilentCallTimers(**timers).validate(), clock)
    return guard, channel, recorder, clock


def reading(state: AudioState, at: float = 0.0, **kw) -> AudioReading:
    return AudioReading(state, 0.9, at, **kw)


async def warned_and_waited(guard, clock, warning_at: float = 30.0, countdown: float = 10.0) -> None:
    clock.t = warning_at
    guard.final_warning_given()
    clock.t = warning_at + countdown


async def test_dead_line_after_warning_and_countdown_may_hang_up():
    guard, channel, recorder, clock = await make_guard()
    await warned_and_waited(guard, clock)
    assert await guard.hang_up("ligne morte")
    assert channel.hung_up_by == "system"
    assert recorder.calls["s-1"].kinds("hangup") == ["ligne morte"]


async def test_no_final_warning_no_hang_up():
    guard, channel, recorder, clock = await make_guard()
    clock.t = 300
    assert not await guard.hang_up("ligne morte")
    assert channel.is_up
    assert "no final warning" in recorder.calls["s-1"].kinds("hangup_refused")[0]


async def test_countdown_not_over_no_hang_up():
    guard, channel, _, clock = await make_guard()
    await warned_and_waited(guard, clock, countdown=9.5)
    assert not await guard.hang_up("ligne morte")
    assert channel.is_up


async def test_before_the_seed_total_wait_no_hang_up():
    guard, channel, _, clock = await make_guard(dead_line_total_wait=30.0)
    await warned_and_waited(guard, clock, warning_at=15.0)  # 25 s < 30 s
    assert not await guard.hang_up("ligne morte")


@pytest.mark.parametrize(
    "sign",
    [
        reading(AudioState.BREATHING),
        reading(AudioState.SPEECH),
        reading(AudioState.TAPS),
        reading(AudioState.SILENCE, distress=True),
        DigitInput("5", 0.0),
        TapInput(1, 0.0),
    ],
)
async def test_any_sign_of_life_refuses_the_hang_up(sign):
    guard, channel, recorder, clock = await make_guard()
    clock.t = 25.0
    guard.saw_input(sign) if not isinstance(sign, AudioReading) else guard.saw_reading(sign)
    await warned_and_waited(guard, clock)
    assert not await guard.hang_up("ligne morte")
    assert channel.is_up
    assert recorder.calls["s-1"].kinds("hangup_refused")


async def test_a_sign_of_life_during_the_countdown_cancels_the_warning():
    guard, channel, _, clock = await make_guard()
    clock.t = 30.0
    guard.final_warning_given()
    clock.t = 35.0
    guard.saw_reading(reading(AudioState.BREATHING))
    clock.t = 200.0
    assert guard.final_warning_at is None
    assert not await guard.hang_up("ligne morte")


async def test_steady_noise_is_not_life_but_changing_noise_is():
    guard, _, _, clock = await make_guard()
    for level in (-40, -41, -39, -40):
        guard.saw_reading(reading(AudioState.BACKGROUND_NOISE, level_dbfs=level))
    assert guard.last_sign_of_life is None
    clock.t = 12.0
    guard.saw_reading(reading(AudioState.BACKGROUND_NOISE, level_dbfs=-25))
    assert guard.last_sign_of_life == 12.0


async def test_emergency_latch_refuses_everything_for_ever():
    guard, channel, recorder, clock = await make_guard()
    guard.latch_emergency()
    await warned_and_waited(guard, clock, warning_at=1000.0)
    assert not await guard.hang_up("ligne morte")
    assert channel.is_up
    assert "emergency" in recorder.calls["s-1"].kinds("hangup_refused")[0]


# -- timers ---------------------------------------------------------------------------------
def test_default_timers_follow_the_seed():
    t = SilentCallTimers().validate()
    assert 2.0 <= t.greeting_listen <= 3.0
    assert t.dead_line_total_wait == 30.0 and t.final_countdown == 10.0
    assert t.question_timeout == 8.0 and t.reprompts == 3
    assert 10.0 <= t.distress_silence <= 20.0 and t.callback_delay == 300.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("dead_line_total_wait", 19.9),
        ("final_countdown", 9.0),
        ("greeting_listen", 1.0),
        ("greeting_listen", 5.0),
        ("question_timeout", 2.0),
        ("reprompts", 4),
        ("reprompts", 0),
        ("reprompts", 2.5),
        ("distress_silence", 5.0),
        ("callback_delay", 10.0),
        ("after_handoff_wait", 10.0),
        ("question_timeout", "8"),
        ("final_countdown", True),
    ],
)
def test_values_below_the_seed_minimums_are_refused(field, value):
    with pytest.raises(ConfigError) as err:
        SilentCallTimers(**{field: value}).validate()
    assert err.value.key == f"silent_call.{field}"
    assert err.value.expected


def test_longer_waits_are_allowed():
    SilentCallTimers(dead_line_total_wait=45.0, final_countdown=15.0, after_handoff_wait=90.0).validate()
