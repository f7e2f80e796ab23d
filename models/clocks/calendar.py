"""The working-day calendar: working hours, Chinese public holidays and the weekend days declared
working days in their place (调休). Pure functions over a holiday source and overrides."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlmodel import Field, Session, SQLModel, select

from appealflow.models.clocks.deadlines import Duration

MAX_DAYS_SEARCHED = 3660  # ten years: a deadline further than that is a configuration error


@dataclass(frozen=True)
class WorkingHours:
    start: time = time(9, 0)
    end: time = time(17, 0)

    @property
    def minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """'09:00-17:00'."""
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"working hours {text!r}: expected HH:MM-HH:MM") from None
        if end <= start:
            raise ValueError(f"working hours {text!r} end before they start")
        return cls(start, end)


class CalendarOverride(SQLModel, table=True):
    """An admin's word on one day: announced make-up working days, or extra days off."""

    __tablename__ = "calendar_override"

    day: date = Field(primary_key=True)
    working: bool
    note: str | None = Field(default=None, max_length=200)


@lru_cache(maxsize=64)
def _china(year: int):
    return holidays.country_holidays("CN", years=year)


def is_chinese_working_day(day: date) -> bool:
    """From the `holidays` package: public holidays off, announced make-up weekend days on.
    A year it has no announcement for gets its rule-based holidays, never an error."""
    return _china(day.year).is_working_day(day)


@dataclass(frozen=True)
class WorkingCalendar:
    """Deadline arithmetic on working time; `overrides` (date -> working?) are the admin's word
    on days the package does not know yet, and win over it."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    hours: WorkingHours = field(default_factory=WorkingHours)
    overrides: tuple[tuple[date, bool], ...] = ()
    base: Callable[[date], bool] = is_chinese_working_day

    def is_working_day(self, day: date) -> bool:
        for when, working in self.overrides:
            if when == day:
                return working
        return self.base(day)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        return (datetime.combine(day, self.hours.start, self.zone), datetime.combine(day, self.hours.end, self.zone))

    def working_days(self, start: date) -> Iterable[date]:
        day = start
        for _ in range(MAX_DAYS_SEARCHED):
            if self.is_working_day(day):
                yield day
            day += timedelta(days=1)
        raise ValueError(f"no working day within {MAX_DAYS_SEARCHED} days of {start}")

    def add_working_minutes(self, start: datetime, minutes: float) -> datetime:
        """The moment `minutes` of working time after `start` (which may be outside working time)."""
        return self.add_working_time(start, timedelta(minutes=minutes))

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """Exact to the microsecond: a start at 16:59:30.5 has 29.5 s left that day, not 0 minutes
        (rounding the remainder down made deadlines across a day boundary up to a minute late)."""
        local = start.astimezone(self.zone)
        remaining = amount
        for day in self.working_days(local.date()):
            opens, closes = self._window(day)
            begin = max(local, opens)
            if begin >= closes:
                continue
            available = closes - begin
            if remaining <= available:
                return (begin + remaining).astimezone(UTC)
            remaining -= available
        raise AssertionError("unreachable")

    def working_minutes_between(self, start: datetime, end: datetime) -> int:
        """Whole working minutes in [start, end); zero if end is not after start."""
        return int(self.working_time_between(start, end).total_seconds() // 60)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end), exact; zero if end is not after start."""
        if end <= start:
            return timedelta(0)
        local_start, local_end = start.astimezone(self.zone), end.astimezone(self.zone)
        total = timedelta(0)
        for day in self.working_days(local_start.date()):
            if day > local_end.date():
                break
            opens, closes = self._window(day)
            lo, hi = max(opens, local_start), min(closes, local_end)
            if hi > lo:
                total += hi - lo
        return total

    def add(self, start: datetime, duration: Duration, *, working: bool) -> datetime:
        if not working:
            minutes = {"m": 1, "h": 60, "d": 24 * 60}[duration.unit] * duration.amount
            return start + timedelta(minutes=minutes)
        per_unit = {"m": 1, "h": 60, "d": self.hours.minutes}[duration.unit]
        return self.add_working_minutes(start, duration.amount * per_unit)

    def is_working_time(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        if not self.is_working_day(local.date()):
            return False
        opens, closes = self._window(local.date())
        return opens <= local <= closes


def load_calendar(session: Session, *, hours: str, zone: str) -> WorkingCalendar:
    """The configured calendar with the admin's overrides from the database."""
    overrides = tuple((o.day, o.working) for o in session.exec(select(CalendarOverride)))
    return WorkingCalendar(zone=ZoneInfo(zone), hours=WorkingHours.parse(hours), overrides=overrides)
