"""One call as a flow sees it: say a prompt, listen, remember everything.

`FlowCall` wraps the Channel so that every prompt, key, tap and audio reading
goes to the call record and to the safety guard, whatever flow is running.
Two things can happen « at any point » of the seed's procedure and interrupt the
current step; they are raised as exceptions and handled by the flow's loop:
`SpeechHeard` (→ a person) and `DistressHeard` (→ cas F, then cas D).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

from callflow.core.call import REGISTRY, BadTransition, Call, CallState
from callflow.core.channel import (
    AudioReading,
    AudioState,
    CallerInput,
    DigitInput,
    PlayResult,
    SpeechStreak,
)
from callflow.core.clock import Clock
from callflow.core.recorder import CallRecorder
from callflow.flows.safety import SafeHangup
from callflow.flows.timers import SilentCallTimers

log = logging.getLogger(__name__)

#: Classifier readings arrive about every 500 ms; we look at the line that often.
SLICE = 0.5
#: Breathing louder than this is voice energy without words (sobs, moaning).
VOICED_DBFS = -35.0
# The classifier's distress flag is a hint: one reading is a flicker (seen on calm
# breathing); several within a few seconds are sobs or moans.
DISTRESS_READINGS = 3
DISTRESS_SPAN = 10.0
#: Readings come at least every 0.5 s while listening (core/channel.py); more than twice that between two
#: readings is a hole (the listening window closed), not a run going on (the classifier's timeline agrees).
READING_GAP = 1.0


class SpeechHeard(Exception):
    """The caller talks: a person must take the call (seed: « Si client commence à parler »)."""


class LanguageRequested(Exception):
    """The caller pressed 9: cas E, « Do you speak English? ¿Habla español? Parli italiano? »."""


class DistressHeard(Exception):
    """Sobs, moaning, laboured breathing: cas F first (« IMMÉDIAT »), then cas D."""


def describe(caller_input: CallerInput) -> str:
    if isinstance(caller_input, DigitInput):
        return f"key {caller_input.digit}"
    return f"taps {caller_input.count}"


@dataclass
class Window:
    """What one listening window heard."""

    start: float
    states: Counter = field(default_factory=Counter)
    input: CallerInput | None = None
    distress: bool = False

    def heard(self, state: AudioState, at_least: int = 1) -> bool:
        return self.states[state] >= at_least


class FlowCall:
    def __init__(self, call: Call, recorder: CallRecorder, timers: SilentCallTimers, clock: Clock) -> None:
        call = REGISTRY.join(call)  # the call's one state (callflow/core/call.py), durable; its live channel on it
        assert call.channel is not None and call.caller is not None, "a flow needs the caller's channel"
        self.channel = call.channel
        self.call_id = call.call_id
        self.number = call.caller.number
        self.language = call.caller.language or "fr"
        self.recorder = recorder
        self.timers = timers
        self.clock = clock
        self._t0 = clock.time()
        self.guard = SafeHangup(self.channel, recorder, self.call_id, timers, self.now)
        self.state = self.guard.call  # == call: the guard decides on the same one state
        self.answers: dict[str, str] = {}
        self.handoffs_done: list[str] = []  # accepted by the outbox: sms, email, rappel, aidant
        self.listen_for_distress = True  # off once cas F's question was asked
        self.callbacks_at_opening = False  # seed 003, line closed: a promised callback waits for the opening
        self._speech = SpeechStreak()
        self._voiced_since: float | None = None  # first reading of the current run of voiced breathing
        self._voiced_last = 0.0  # the run's latest reading
        self._voiced_seconds = 0.0
        self._segment: list | None = None  # [start, end, state, distress, level]
        self._window: Window | None = None
        self._distress = False
        self._distress_times: deque[float] = deque()

    def enter(self, state: CallState, why: str = "") -> None:
        """Move the call's state; a move the machine refuses is logged, never breaks the call."""
        try:
            self.state.move(state, why)
        except BadTransition:
            log.warning("call state: move refused", extra={"call": self.call_id, "to": state.value, "why": why})

    def now(self) -> float:
        """Seconds since the flow took the call."""
        return self.clock.time() - self._t0

    async def note(self, kind: str, detail: str = "") -> None:
        await self.recorder.note(self.call_id, kind, detail, at=self.now())

    # -- speaking ------------------------------------------------------------
    async def say(self, prompt: str, *, barge_in: bool = True) -> PlayResult:
        await self.note("prompt", prompt)
        result = await self.channel.play(prompt, language=self.language, barge_in=barge_in)
        if not result.completed and result.interrupted_by is not None:
            await self.note("barge_in", f"{prompt}: {describe(result.interrupted_by)}")
        await self._drain_readings()
        if barge_in and self.speech_confirmed():
            await self.note("barge_in", f"{prompt}: speech")
            raise SpeechHeard()  # the caller talks over us: a person listens (the hotliner would stop too)
        return result

    # -- listening -----------------------------------------------------------
    async def listen(self, seconds: float, *, stop_on_input: bool = True) -> Window:
        """Listen to the line for `seconds`, watching keys and taps as well.

        Stops early on a key/tap (returned in the window) unless told not to.
        Raises SpeechHeard / DistressHeard as soon as they are certain.
        """
        await self.channel.start_listening()  # no-op when already listening (or forked on voice)
        if self.state.state in (CallState.IVR, CallState.QUESTIONNAIRE, CallState.HANDOFF):
            self.enter(CallState.LISTENING, "listening")
        window = Window(start=self.now())
        self._window = window
        try:
            await self._listen(window, seconds, stop_on_input)
        finally:
            self._window = None
        return window

    async def _listen(self, window: Window, seconds: float, stop_on_input: bool) -> None:
        deadline = self.now() + seconds
        while True:
            remaining = deadline - self.now()
            if remaining <= 0:
                break
            caller_input = await self.channel.next_input(min(SLICE, remaining))
            await self._drain_readings()
            if caller_input is not None:
                self.guard.saw_input(caller_input)
                await self.note("input", describe(caller_input))
            # Speech and distress come first, even when a key came with them: « CAS F …
            # IMMÉDIAT » — the emergency question is asked before anything else, and it
            # wants a fresh answer, not a key pressed for another question.
            if self.speech_confirmed():
                raise SpeechHeard()
            if self.listen_for_distress and self.distress_likely():
                raise DistressHeard()
            if caller_input is not None and stop_on_input:
                window.input = caller_input
                break


    async def _drain_readings(self) -> None:
        """Take the readings waiting, one at a time, and stop at the one that proves speech or distress:
        in a burst, the readings after it (the caller paused) would hide what it proved before the
        caller (`say`, `_listen`) looks. The rest wait for the next drain."""
        while (reading := await self.channel.next_reading(0)) is not None:
            if await self._take(reading):
                return

    async def _take(self, reading: AudioReading) -> bool:
        """One reading; True when it is the one that confirmed speech or made distress likely."""
        speech_before, distress_before = self.speech_confirmed(), self.distress_likely()
        # Streaks are timed on the reading's own time (`reading.at`: the classifier's clock, the event
        # loop's monotonic time since the answer, stamped at the analysis tick that heard it), never on
        # when the flow reads it: under load the flow drains readings in bursts (after a prompt, a slow
        # REST call, a busy loop), and stamping them on arrival made seconds of sound look like an
        # instant (or an instant like seconds). The flow's own clock (`now()`) only paces the flow.
        at = reading.at
        self.guard.saw_reading(reading)
        if self._window is not None:
            self._window.states[reading.state] += 1
            self._window.distress |= reading.distress
        self._speech.add(reading, at)
        if reading.distress:
            self._distress_times.append(at)
        while self._distress_times and at - self._distress_times[0] > DISTRESS_SPAN:
            self._distress_times.popleft()
        if len(self._distress_times) >= DISTRESS_READINGS:
            self._distress = True  # latched: once likely, cas F's question is owed
        if reading.state is AudioState.BREATHING and reading.level_dbfs >= VOICED_DBFS:
            # « long » voice energy without words: it must last. Measured on the readings' own
            # times, not counted per reading: live readings come every 0.25 s, the fake's every 0.5 s.
            # A hole in the readings (the listening window closed and opened again later) ends the run:
            # the seconds nobody listened to are not voice energy.
            if self._voiced_since is None or at - self._voiced_last > READING_GAP:
                self._voiced_since = at
            self._voiced_last = at
            self._voiced_seconds = at - self._voiced_since
            if self._voiced_seconds >= self.timers.distress_voiced_seconds:
                self._distress = True  # latched like the distress readings: a calm reading after it owes cas F still
        else:
            self._voiced_since = None
            self._voiced_seconds = 0.0
        await self._timeline(reading)
        return (not speech_before and self.speech_confirmed()) or (not distress_before and self.distress_likely())

    def speech_confirmed(self) -> bool:
        return self._speech.confirmed

    def distress_likely(self) -> bool:
        """Seed cas D/F: sobs, irregular breathing, or long voice energy without words."""
        return self._distress or self._voiced_seconds >= self.timers.distress_voiced_seconds

    # -- the audio timeline (segments, written when the state changes) --------
    async def _timeline(self, r: AudioReading) -> None:
        seg = self._segment
        if seg is not None and seg[2] == r.state.value and seg[3] == r.distress:
            seg[1] = r.at
            seg[4] = max(seg[4], r.level_dbfs)
            return
        await self.flush_timeline()
        self._segment = [r.at, r.at, r.state.value, r.distress, r.level_dbfs]

    async def flush_timeline(self) -> None:
        if self._segment is not None:
            start, end, state, distress, level = self._segment
            self._segment = None
            await self.recorder.audio(
                self.call_id, start=start, end=end + SLICE, state=state, distress=distress, level_dbfs=level
            )

    # -- keys ----------------------------------------------------------------
    async def swallow_burst(self) -> None:
        """After an accepted answer: the same press, duplicated by the network, is not a new answer."""
        deadline = self.now() + self.timers.dtmf_burst_window
        while (remaining := deadline - self.now()) > 0:
            extra = await self.channel.next_input(remaining)
            if extra is None:
                break
            self.guard.saw_input(extra)
            await self.note("ignored", f"{describe(extra)} (burst)")
        self.channel.flush_input()

