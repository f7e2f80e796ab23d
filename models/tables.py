"""Every table, imported in one place so the metadata is complete for migrations."""

from sqlmodel import SQLModel

from appealflow.models.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest, IdempotencyKey
from appealflow.models.calendar import CalendarOverride
from appealflow.models.classifier_store import ClassifierVersion
from appealflow.models.department import Category, DeadlinePolicy, Department, RoutingRule
from appealflow.models.escalation import DeadlineClock, Escalation
from appealflow.models.open311 import Open311Client, Open311Request
from appealflow.models.outbox import DeliveryAttempt, Notification
from appealflow.models.people import ApiKey, StaffUser
from appealflow.models.policy_qa import PolicyAnswer

metadata = SQLModel.metadata

__all__ = [
    "ApiKey", "Appeal", "AppealAssist", "AppealEvent", "CalendarOverride", "Category", "ClassifierVersion",
    "DeadlineClock",
    "DeadlinePolicy", "DeliveryAttempt", "Department", "Escalation", "ExtensionRequest", "IdempotencyKey",
    "Notification", "Open311Client", "Open311Request", "PolicyAnswer", "RoutingRule", "StaffUser", "metadata",
]
