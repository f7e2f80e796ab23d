"""Supervision orders (督办单): a supervisor tells a department to act on an appeal or a group of
appeals by a deadline; the department answers; whether it answered in time is counted. Each order
and each answer is also an event in the history of every appeal it names (for staff: not in the
citizen's allow-list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.city.department import Department
from appealflow.models.city.people import Staff
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import UTCDateTime

MAX_APPEALS = 200


class SupervisionOrder(SQLModel, table=True):
    __tablename__ = "supervision_order"

    id: int | None = Field(default=None, primary_key=True)
    department_code: str = Field(foreign_key="department.code", max_length=40, index=True)
    appeals: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # their codes
    subject: str = Field(sa_column=Column(Text, nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    issued_by: str = Field(max_length=100)
    issued_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    answer: str | None = Field(default=None, sa_column=Column(Text))
    answered_by: str | None = Field(default=None, max_length=100)
    answered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class OrderRefused(Refused):
    def __init__(self, field: str, message: str, kind: Kind = Kind.invalid):
        super().__init__(message, field=field)
        self.kind = kind


def issue(session: Session, staff: Staff, *, department: str, codes: list[str], subject: str, due_at: datetime,
          now: datetime) -> SupervisionOrder:
    """A new order; the caller commits. Refused: an unknown department or appeal, a past deadline."""
    subject = subject.strip()
    if not subject:
        raise OrderRefused("subject", "写明督办事项 / say what the department is to do")
    if session.get(Department, department) is None:
        raise OrderRefused("department", f"没有这个部门 / no department {department!r}")
    if due_at <= now:
        raise OrderRefused("due", "督办时限须在将来 / the deadline must be in the future")
    codes = list(dict.fromkeys(c.strip().upper() for c in codes if c.strip()))
    if not codes or len(codes) > MAX_APPEALS:
        raise OrderRefused("appeals", f"name 1 to {MAX_APPEALS} appeals")
    appeals = session.execute(select(Appeal).where(col(Appeal.code).in_(codes))).scalars().all()
    missing = sorted(set(codes) - {a.code for a in appeals})
    if missing:
        raise OrderRefused("appeals", f"没有这些诉求 / no such appeals: {', '.join(missing)}")
    order = SupervisionOrder(department_code=department, appeals=codes, subject=subject, due_at=due_at,
                             issued_by=staff.actor, issued_at=now)
    session.add(order)
    session.flush()
    for appeal in appeals:
        session.add(AppealEvent(appeal_id=appeal.id, kind="supervision_order", actor=staff.actor, at=now,
                                from_status=appeal.status, to_status=appeal.status,
                                detail={"order": order.id, "department": department, "subject": subject,
                                        "due_at": due_at.isoformat()}))
    return order


def answer(session: Session, staff: Staff, order_id: int, text: str, *, now: datetime) -> SupervisionOrder:
    """The department's answer, once; the caller commits."""
    order = session.get(SupervisionOrder, order_id)
    if order is None or staff.department_code != order.department_code:
        raise OrderRefused("order", "没有这张督办单 / no such supervision order", Kind.not_found)
    if order.answered_at is not None:
        raise OrderRefused("order", "这张督办单已回复 / this order was answered already", Kind.conflict)
    text = text.strip()
    if not text:
        raise OrderRefused("answer", "写明办理情况 / say what was done")
    order.answer, order.answered_by, order.answered_at = text, staff.actor, now
    on_time = now <= order.due_at
    for appeal in session.execute(select(Appeal).where(col(Appeal.code).in_(order.appeals))).scalars():
        session.add(AppealEvent(appeal_id=appeal.id, kind="order_answered", actor=staff.actor, at=now,
                                from_status=appeal.status, to_status=appeal.status,
                                detail={"order": order.id, "answer": text, "on_time": on_time}))
    return order


def order_view(order: SupervisionOrder) -> dict:
    """An order as the API shows it; who issued and answered it by their account name, not a role prefix."""
    return {"id": order.id, "department": order.department_code, "appeals": order.appeals, "subject": order.subject,
            "due_at": order.due_at.isoformat(), "issued_by": order.issued_by.split(":", 1)[-1],
            "issued_at": order.issued_at.isoformat(), "answer": order.answer,
            "answered_at": order.answered_at.isoformat() if order.answered_at else None,
            "on_time": None if order.answered_at is None else order.answered_at <= order.due_at}


def open_for(session: Session, department: str) -> list[SupervisionOrder]:
    """A department's unanswered orders, the nearest deadline first: the top of its queue."""
    return list(session.execute(select(SupervisionOrder).where(
        col(SupervisionOrder.department_code) == department, col(SupervisionOrder.answered_at).is_(None))
        .order_by(col(SupervisionOrder.due_at))).scalars())


@dataclass
class OrderFigures:
    department: str
    issued: int = 0
    answered: int = 0
    answered_on_time: int = 0
    open_late: int = 0

    def as_row(self) -> dict:
        return {"department": self.department, "issued": self.issued, "answered": self.answered,
                "answered_on_time": self.answered_on_time, "open_late": self.open_late,
                "order_on_time_rate": round(self.answered_on_time / self.answered, 4) if self.answered else None}


def order_figures(session: Session, start: datetime, end: datetime, now: datetime) -> list[dict]:
    """Per department, orders issued in [start, end): answered, answered in time, still open past due."""
    figures: dict[str, OrderFigures] = {}
    for order in session.execute(select(SupervisionOrder).where(
            col(SupervisionOrder.issued_at) >= start, col(SupervisionOrder.issued_at) < end)).scalars():
        f = figures.setdefault(order.department_code, OrderFigures(order.department_code))
        f.issued += 1
        if order.answered_at is not None:
            f.answered += 1
            f.answered_on_time += order.answered_at <= order.due_at
        elif order.due_at < now:
            f.open_late += 1
    return [figures[code].as_row() for code in sorted(figures)]
