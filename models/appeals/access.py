"""Who may see what. Authorization is a query: what lies outside it is simply not found (404)."""

from sqlalchemy import Select, false, or_, select, true
from sqlmodel import col

from appealflow.models.appeals.appeal import Appeal, AppealAssist
from appealflow.models.appeals.enums import DEPARTMENT_ROLES, OVERSIGHT_ROLES, AppealStatus, Role
from appealflow.models.appeals.tracking import mask_email, mask_name, mask_phone
from appealflow.models.city.people import Staff

DISPATCHER_STATUSES = (AppealStatus.triage, AppealStatus.returned, AppealStatus.reopened)


def assisted_by(department_code: str):
    return select(col(AppealAssist.appeal_id)).where(col(AppealAssist.department_code) == department_code)


def department_scopes(department_code: str) -> tuple:
    """A department's appeals: those it handles, and those it assists on."""
    return (col(Appeal.department_code) == department_code, col(Appeal.id).in_(assisted_by(department_code)))


def readable_condition(staff: Staff):
    """The WHERE clause of every appeal this member of staff may see."""
    if staff.role in OVERSIGHT_ROLES:
        return true()
    if staff.role in DEPARTMENT_ROLES:
        return or_(*department_scopes(staff.department_code or ""))
    if staff.role == Role.dispatcher:
        return col(Appeal.status).in_(DISPATCHER_STATUSES)
    if staff.role == Role.operator:
        return col(Appeal.operator_id) == staff.username
    return false()


def readable_appeals(staff: Staff) -> Select:
    return select(Appeal).where(readable_condition(staff))


# A duplicate joins an appeal a department is still working on, or one in the member of staff's
# own view; anything else (closed, merged, in arbitration, or no such code) is refused in the same
# words, so a merge cannot be used to learn which codes exist.
MERGE_PARENT_STATUSES = (AppealStatus.dispatched, AppealStatus.accepted, AppealStatus.in_progress,
                         AppealStatus.waiting_requester, AppealStatus.replied)


def merge_parent_condition(staff: Staff):
    return or_(readable_condition(staff), col(Appeal.status).in_(MERGE_PARENT_STATUSES))


def sees_personal_data(staff: Staff, appeal: Appeal) -> bool:
    """Only the department handling the appeal sees who the requester is."""
    return staff.role in DEPARTMENT_ROLES and appeal.department_code == staff.department_code


WITHHELD = "（姓名不公开）/ (name withheld)"


def requester_view(staff: Staff, appeal: Appeal) -> dict:
    if sees_personal_data(staff, appeal):
        # The requester asked that the department not see their name: it replies by phone or e-mail.
        name = WITHHELD if appeal.name_withheld and appeal.requester_name else appeal.requester_name
        return {"name": name, "phone": appeal.requester_phone, "email": appeal.requester_email}
    return {"name": mask_name(appeal.requester_name), "phone": mask_phone(appeal.requester_phone),
            "email": mask_email(appeal.requester_email)}
