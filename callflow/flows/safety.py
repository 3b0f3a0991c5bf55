"""The one place a flow may hang up the caller (caller-safety invariant).

Seed 000: « Ne pas raccrocher prématurément (le client a un besoin réel) »,
cas F « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés ».

`SafeHangup` sees every audio reading and every key/tap of the call. It lets a
hang-up through only on the cas C path: the seed's 20–30 s of waiting are over,
the final warning « je vais raccrocher dans 10 secondes » was spoken and its
countdown has run, and nothing alive was heard during the whole wait. Anything
else is refused and written to the call record. Flows never call
channel.hang_up themselves.
"""

from __future__ import annotations

from typing import Callable

from callflow.agents import latch
from callflow.core.channel import SIGNS_OF_LIFE, AudioReading, AudioState, CallerInput, Channel
from callflow.core.recorder import CallRecorder
from callflow.flows.timers import SilentCallTimers

#: Background noise whose level moves by this much is somebody moving the phone.
NOISE_CHANGE_DB = 6.0


class SafeHangup:
    def __init__(
        self,
        channel: Channel,
        recorder: CallRecorder,
        call_id: str,
        timers: SilentCallTimers,
        now: Callable[[], float],
    ) -> None:
        self._channel = channel
        self._recorder = recorder
        self._call_id = call_id
        self._timers = timers
        self._now = now  # seconds since the call was answered
        self.emergency = False
        self.last_sign_of_life: float | None = None
        self.final_warning_at: float | None = None
        self.hung_up = False
        self._last_noise_db: float | None = None

    # -- what the call shows -------------------------------------------------
    def saw_reading(self, reading: AudioReading) -> None:
        alive = reading.state in SIGNS_OF_LIFE or reading.distress
        if reading.state is AudioState.BACKGROUND_NOISE:
            # « noise that changes »: the caller is handling the phone
            if self._last_noise_db is not None and abs(reading.level_dbfs - self._last_noise_db) >= NOISE_CHANGE_DB:
                alive = True
            self._last_noise_db = reading.level_dbfs
        if alive:
            self._alive()

    def saw_input(self, caller_input: CallerInput) -> None:
        self._alive()

    def caller_active(self) -> None:
        """Somebody acted on the line outside our listening (e.g. keyed a number)."""
        self._alive()

    def _alive(self) -> None:
        # Clock of the flow at processing time: never earlier than the sound itself.
        self.last_sign_of_life = self._now()
        if self.final_warning_at is not None:
            self.final_warning_at = None  # a new life sign cancels the countdown

    def alive_within(self, seconds: float) -> bool:
        return self.last_sign_of_life is not None and self._now() - self.last_sign_of_life <= seconds

    def latch_emergency(self) -> None:
        """Cas F: from now on, nothing may hang up this caller."""
        self.emergency = True

    def final_warning_given(self) -> None:
        """Call when « Je vais raccrocher dans 10 secondes » has been spoken to the end."""
        self.final_warning_at = self._now()

    # -- the decision --------------------------------------------------------
    def refusal(self) -> str | None:
        """Why a hang-up now would be premature; None when it is allowed."""
        now = self._now()
        t = self._timers
        if self.emergency or latch.is_latched(self._call_id):  # the IVR's cas F or an agent's *9
            return "emergency: never hang up until help is there"
        if self.final_warning_at is None:
            return "no final warning spoken"
        if now - self.final_warning_at < t.final_countdown:
            return f"countdown not over ({now - self.final_warning_at:.1f}s < {t.final_countdown:.0f}s)"
        if now < t.dead_line_total_wait:
            return f"waited {now:.1f}s < {t.dead_line_total_wait:.0f}s"
        if self.alive_within(t.dead_line_total_wait + t.final_countdown):
            return f"sign of life at {self.last_sign_of_life:.1f}s"
        return None

    async def hang_up(self, reason: str) -> bool:
        """Hang up the caller if the invariant allows it; else record the refusal."""
        why_not = self.refusal()
        if why_not is not None:
            await self._recorder.note(self._call_id, "hangup_refused", f"{reason}: {why_not}", at=self._now())
            return False
        await self._recorder.note(self._call_id, "hangup", reason, at=self._now())
        self.hung_up = True
        await self._channel.hang_up(reason)
        return True
