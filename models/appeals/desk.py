"""What the workbench shows beside an appeal: the requester's other appeals (重复来电), the reply
waiting for review, the department's canned replies filled in for it, whom a head may assign it to."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from appealflow.models.appeals.access import readable_condition
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import DEPARTMENT_ROLES, AppealStatus, Role
from appealflow.models.appeals.replies import canned_for
from appealflow.models.appeals.tracking import local_time
from appealflow.models.appeals.workbench import reviews_replies, submitted_reply
from appealflow.models.city.department import Category, Department
from appealflow.models.city.people import Staff, StaffUser

EARLIER_WINDOW = timedelta(days=365)
EARLIER_LIMIT = 10


def same_requester(session: Session, staff: Staff, appeal: Appeal, *, now: datetime) -> list[Appeal]:
    """The same requester's other appeals of the last 12 months (same phone or e-mail), newest first,
    among those this member of staff may see at all."""
    same = [col(Appeal.requester_phone) == appeal.requester_phone] if appeal.requester_phone else []
    same += [col(Appeal.requester_email) == appeal.requester_email] if appeal.requester_email else []
    if not same:
        return []
    return list(session.exec(select(Appeal).where(
        or_(*same), col(Appeal.id) != appeal.id, col(Appeal.received_at) >= now - EARLIER_WINDOW,
        readable_condition(staff)).order_by(col(Appeal.received_at).desc()).limit(EARLIER_LIMIT)))


@dataclass
class Desk:
    reviews_replies: bool = False
    reply_for_review: dict | None = None
    canned_replies: list[dict] = field(default_factory=list)
    colleagues: list[dict] = field(default_factory=list)


def _lineage(session: Session, code: str | None) -> list[str]:
    chain: list[str] = []
    while code and code not in chain:
        chain.append(code)
        found = session.get(Category, code)
        code = found.parent_code if found else None
    return chain


def desk_for(session: Session, staff: Staff, appeal: Appeal, *, zone: str) -> Desk:
    """The department's tools for this appeal, for its own staff; nothing for anyone else."""
    if staff.role not in DEPARTMENT_ROLES or staff.department_code != appeal.department_code:
        return Desk()
    department = session.get(Department, appeal.department_code)
    desk = Desk(reviews_replies=reviews_replies(session, appeal.department_code))
    if appeal.status == AppealStatus.reviewing:
        waiting = submitted_reply(session, appeal.id or 0)
        desk.reply_for_review = {"result": waiting.get("result"), "by": waiting.get("by")}
    language = appeal.language or "zh"
    values = {"title": appeal.title, "code": appeal.code,
              "deadline": local_time(appeal.resolve_due_at, language, zone) if appeal.resolve_due_at else "",
              "department": (department.name_zh if language == "zh" else department.name_en) if department else ""}
    desk.canned_replies = canned_for(session, appeal, _lineage(session, appeal.category_code), values)
    if staff.role == Role.department_head:
        users = session.exec(select(StaffUser).where(col(StaffUser.department_code) == appeal.department_code,
                                                     col(StaffUser.active)).order_by(col(StaffUser.username)))
        desk.colleagues = [{"username": u.username, "name": u.display_name, "role": u.role} for u in users]
    return desk
