"""How routing did in production, for supervisors: of the appeals received in a period, per category
and per department, the share routing placed by itself, the share it sent to triage, and the share of
the ones it placed that were returned, dispatched again or merged afterwards: the error rate as the
departments and dispatchers found it, not as an evaluation set says. Counts only, no person."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.oversight.supervision import ratio
from appealflow.models.routing.classifier_store import ClassifierVersion

DECISIONS = ("route", "triage")  # routing's own first word on an appeal
CORRECTIONS = ("return", "return_to_supervisor", "dispatch", "merge")  # someone placing it otherwise, later

FORMULAS = {
    "auto_share": "appeals routing placed by itself / appeals routing decided (received in the period)",
    "triage_share": "appeals routing sent to triage / appeals routing decided",
    "corrected_share": "appeals routing placed that were later returned, dispatched again or merged / appeals "
                       "routing placed",
}


@dataclass
class Tally:
    key: str
    decided: int = 0
    auto: int = 0
    triage: int = 0
    corrected: int = 0

    def shares(self) -> dict:
        return {**asdict(self), "auto_share": ratio(self.auto, self.decided),
                "triage_share": ratio(self.triage, self.decided), "corrected_share": ratio(self.corrected, self.auto)}


def routing_quality(session: Session, start: datetime, end: datetime) -> dict:
    """Per category (the one the appeal has now), per department (the first one it was sent to, by
    routing or by hand) and per model version: how routing decided the appeals received in
    [start, end), and how many of its placements did not hold. With the model versions' own figures."""
    rows = session.execute(
        select(col(AppealEvent.appeal_id), col(AppealEvent.kind), col(AppealEvent.detail), col(Appeal.category_code))
        .join(Appeal, col(Appeal.id) == col(AppealEvent.appeal_id))
        .where(col(Appeal.received_at) >= start, col(Appeal.received_at) < end,
               col(AppealEvent.kind).in_((*DECISIONS, *CORRECTIONS)))
        .order_by(col(AppealEvent.appeal_id), col(AppealEvent.id))).all()
    first: dict[int, tuple[str, dict, str | None]] = {}
    department: dict[int, str] = {}
    corrected: set[int] = set()
    for appeal_id, kind, detail, category in rows:
        detail = detail or {}
        if kind in DECISIONS and appeal_id not in first:
            first[appeal_id] = (kind, detail, category)
        if kind in ("route", "dispatch") and detail.get("department"):
            department.setdefault(appeal_id, detail["department"])
        if kind in CORRECTIONS and appeal_id in first and first[appeal_id][0] == "route":
            corrected.add(appeal_id)
    by: dict[str, dict[str, Tally]] = {"category": {}, "department": {}, "model": {}}
    for appeal_id, (kind, detail, category) in first.items():
        keys = {"category": category or "-", "department": department.get(appeal_id, "-"),
                "model": detail.get("model_version") or ("rules" if detail.get("routed_by") == "rule" else "-")}
        for dimension, key in keys.items():
            tally = by[dimension].setdefault(key, Tally(key))
            tally.decided += 1
            tally.auto += kind == "route"
            tally.triage += kind == "triage"
            tally.corrected += appeal_id in corrected
    overall = Tally("all", decided=len(first), auto=sum(k == "route" for k, _, _ in first.values()),
                    triage=sum(k == "triage" for k, _, _ in first.values()), corrected=len(corrected))
    return {
        "overall": overall.shares(),
        **{dimension: sorted((t.shares() for t in tallies.values()), key=lambda t: (-t["decided"], t["key"]))
           for dimension, tallies in by.items()},
        "versions": model_versions(session), "formulas": FORMULAS,
    }


def model_versions(session: Session) -> list[dict]:
    """Every stored routing model: its status, what it was trained on, and its held-out figures."""
    return [dict(version=v.label, status=v.status, embedder=v.embedder, trained_on=v.trained_on,
                 created_at=v.created_at.isoformat(), promoted_at=v.promoted_at.isoformat() if v.promoted_at else None,
                 metrics=v.metrics)
            for v in session.exec(select(ClassifierVersion).order_by(col(ClassifierVersion.id).desc()))]
