"""What the ARI and the FastAGI channels share: a caller's leg whose audio is forked to the classifier.

Both adapters keep the same per-leg state (answered, hung up, queued keys and taps)
and listen to the caller the same way — an ARI snoop + externalMedia fork
(callflow/telephony/media.py) started when a flow listens or when Asterisk's
TALK_DETECT says the line got loud — so that part lives here once. How a leg
plays prompts, reads keys, hangs up or moves is each adapter's own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from callflow.core.channel import AudioReading, CallerHungUp, CallerInput, InputFilter

if TYPE_CHECKING:
    from callflow.telephony.media import MediaFork

log = logging.getLogger(__name__)


class ForkedLeg:
    """Leg state and the media fork's lifecycle; subclasses set the attributes in `_init_leg`."""

    id: str
    media: "MediaFork | None"
    _media_factory: "Callable[[ForkedLeg], MediaFork] | None"

    def _init_leg(self, *, answered: bool, t0: float, media_factory) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = t0
        self._inputs: collections.deque[CallerInput] = collections.deque(maxlen=64)  # a flood of digits can't grow memory
        self._input_filter = InputFilter()
        self._input_ready = asyncio.Event()
        self._hungup = asyncio.Event()
        self._answered = answered
        self.media = None
        self._media_factory = media_factory
        self._voice_armed = False  # listen_on_voice: fork when TALK_DETECT says the line got loud
        self._voice_task: asyncio.Task[None] | None = None

    # -- state ------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """Answered and still there (Asterisk's "Up")."""
        return self._answered and not self._hungup.is_set()

    @property
    def hung_up(self) -> bool:
        return self._hungup.is_set()

    @property
    def answered_at(self) -> float:
        return self._t0

    def now(self) -> float:
        return self._loop.time() - self._t0

    def _check_up(self) -> None:
        if self._hungup.is_set():
            raise CallerHungUp(self.id)

    def flush_input(self) -> None:
        self._inputs.clear()
        self._input_ready.clear()

    def _is_the_callers(self, item: CallerInput, pressed_at: float | None = None) -> bool:
        """False for a press reported twice, or taps that are the keypad's own sound (core InputFilter).
        Times are the epoch's: the PBX's event times (`pressed_at`) are too."""
        why = self._input_filter.refuses(item, now=time.time(), pressed_at=pressed_at)
        if why is not None:
            log.info("input ignored", extra={"call": self.id, "input": repr(item), "why": why})
        return why is None

    # -- listening: the media fork ------------------------------------------------

    async def _listen_now_on_voice(self) -> None:
        try:
            await self.start_listening()
        except (CallerHungUp, RuntimeError) as exc:
            log.info("fork on voice not started", extra={"channel": self.id, "reason": str(exc)})
        finally:
            self._voice_task = None
        if self.media is not None and self.media.active and (not self._voice_armed or self.hung_up):
            await self.media.stop()  # the flow stopped listening while we were starting: it wins

    async def start_listening(self) -> None:
        self._check_up()
        if self.media is None:
            if self._media_factory is None:
                raise RuntimeError("no media fork configured for this channel")
            self.media = self._media_factory(self)
        await self.media.start()

    async def stop_listening(self) -> None:
        self._voice_armed = False
        if self.media is not None:
            await self.media.stop()

    async def next_reading(self, timeout: float) -> AudioReading | None:
        self._check_up()
        if self.media is None or not self.media.active:
            return None  # nothing to hear yet (FlowCall.listen starts the fork before it waits)
        return await self.media.next_reading(timeout)
