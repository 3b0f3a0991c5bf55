"""The time source flows read (so tests can run on a virtual clock)."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (UTC). Only differences and record dates use it."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()
