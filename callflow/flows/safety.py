"""What the IVR shows the one guard (callflow/core/guard.py): signs of life, the final warning.

Seed 000: « Ne pas raccrocher prématurément (le client a un besoin réel) »,
cas F « Ne JAMAIS raccrocher tant que les secours ne sont pas arrivés ».

`SafeHangup` sees every audio reading and every key/tap of the call and writes
what proves somebody is there on the call's one state (`callflow.core.call.Call`):
a sign of life is never forgotten. The decision itself is the guard's: a hang-up
goes through only on the cas C path — a line that never showed any sign of life,
the seed's 20–30 s of waiting over, the final warning « je vais raccrocher dans
10 secondes » spoken and its countdown run, no key waiting. Flows never call
channel.hang_up themselves.
"""

from __future__ import annotations

from typing import Callable

from callflow.core.call import REGISTRY, Call, CallRegistry
from callflow.core.channel import SIGNS_OF_LIFE, AudioReading, AudioState, CallerInput, Channel, SpeechStreak
from callflow.core.guard import By, DeadLineRule, Guard, hangup_refusal
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
        *,
        registry: CallRegistry | None = None,
    ) -> None:
        self._channel = channel
        self._recorder = recorder
        self._call_id = call_id
        self._timers = timers
        self._now = now  # seconds since the call was answered
        self.call: Call = (registry or REGISTRY).open(call_id, channel_id=getattr(channel, "id", None),
                                                      number=getattr(getattr(channel, "caller", None), "number", None))
        self.guard = Guard(self.call, self._note, now)
        self.rule = DeadLineRule(timers.dead_line_total_wait, timers.final_countdown)
        self.hung_up = False
        self._last_noise_db: float | None = None

    async def _note(self, kind: str, detail: str) -> None:
        await self._recorder.note(self._call_id, kind, detail, at=self._now())

    # -- the one state's view ---------------------------------------------------
    @property
    def emergency(self) -> bool:
        return self.call.emergency

    @property
    def last_sign_of_life(self) -> float | None:
        return self.call.last_sign_of_life

    @property
    def first_sign_of_life(self) -> float | None:
        return self.call.first_sign_of_life

    @property
    def showed_life(self) -> bool:
        return self.call.showed_life

    @property
    def final_warning_at(self) -> float | None:
        return self.call.final_warning_at

    # -- what the call shows -------------------------------------------------
    def saw_reading(self, reading: AudioReading) -> None:
        alive = reading.state in SIGNS_OF_LIFE or reading.distress
        if reading.state is AudioState.SPEECH and reading.confidence < SpeechStreak.CONFIDENCE and not reading.distress:
            alive = False  # a lone unsure « speech » flicker on a dead line is not somebody (the classifier's own bar)
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
        self.call.sign_of_life(self._now())

    def alive_within(self, seconds: float) -> bool:
        last = self.call.last_sign_of_life
        return last is not None and self._now() - last <= seconds

    def latch_emergency(self) -> None:
        """Cas F: from now on, nothing may hang up this caller."""
        self.call.latch_emergency("cas F")

    def final_warning_given(self) -> None:
        """Call when « Je vais raccrocher dans 10 secondes » has been spoken to the end."""
        self.call.final_warning_at = self._now()

    # -- the decision (the guard's) ---------------------------------------------
    def refusal(self) -> str | None:
        """Why a hang-up now would be premature; None when it is allowed."""
        return hangup_refusal(self.call, by=By.SYSTEM, now=self._now(), rule=self.rule)

    async def hang_up(self, reason: str) -> bool:
        """Hang up the caller if the rules allow it; else record the refusal."""
        self.hung_up = await self.guard.hang_up_caller(self._channel, reason, by=By.SYSTEM, rule=self.rule)
        return self.hung_up
