"""The closed vocabularies of the domain."""

from enum import StrEnum


class Channel(StrEnum):
    hotline = "hotline"
    web = "web"
    mobile = "mobile"
    email = "email"
    open311 = "open311"


class AppealType(StrEnum):
    consultation = "consultation"
    help_request = "help_request"
    complaint = "complaint"
    report = "report"
    suggestion = "suggestion"
    praise = "praise"


class Priority(StrEnum):
    urgent = "urgent"
    normal = "normal"


class AppealStatus(StrEnum):
    received = "received"
    triage = "triage"
    dispatched = "dispatched"
    accepted = "accepted"
    in_progress = "in_progress"
    waiting_requester = "waiting_requester"
    reviewing = "reviewing"  # a handler's reply waits for the department head's approval (审核)
    replied = "replied"
    returned = "returned"
    arbitration = "arbitration"  # returned too often: a supervisor decides who owns it
    reopened = "reopened"
    merged = "merged"
    closed = "closed"


# Where a department is working the appeal: its deadlines run, it can be late.
OPEN_STATUSES = (AppealStatus.dispatched, AppealStatus.accepted, AppealStatus.in_progress,
                 AppealStatus.waiting_requester, AppealStatus.reviewing)


class DepartmentKind(StrEnum):
    centre = "centre"
    bureau = "bureau"
    district = "district"
    street = "street"
    enterprise = "enterprise"


class NotificationStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    undeliverable = "undeliverable"


class ContactMethod(StrEnum):
    phone = "phone"
    visit = "visit"
    sms = "sms"
    email = "email"


class ContactOutcome(StrEnum):
    reached = "reached"            # spoke with the requester
    no_answer = "no_answer"        # rang, no one answered
    unreachable = "unreachable"    # wrong number, switched off, moved
    declined = "declined"          # reached, and they did not want to talk


class ClockState(StrEnum):
    running = "running"
    paused = "paused"    # waiting on the requester
    stopped = "stopped"  # satisfied, or the appeal left the department


class ExtensionStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    denied = "denied"


class Satisfaction(StrEnum):
    satisfied = "satisfied"
    basically_satisfied = "basically_satisfied"
    unsatisfied = "unsatisfied"


# Satisfied and basically satisfied count as satisfied in the satisfaction rate.
CONTENT = frozenset({Satisfaction.satisfied, Satisfaction.basically_satisfied})


class Role(StrEnum):
    operator = "operator"
    dispatcher = "dispatcher"
    handler = "handler"
    department_head = "department_head"
    supervisor = "supervisor"
    admin = "admin"
    # Not staff: the automatic steps, and the citizen holding the appeal's token.
    system = "system"
    requester = "requester"


# Who works where: a department's staff, the 12345 centre's, and those who oversee everything.
DEPARTMENT_ROLES = frozenset({Role.handler, Role.department_head})
CENTRE_ROLES = frozenset({Role.dispatcher, Role.supervisor})
OVERSIGHT_ROLES = frozenset({Role.supervisor, Role.admin})
