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


def clocks(item: dict, now: datetime, risky: set[str]) -> list[Clock]:
    """The deadlines of a queue item or appeal (as the API gives them) with the state each is in."""
    paused = item.get("paused_at") is not None or item["status"] == AppealStatus.waiting_requester
    found = []
    for name, met_after in (("accept", ("dispatched",)), ("contact", ("dispatched", "accepted")),
                            ("resolve", ("dispatched", "accepted", "in_progress", "waiting_requester"))):
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
        found.append(Clock(name, due, state, minutes))
    return found
