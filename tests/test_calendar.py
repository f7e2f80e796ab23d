"""The working-day calendar, on its own: Chinese holidays, make-up working days, working hours."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appealflow.models.clocks.calendar import WorkingCalendar, WorkingHours
from appealflow.models.clocks.deadlines import Duration

BEIJING = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkingCalendar()


def beijing(*args) -> datetime:
    return datetime(*args, tzinfo=BEIJING)


def test_five_working_days_from_the_friday_before_spring_festival_land_after_the_holiday():
    # 2026: Spring Festival off 15-23 February; Saturday 14 February is a make-up working day.
    received = beijing(2026, 2, 13, 10, 0)
    due = CALENDAR.add(received, Duration(5, "d"), working=True)
    # Fri 13th 10-17 (7h), Sat 14th (8h), Tue 24th, Wed 25th, Thu 26th (24h), Fri 27th 9-10 (1h).
    assert due == beijing(2026, 2, 27, 10, 0)
    without_makeup_day = WorkingCalendar(overrides=((date(2026, 2, 14), False),))
    assert without_makeup_day.add(received, Duration(5, "d"), working=True) == beijing(2026, 2, 28, 10, 0)


def test_an_urgent_deadline_runs_on_the_wall_clock_through_the_holiday():
    received = beijing(2026, 2, 15, 22, 0)
    assert CALENDAR.add(received, Duration(24, "h"), working=False) == received + timedelta(hours=24)


def test_national_day_and_its_make_up_saturday():
    assert not CALENDAR.is_working_day(date(2026, 10, 5))
    assert CALENDAR.is_working_day(date(2026, 10, 10))  # a Saturday, worked in place of a holiday
    assert not CALENDAR.is_working_day(date(2026, 10, 11))


def test_a_year_without_announced_make_up_days_still_computes():
    due = CALENDAR.add(beijing(2027, 12, 28, 16, 0), Duration(5, "d"), working=True)
    assert due.astimezone(BEIJING).year == 2028 and CALENDAR.is_working_time(due)


def test_the_admins_override_wins_over_the_package():
    announced = WorkingCalendar(overrides=((date(2027, 2, 20), True),))  # a Saturday, announced late
    assert announced.is_working_day(date(2027, 2, 20)) and not CALENDAR.is_working_day(date(2027, 2, 20))


def test_working_hours_are_configurable_and_checked():
    assert WorkingHours.parse("08:30-17:30").minutes == 540
    with pytest.raises(ValueError):
        WorkingHours.parse("17:00-09:00")


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC))
spans = st.integers(min_value=0, max_value=60 * 8 * 30)


@settings(max_examples=300, deadline=None)
@given(start=moments, minutes=spans.filter(lambda m: m > 0))
def test_a_deadline_is_never_on_non_working_time(start, minutes):
    assert CALENDAR.is_working_time(CALENDAR.add_working_minutes(start, minutes))


@settings(max_examples=300, deadline=None)
@given(start=moments, minutes=spans)
def test_the_working_time_to_a_deadline_is_what_was_added(start, minutes):
    due = CALENDAR.add_working_minutes(start, minutes)
    assert CALENDAR.working_minutes_between(start, due) == minutes


@settings(max_examples=200, deadline=None)
@given(start=moments, a=spans, b=spans)
def test_more_time_never_gives_an_earlier_deadline(start, a, b):
    low, high = sorted((a, b))
    assert CALENDAR.add_working_minutes(start, low) <= CALENDAR.add_working_minutes(start, high)


@settings(max_examples=200, deadline=None)
@given(start=moments, minutes=spans.filter(lambda m: m > 60), pause_after=spans, pause_for=spans)
def test_pausing_then_resuming_keeps_the_working_time_that_was_left(start, minutes, pause_after, pause_for):
    due = CALENDAR.add_working_minutes(start, minutes)
    paused = start + timedelta(minutes=pause_after)
    if paused >= due:
        return
    resumed = paused + timedelta(minutes=pause_for)
    moved = CALENDAR.add_working_minutes(due, CALENDAR.working_minutes_between(paused, resumed))
    left_before = CALENDAR.working_minutes_between(paused, due)
    assert CALENDAR.working_minutes_between(resumed, moved) == left_before
    assert CALENDAR.is_working_time(moved)
