"""What every action on an appeal shares: its input, its effects, the step being taken, and the
refusals any handler may raise. The handlers are in workbench.py (staff) and requester.py."""

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy import select
from sqlmodel import Session, col

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.lifecycle import Action, Transition, apply_transitions
from appealflow.models.city.department import Department
from appealflow.models.city.people import Staff
from appealflow.models.clocks.calendar import WorkingCalendar
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import stored_id
from appealflow.models.telling.audience import Event, Message, assignees, messages_for


class ActionRefused(Refused):
    """The request names something that does not hold (a department, a parent, a reason)."""

    field: str

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)


class NotYourDepartment(Refused):
    """Readable (an assisting department) but not this department's to act on."""

    kind = Kind.forbidden


class StaleVersion(Refused):
    """Someone changed the appeal since the version the action names."""

    kind = Kind.conflict

    def __init__(self, appeal: Appeal):
        super().__init__(f"the appeal changed since you saw it: the appeal is now {appeal.status} at version "
                         f"{appeal.version}")
        self.status = appeal.status
        self.version = appeal.version

    def facts(self) -> dict:
        return {"status": self.status, "version": self.version}


@dataclass
class ActionInput:
    version: int
    reason: str | None = None
    text: str | None = None
    department: str | None = None
    assisting: list[str] = field(default_factory=list)
    parent: str | None = None
    extra: str | None = None
    extension_id: int | None = None
    approve: bool | None = None
    attachments: list[dict] = field(default_factory=list)
    policy_answer: int | None = None
    solved: bool | None = None
    satisfaction: str | None = None
    assignee: str | None = None
    method: str | None = None
    outcome: str | None = None
    contacted_at: datetime | None = None


@dataclass
class Effects:
    """What an action does beyond its status: columns, the event's detail, messages, clocks."""

    changes: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    clocks: list[dict] | None = None  # new clocks to start in place of the running ones


class DepartmentsOf:
    """Departments looked up as messages need them, for the one appeal an action touches."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, code: str, /) -> Department | None:
        return self._session.get(Department, code) if code else None


@dataclass
class Step:
    """One action being taken: who, on what, with what, when."""

    session: Session
    staff: Staff
    appeal: Appeal
    action: Action
    given: ActionInput
    now: datetime
    calendar: WorkingCalendar

    @property
    def appeal_id(self) -> int:
        return stored_id(self.appeal)

    @property
    def key(self) -> str:
        return f"v{self.appeal.version}"  # one message per action taken, however often a request is retried

    @cached_property
    def departments(self) -> DepartmentsOf:
        return DepartmentsOf(self.session)

    def followers(self) -> list[Appeal]:
        """Appeals merged into this one: their requesters hear what this one's hears."""
        return list(self.session.execute(select(Appeal).where(
            col(Appeal.parent_id) == self.appeal_id, col(Appeal.status) == AppealStatus.merged)).scalars())

    def tell(self, event: Event, **facts) -> list[Message]:
        owner = assignees(self.session, [self.appeal.assignee]).get(self.appeal.assignee or "")
        return messages_for(event, self.appeal, key=self.key, departments=self.departments, facts=facts,
                            followers=self.followers(), assignee=owner)


def require(value, field: str, message: str):
    """The value, or a refusal naming the field to fill."""
    if not value:
        raise ActionRefused(field, message)
    return value


def named_department(session: Session, code: str | None, field: str = "department") -> Department:
    """The department a request names; refused if none or unknown."""
    department = session.get(Department, require(code, field, "name a department"))
    if department is None:
        raise ActionRefused(field, f"unknown department {code!r}")
    return department


RELEASED_BY = "system:workbench"


def release_merged(s: Step) -> None:
    """The appeals merged into one that closes without an answer (withdrawn by its requester, found
    invalid) go back to triage: their requesters still want one, and a merged appeal only follows
    its parent, so left merged they would wait for ever. A dispatcher places them again."""
    children = s.session.execute(select(col(Appeal.id), col(Appeal.version)).where(
        col(Appeal.parent_id) == s.appeal_id, col(Appeal.status) == AppealStatus.merged)).all()
    why = {Action.withdraw: "主件已由诉求人撤回 / the appeal it was merged into was withdrawn",
           Action.invalidate: "主件被认定无效 / the appeal it was merged into was found invalid"}[s.action]
    apply_transitions(s.session, [
        Transition(child_id, version, AppealStatus.merged, Action.release, RELEASED_BY, {"parent_id": None},
                   {"parent": s.appeal.code, "reason": why}) for child_id, version in children], now=s.now)
