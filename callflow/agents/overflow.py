"""Seed 003 « en cas de débordement »: the callers waiting for an agent, in order, and what they may choose.

* `WaitingLine`: the callers on hold for an agent, urgent first, then by
  arrival. An agent who becomes free is offered to the first caller in that
  order who may take them (an en/es/it caller still within the language wait
  only takes an agent who speaks their language) — not to whoever polls first.
* Position and estimated wait (`queue_position_*`, `queue_wait_*`): said when
  the caller starts waiting and again every `agents.position_interval`. The
  estimate is the position divided by the agents whose phones are registered,
  times the mean length of the last agent calls (5 minutes until known).
* `overflow_offer`, after `agents.hold_max_wait` without an agent: 1 = rappel
  dans 5 minutes, 2 = dans l'heure, 3 = à l'ouverture, 4 = laisser un message,
  anything else (or nothing) = keep waiting. A callback keeps the caller in the
  line if they stay on; a message ends the wait (callflow/flows/after_hours.py).

Choices where the seed and the issue were silent: « dans l'heure » is due 30
minutes later (`agents.slot_hour_delay`: the scheduler's retries stay within the
hour); « à l'ouverture » is the next opening after the current one (tomorrow
morning on a weekday), or in a day when the line is always open; the offer is
made again after each further `hold_max_wait`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

SLOT_KEYS = {"1": "5min", "2": "hour", "3": "opening"}
MESSAGE_KEY = "4"
SLOT_PROMPTS = {"5min": "callback_slot_5min", "hour": "callback_slot_hour", "opening": "callback_slot_opening"}
SLOT_REASONS = {"5min": "rappel dans 5 minutes", "hour": "rappel dans l'heure", "opening": "rappel à l'ouverture"}
DEFAULT_HANDLE_SECONDS = 300.0


@dataclass
class Waiting:
    call_id: str
    urgent: bool
    language: str | None  # en/es/it while the caller waits for an agent of that language
    seq: int
    since: float = field(default_factory=time.monotonic)

    def takes(self, agent_languages: Iterable[str]) -> bool:
        return self.language is None or self.language in agent_languages


class WaitingLine:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seq = itertools.count(1)
        self.waiting: dict[str, Waiting] = {}
        self._handled: deque[float] = deque(maxlen=20)  # lengths of the last agent calls

    def join(self, call_id: str, *, urgent: bool, language: str | None) -> Waiting:
        entry = self.waiting.get(call_id)
        if entry is None:
            entry = self.waiting[call_id] = Waiting(call_id, urgent, language, next(self._seq), self.clock())
        return entry

    def leave(self, call_id: str) -> None:
        self.waiting.pop(call_id, None)

    def ordered(self) -> list[Waiting]:
        return sorted(self.waiting.values(), key=lambda w: (not w.urgent, w.seq))

    def position(self, call_id: str) -> int:
        for i, w in enumerate(self.ordered(), start=1):
            if w.call_id == call_id:
                return i
        return 0

    def first_for(self, agent_languages: Iterable[str]) -> str | None:
        """The call an agent speaking these languages should be offered to."""
        langs = tuple(agent_languages)
        for w in self.ordered():
            if w.takes(langs):
                return w.call_id
        return None

    def handled(self, seconds: float) -> None:
        if seconds > 0:
            self._handled.append(seconds)

    def estimate(self, call_id: str, agents_online: int) -> float:
        """Seconds until an agent is likely free for this caller."""
        mean = sum(self._handled) / len(self._handled) if self._handled else DEFAULT_HANDLE_SECONDS
        rounds = math.ceil(self.position(call_id) / max(1, agents_online))
        return rounds * mean

    def snapshot(self) -> list[dict]:
        now = self.clock()
        return [{"call_id": w.call_id, "position": i, "urgent": w.urgent, "language": w.language,
                 "waiting_seconds": round(now - w.since, 1)} for i, w in enumerate(self.ordered(), start=1)]


def position_prompts(position: int, estimate: float) -> list[str]:
    which = {1: "queue_position_1", 2: "queue_position_2", 3: "queue_position_3"}.get(position, "queue_position_many")
    wait = "queue_wait_short" if estimate <= 300 else "queue_wait_medium" if estimate <= 900 else "queue_wait_long"
    return [which, wait]


def slot_delay(slot: str, *, hour_delay: float, until_next_opening: Callable[[], float | None]) -> float:
    if slot == "5min":
        return 300.0
    if slot == "hour":
        return hour_delay
    until = until_next_opening()
    return until if until is not None else 86400.0
