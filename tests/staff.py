"""Staff and appeals in a chosen state, for workbench tests."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal, ExtensionRequest, next_due
from appealflow.models.appeals.enums import Role
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.city.people import StaffUser, add_user
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

PASSWORD = "correct-horse-battery"
HOME = "urban_management"
ELSEWHERE = "housing"
ACCOUNTS = {
    "operator": (Role.operator, None),
    "dispatcher": (Role.dispatcher, None),
    "handler": (Role.handler, HOME),
    "department_head": (Role.department_head, HOME),
    "supervisor": (Role.supervisor, None),
    "admin": (Role.admin, None),
    "other_handler": (Role.handler, ELSEWHERE),
}


def create_staff(url: str | None = None) -> None:
    """The accounts above, where they are missing (the test databases are seeded with them)."""
    with session_scope(url or get_settings().sqlalchemy_url) as session:
        existing = set(session.execute(select(StaffUser.username)).scalars())
        for username, (role, department) in ACCOUNTS.items():
            if username not in existing:
                add_user(session, username=username, password=PASSWORD, role=role, department_code=department)


def sign_in(api: httpx.Client, username: str) -> dict[str, str]:
    response = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def appeal_in(status: str, *, department: str | None = HOME, returns: int = 0, extension: bool = False,
              phone: str = "13912345678", due_in: timedelta = timedelta(days=5),
              accept_in: timedelta = timedelta(hours=2)) -> tuple[str, int]:
    """An appeal put straight into `status`, as if it had got there; its code and version."""
    now = utcnow()
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal = receive(session, NewAppeal(
            channel="web", appeal_type="complaint", priority="normal", title="路灯不亮", text="小区门口路灯坏了一个月",
            category_code="urban_management", district="shinan", street="badaguan", requester_name="赵小明",
            requester_phone=phone, requester_email="zhao@example.test"), now=now, actor="requester")
        dispatched = status not in ("received", "triage")
        dues = {"accept_due_at": now + min(accept_in, due_in) if dispatched else None,
                "resolve_due_at": now + due_in if dispatched else None}
        session.execute(update(Appeal).where(Appeal.id == appeal.id).values(
            status=status, version=3, return_count=returns,
            department_code=department if dispatched and status not in ("returned", "reopened", "arbitration")
            else None,
            dispatched_at=now if dispatched else None, **dues, next_due_at=next_due(status, dues),
            paused_at=now if status == "waiting_requester" else None))
        if extension:
            session.add(ExtensionRequest(appeal_id=appeal.id, requested_by="handler:x", reason="需要现场勘查",
                                         extra="3d"))
        return appeal.code, 3
