"""Seed 003 « permanence téléphonique »: when the line is open, when it is closed.

A pure calendar (no I/O): weekly hours, public holidays, dated exceptions, and
the supervisor's override (`callflow hours close|open|auto`, read by the
controller for every new call). Out of hours a caller hears the personalised
message and may leave a message (callflow/flows/after_hours.py); « à
l'ouverture » callbacks are due at `next_opening`.

Hand-written because no maintained library reads "09:00-12:00,14:00-18:00" +
holidays + exceptions in a time zone without pulling in a scheduler; it is
a few dozen lines of `datetime` with `zoneinfo`.

The configuration section `[hours]`:

    [hours]
    always_open = false              # the default (true) keeps the line open day and night
    timezone = "Europe/Paris"
    monday = "09:00-18:00"           # one or more spans, "" = closed all day
    saturday = "09:00-12:00"
    sunday = ""
    holidays = ["2026-12-25", "2027-01-01"]
    exceptions = ["2026-12-24 09:00-12:00", "2026-12-31 closed"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflow.core.errors import ConfigError

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
CLOSED_WORDS = ("closed", "fermé", "ferme", "")

#: The supervisor's override: "auto" follows the calendar.
OVERRIDES = ("auto", "open", "closed")


@dataclass(frozen=True)
class Span:
    start: time
    end: time  # exclusive; 24:00 is written as time.max

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end


def parse_spans(text: str) -> list[Span]:
    """ "09:00-12:00,14:00-18:00" → spans; "" or "closed" → []. ValueError with the bad part."""
    if text.strip().lower() in CLOSED_WORDS:
        return []
    spans = []
    for part in text.split(","):
        m = _SPAN.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{part.strip()!r} is not a time of day")
        start = time(h1, m1)
        end = time.max if h2 == 24 else time(h2, m2)
        if end <= start:
            raise ValueError(f"{part.strip()!r} ends before it starts")
        spans.append(Span(start, end))
    spans.sort(key=lambda s: s.start)
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            raise ValueError(f"spans overlap in {text!r}")
    return spans


@dataclass(frozen=True)
class Calendar:
    tz: ZoneInfo
    weekly: tuple[tuple[Span, ...], ...]  # index 0 = Monday
    holidays: frozenset[date] = frozenset()
    exceptions: dict[date, tuple[Span, ...]] = field(default_factory=dict)
    always_open: bool = False

    def spans_on(self, day: date) -> tuple[Span, ...]:
        if day in self.exceptions:
            return self.exceptions[day]
        if day in self.holidays:
            return ()
        return self.weekly[day.weekday()]

    def is_open(self, at: datetime, override: str = "auto") -> bool:
        if override == "open":
            return True
        if override == "closed":
            return False
        if self.always_open:
            return True
        local = _aware(at).astimezone(self.tz)
        return any(s.contains(local.time()) for s in self.spans_on(local.date()))

    def next_opening(self, at: datetime, override: str = "auto") -> datetime | None:
        """When the line opens (now if open); None when it never opens in the next year.

        A "closed" override has no end date: the calendar's next opening after
        today is the best promise we can make (the supervisor reopens by hand).
        """
        at = _aware(at)
        if override != "closed" and self.is_open(at, override):
            return at
        if self.always_open:
            return at + timedelta(days=1) if override == "closed" else at
        local = at.astimezone(self.tz)
        for offset in range(0, 367):
            day = local.date() + timedelta(days=offset)
            for span in self.spans_on(day):
                start = datetime.combine(day, span.start, self.tz)
                if override == "closed" and offset == 0:
                    continue
                if start > local or (offset == 0 and span.contains(local.time()) and override != "closed"):
                    return start.astimezone(timezone.utc)
        return None

    def seconds_until_opening(self, at: datetime, override: str = "auto") -> float | None:
        opening = self.next_opening(at, override)
        return None if opening is None else max(0.0, (opening - _aware(at)).total_seconds())

    def describe(self) -> list[str]:
        lines = []
        for name, spans in zip(DAYS, self.weekly):
            lines.append(f"{name:<10} " + (", ".join(f"{s.start:%H:%M}-{'24:00' if s.end == time.max else s.end.strftime('%H:%M')}"
                                                      for s in spans) or "fermé"))
        return lines


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


@dataclass
class HoursConfig:
    """`[hours]`: the opening hours (seed 003). The default keeps the line open day and night."""

    always_open: bool = True
    timezone: str = "Europe/Paris"
    monday: str = "09:00-18:00"  # seed 000's email: « Chat en ligne (Disponible 9h–18h) »
    tuesday: str = "09:00-18:00"
    wednesday: str = "09:00-18:00"
    thursday: str = "09:00-18:00"
    friday: str = "09:00-18:00"
    saturday: str = ""
    sunday: str = ""
    holidays: list[str] = field(default_factory=list)  # "2026-12-25"
    exceptions: list[str] = field(default_factory=list)  # "2026-12-24 09:00-12:00", "2026-12-31 closed"
    message_max_seconds: float = 180.0  # the longest message a caller may leave
    message_silence_seconds: float = 8.0  # silence that ends a message (the caller stopped talking)

    def validate(self) -> "HoursConfig":
        self.calendar()
        if not 30 <= self.message_max_seconds <= 600:
            raise ConfigError("hours.message_max_seconds", "seconds between 30 and 600", self.message_max_seconds)
        if not 3 <= self.message_silence_seconds <= 30:
            raise ConfigError("hours.message_silence_seconds", "seconds between 3 and 30", self.message_silence_seconds)
        return self

    def calendar(self) -> Calendar:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("hours.timezone", "an IANA time zone such as Europe/Paris", self.timezone) from None
        weekly = []
        for day in DAYS:
            try:
                weekly.append(tuple(parse_spans(getattr(self, day))))
            except ValueError as exc:
                raise ConfigError(f"hours.{day}", f'spans such as "09:00-12:00,14:00-18:00" or "" ({exc})',
                                  getattr(self, day)) from None
        holidays = set()
        for text in self.holidays:
            try:
                holidays.add(date.fromisoformat(text.strip()))
            except ValueError:
                raise ConfigError("hours.holidays", 'dates such as "2026-12-25"', text) from None
        exceptions: dict[date, tuple[Span, ...]] = {}
        for text in self.exceptions:
            day_text, _, spans_text = text.strip().partition(" ")
            try:
                exceptions[date.fromisoformat(day_text)] = tuple(parse_spans(spans_text))
            except ValueError as exc:
                raise ConfigError("hours.exceptions",
                                  f'entries such as "2026-12-24 09:00-12:00" or "2026-12-31 closed" ({exc})', text) from None
        return Calendar(tz, tuple(weekly), frozenset(holidays), exceptions, self.always_open)
