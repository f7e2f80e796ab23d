"""Deadlines as a handler reads them on a page: each clock calm, at risk, overdue, paused or met."""

from dataclasses import dataclass
from datetime import datetime

from appealflow.models.appeals.enums import AppealStatus


@dataclass
class Clock:
    """One deadline as a handler reads it: calm grey, or coloured for what needs attention."""

    name: str
    due: datetime | None
    state: str  # "calm", "at_risk", "overdue", "paused", "met"
    minutes: int  # to the deadline (negative: past it)
    met_at: datetime | None = None  # when it was met, if it was (a met clock without it was stopped)

    @property
    def late_minutes(self) -> int:
        """How late it was met (0: in time)."""
        if self.met_at is None or self.due is None or self.met_at <= self.due:
            return 0
        return int((self.met_at - self.due).total_seconds() // 60)


# The events that meet each clock; a dispatch or a reopening starts them all afresh.
MET_BY = {"accept": ("accept",), "contact": ("contact",), "resolve": ("reply", "approve_reply", "answer")}
RESTARTS = ("route", "dispatch", "reopen")


def met_times(history: list[dict]) -> dict[str, datetime]:
    """When each clock was met, from the history (oldest first) as the API gives it."""
    met: dict[str, datetime] = {}
    for event in history:
        if event["kind"] in RESTARTS:
            met.clear()
        for name, kinds in MET_BY.items():
            if event["kind"] in kinds:
                at = event["at"]
                met[name] = datetime.fromisoformat(at) if isinstance(at, str) else at
    return met


def clocks(item: dict, now: datetime, risky: set[str], met: dict[str, datetime] | None = None) -> list[Clock]:
    """The deadlines of a queue item or appeal (as the API gives them) with the state each is in,
    and, with the appeal's `met_times`, when each met one was met."""
    paused = item.get("paused_at") is not None or item["status"] == AppealStatus.waiting_requester
    found = []
    for name, met_after in (("accept", ("dispatched",)), ("contact", ("dispatched", "accepted")),
                            ("resolve", ("dispatched", "accepted", "in_progress", "waiting_requester",
                                         "reviewing"))):
        raw = item.get(f"{name}_due_at")
        if raw is None and f"{name}_due_at" not in item:
            continue
        due = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
        minutes = int((due - now).total_seconds() // 60) if due else 0
        if due is None:
            state = "calm"
        elif item["status"] not in met_after:
            state = "met"
        elif paused:
            state = "paused"
        elif name == "resolve" and item.get("overdue") or minutes < 0:
            state = "overdue"
        elif name == "resolve" and item["code"] in risky:
            state = "at_risk"
        else:
            state = "calm"
        found.append(Clock(name, due, state, minutes, (met or {}).get(name) if state == "met" else None))
    return found
