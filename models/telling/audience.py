"""Who hears what: one table of the events people are told about, and who is told.

The domain decides the recipients and the facts; `notifications/` decides the words, in the
recipient's language, when it delivers. So a rule like "a merged appeal's requester hears what its
parent's hears" lives here once, for every event.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.city.department import Department
from appealflow.models.city.names import category_name, location_name
from appealflow.models.city.people import StaffUser
from appealflow.models.storage.columns import stored_id

SUPERVISION_CENTRE = "hotline_centre"


class Audience(StrEnum):
    requester = "requester"    # the citizen, and the citizens of every appeal merged into this one
    department = "department"  # the department handling the appeal
    assisting = "assisting"    # each assisting department (协办)
    helper = "helper"          # the one department just asked to assist
    centre = "centre"          # the 12345 supervision centre
    parent = "parent"          # the level above the handling department (督办)
    assignee = "assignee"      # the one handler the appeal is given to, on the channel their account names


class Event(StrEnum):
    received = "received"
    triaged = "triaged"
    dispatched = "dispatched"
    transferred = "transferred"  # dispatched again after a return: the requester hears where it went
    information_requested = "information_requested"
    replied = "replied"
    merged = "merged"
    invalidated = "invalidated"
    returned = "returned"
    extension_decided = "extension_decided"
    assist_requested = "assist_requested"
    escalation_warning = "escalation_warning"
    escalation_breach = "escalation_breach"
    escalation_severe = "escalation_severe"
    reopened = "reopened"                        # unsatisfied: back to the same department
    reopened_to_supervisor = "reopened_to_supervisor"  # unsatisfied twice: a supervisor decides
    closed = "closed"                            # rated and closed, or closed as not rated
    withdrawn = "withdrawn"
    information_added = "information_added"      # the requester answered or added something
    assigned = "assigned"                        # given to one handler of the department
    reply_returned = "reply_returned"            # the head sent a reply back to be reworked


A = Audience
# One message per thing the requester needs to know: received, dispatched (once; later "transferred"),
# information requested, the reply with its rating link, reopened, closed. Triage and returns are the
# centre's business: the requester already heard "received" and next hears where the appeal went.
WHO_HEARS: dict[Event, tuple[Audience, ...]] = {
    Event.received: (A.requester,),
    Event.triaged: (),
    Event.dispatched: (A.department, A.assisting, A.requester),
    Event.transferred: (A.department, A.assisting, A.requester),
    Event.information_requested: (A.requester,),
    Event.replied: (A.requester,),
    Event.merged: (A.requester,),
    Event.invalidated: (A.requester,),
    Event.returned: (A.centre,),
    Event.extension_decided: (A.department,),
    Event.assist_requested: (A.helper,),
    Event.escalation_warning: (A.department, A.assignee),
    Event.escalation_breach: (A.department, A.centre),
    Event.escalation_severe: (A.department, A.centre, A.parent),
    Event.reopened: (A.department, A.requester),
    Event.reopened_to_supervisor: (A.department, A.centre, A.requester),
    Event.closed: (A.requester,),
    Event.withdrawn: (A.department, A.requester),
    Event.information_added: (A.department, A.assignee),
    Event.assigned: (A.assignee,),
    Event.reply_returned: (A.assignee,),
}
REQUESTER_EVENTS = frozenset(e for e, who in WHO_HEARS.items() if A.requester in who)


@dataclass(frozen=True)
class Message:
    """One thing to tell one recipient of one appeal; `key` makes it once per occurrence."""

    appeal_id: int
    key: str
    event: Event
    audience: Audience
    recipient: str
    targets: tuple[str, ...]
    facts: dict = field(default_factory=dict)
    language: str = "zh"


def requester_targets(appeal: Appeal) -> tuple[str, ...]:
    """Where the requester hears from us: e-mail if given, else SMS to their phone."""
    if appeal.requester_email:
        return (f"mailto:{appeal.requester_email}",)
    return (f"sms:{appeal.requester_phone}",) if appeal.requester_phone else ()


def names(department: Department) -> dict:
    return {"zh": department.name_zh, "en": department.name_en}


def appeal_facts(appeal: Appeal) -> dict:
    """What every message about an appeal may say; nothing personal (departments read these too)."""
    return dict(code=appeal.code, title=appeal.title, appeal_type=appeal.appeal_type, priority=appeal.priority,
                category=category_name(appeal.category_code),
                location=location_name(appeal.district, appeal.street, appeal.address))


def when(moment: datetime | None) -> str | None:
    """A time in the facts: ISO in UTC; the renderer writes it in the city's zone."""
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class Assignee:
    """The handler an appeal is given to, and where they hear of it (their account's channel)."""

    username: str
    name: str
    targets: tuple[str, ...]


def assignees(session, usernames: Iterable[str | None]) -> dict[str, Assignee]:
    """The accounts behind these usernames, as message recipients (inactive ones hear nothing)."""
    wanted = {u for u in usernames if u}
    if not wanted:
        return {}
    from sqlmodel import col, select

    users = session.exec(select(StaffUser).where(col(StaffUser.username).in_(wanted), col(StaffUser.active)))
    return {u.username: Assignee(u.username, u.display_name, (u.notify,) if u.notify else ()) for u in users}


class Departments(Protocol):
    """Departments by code: a dict read once per batch, or a look-up per action."""

    def get(self, code: str, /) -> Department | None: ...


def messages_for(event: Event, appeal: Appeal, *, key: str, departments: Departments,
                 facts: dict | None = None, handling: str | None = None, assisting: Sequence[str] = (),
                 helper: str | None = None, followers: Iterable[Appeal] = (),
                 assignee: Assignee | None = None) -> list[Message]:
    """The messages `event` on `appeal` sends, one per recipient that the table names.

    `key` tells occurrences apart (a version, a clock and tier), so a retried step writes nothing new.
    `handling` names the department when the appeal is on its way to one (dispatch). A dispatch of an
    appeal that was dispatched before (a return, an arbitration) is a transfer: the requester heard
    "dispatched" once already. Each requester reads in the language stored on their appeal.
    """
    if event == Event.dispatched and appeal.dispatched_at is not None:
        event = Event.transferred
    handling_department = departments.get(handling or appeal.department_code or "")
    event_facts = ({"handling": names(handling_department)} if handling_department else {}) | (facts or {})
    base = appeal_facts(appeal) | event_facts
    out: list[Message] = []

    def to_department(audience: Audience, department: Department | None) -> None:
        if department is not None:
            out.append(Message(stored_id(appeal), f"{event}:{key}", event, audience, f"department:{department.code}",
                               tuple(department.notify), base | {"recipient_name": names(department)}))

    for audience in WHO_HEARS[event]:
        if audience == A.requester:
            for each in (appeal, *followers):
                if getattr(each, "anonymous", False):  # nobody to tell, on purpose: not an undeliverable message
                    continue
                out.append(Message(stored_id(each), f"{event}:{appeal.id}:{key}", event, audience, "requester",
                                   requester_targets(each), appeal_facts(each) | event_facts,
                                   language=each.language or "zh"))
        elif audience == A.department:
            to_department(audience, handling_department)
        elif audience == A.assisting:
            for code in assisting:
                to_department(audience, departments.get(code))
        elif audience == A.helper:
            to_department(audience, departments.get(helper or ""))
        elif audience == A.centre:
            to_department(audience, departments.get(SUPERVISION_CENTRE))
        elif audience == A.parent and handling_department is not None:
            to_department(audience, departments.get(handling_department.parent_code or ""))
        elif audience == A.assignee and assignee is not None and assignee.targets:
            out.append(Message(stored_id(appeal), f"{event}:{key}", event, audience, f"staff:{assignee.username}",
                               assignee.targets, base | {"recipient_name": assignee.name}))
    return out

