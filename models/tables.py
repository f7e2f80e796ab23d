"""Every table, imported in one place so the metadata is complete for migrations."""

from sqlmodel import SQLModel

from models.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest, IdempotencyKey
from models.calendar import CalendarOverride
from models.department import Category, DeadlinePolicy, Department, RoutingRule
from models.escalation import DeadlineClock, Escalation
from models.outbox import Notification
from models.people import ApiKey, StaffUser

metadata = SQLModel.metadata

__all__ = [
    "ApiKey", "Appeal", "AppealAssist", "AppealEvent", "CalendarOverride", "Category", "DeadlineClock",
    "DeadlinePolicy", "Department", "Escalation", "ExtensionRequest", "IdempotencyKey", "Notification",
    "RoutingRule", "StaffUser", "metadata",
]
