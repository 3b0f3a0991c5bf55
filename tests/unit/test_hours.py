"""Seed 003's calendar: weekly hours, holidays, exceptions, the override, the next opening."""

from datetime import datetime, timezone

import pytest

from callflow.config import load
from callflow.core.errors import ConfigError
from callflow.core.hours import HoursConfig, parse_spans

PARIS_WEEK = HoursConfig(always_open=False, saturday="09:00-12:00", holidays=["2026-12-25"],
                         exceptions=["2026-12-24 09:00-12:00", "2026-12-28 closed"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_weekday_hours_in_paris_time():
    cal = PARIS_WEEK.calendar()
    # Monday 30 Nov 2026: Paris is UTC+1
    assert not cal.is_open(utc("2026-11-30T07:59"))
    assert cal.is_open(utc("2026-11-30T08:00"))  # 09:00 Paris
    assert cal.is_open(utc("2026-11-30T16:59"))
    assert not cal.is_open(utc("2026-11-30T17:00"))  # 18:00 Paris: closed (end is exclusive)
    assert not cal.is_open(utc("2026-11-29T10:00"))  # Sunday


def test_holidays_and_exceptions_win_over_the_week():
    cal = PARIS_WEEK.calendar()
    assert not cal.is_open(utc("2026-12-25T10:00"))  # Friday, holiday
    assert cal.is_open(utc("2026-12-24T10:00"))  # Thursday morning only
    assert not cal.is_open(utc("2026-12-24T12:00"))  # 13:00 Paris
    assert not cal.is_open(utc("2026-12-28T10:00"))  # Monday, exceptionally closed


def test_override_closes_or_opens_whatever_the_calendar_says():
    cal = PARIS_WEEK.calendar()
    assert not cal.is_open(utc("2026-11-30T10:00"), "closed")
    assert cal.is_open(utc("2026-11-29T03:00"), "open")
    assert cal.is_open(utc("2026-11-30T10:00"), "auto")


def test_next_opening():
    cal = PARIS_WEEK.calendar()
    assert cal.next_opening(utc("2026-11-30T10:00")) == utc("2026-11-30T10:00")  # open now
    assert cal.next_opening(utc("2026-11-30T18:30")) == utc("2026-12-01T08:00")  # evening → next morning
    assert cal.next_opening(utc("2026-12-05T12:00")) == utc("2026-12-07T08:00")  # Saturday noon → Monday
    assert cal.next_opening(utc("2026-12-24T12:00")) == utc("2026-12-26T08:00")  # Christmas → Saturday morning
    # closed by hand during opening hours: the calendar's next opening after today
    assert cal.next_opening(utc("2026-11-30T10:00"), "closed") == utc("2026-12-01T08:00")
    assert cal.seconds_until_opening(utc("2026-11-30T18:30")) == pytest.approx(13.5 * 3600)


def test_always_open_is_the_default():
    cal = HoursConfig().validate().calendar()
    assert cal.is_open(utc("2026-11-29T03:00"))
    assert not cal.is_open(utc("2026-11-29T03:00"), "closed")


def test_spans():
    assert [(s.start.hour, s.end.hour) for s in parse_spans("14:00-18:00, 09:00-12:00")] == [(9, 12), (14, 18)]
    assert parse_spans("closed") == [] and parse_spans("") == []
    for bad in ("9h-18h", "18:00-09:00", "09:00-12:00,11:00-13:00", "25:00-26:00"):
        with pytest.raises(ValueError):
            parse_spans(bad)


@pytest.mark.parametrize("key, value, named", [
    ("CALLFLOW_HOURS_MONDAY", "9h-18h", "hours.monday"),
    ("CALLFLOW_HOURS_TIMEZONE", "Mars/Olympus", "hours.timezone"),
    ("CALLFLOW_HOURS_HOLIDAYS", "25/12/2026", "hours.holidays"),
    ("CALLFLOW_HOURS_EXCEPTIONS", "2026-12-24 matin", "hours.exceptions"),
    ("CALLFLOW_HOURS_MESSAGE_MAX_SECONDS", "5", "hours.message_max_seconds"),
])
def test_bad_config_names_the_key(key, value, named, tmp_path):
    env = {"CALLFLOW_ARI_USER": "u", "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": str(tmp_path), key: value}
    with pytest.raises(ConfigError) as err:
        load(env=env)
    assert named in str(err.value)


def test_config_from_env(tmp_path):
    env = {"CALLFLOW_ARI_USER": "u", "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": str(tmp_path),
           "CALLFLOW_HOURS_ALWAYS_OPEN": "false", "CALLFLOW_HOURS_SUNDAY": "10:00-12:00",
           "CALLFLOW_HOURS_HOLIDAYS": "2026-12-25,2027-01-01"}
    cfg = load(env=env)
    cal = cfg.hours.calendar()
    assert cal.is_open(utc("2026-11-29T09:30")) and not cal.is_open(utc("2027-01-01T10:00"))
