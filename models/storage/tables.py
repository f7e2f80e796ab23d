"""Every table, imported in one place so the metadata is complete for migrations."""

from sqlmodel import SQLModel

from appealflow.models.appeals.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest, IdempotencyKey
from appealflow.models.appeals.open311 import Open311Client, Open311Request
from appealflow.models.appeals.replies import CannedReply
from appealflow.models.city.department import Category, DeadlinePolicy, Department, RoutingRule
from appealflow.models.city.people import ApiKey, StaffUser
from appealflow.models.clocks.calendar import CalendarOverride
from appealflow.models.clocks.escalation import DeadlineClock, Escalation
from appealflow.models.files.attachments import Attachment
from appealflow.models.oversight.orders import SupervisionOrder
from appealflow.models.routing.classifier_store import ClassifierVersion
from appealflow.models.routing.policy_qa import PolicyAnswer
from appealflow.models.routing.vectors import AppealVector
from appealflow.models.telling.outbox import DeliveryAttempt, Notification
from appealflow.models.telling.short_links import ShortLink

metadata = SQLModel.metadata

__all__ = [
    "ApiKey", "Appeal", "AppealAssist", "AppealEvent", "AppealVector", "Attachment", "CalendarOverride",
    "CannedReply", "Category",
    "ClassifierVersion", "DeadlineClock",
    "DeadlinePolicy", "DeliveryAttempt", "Department", "Escalation", "ExtensionRequest", "IdempotencyKey",
    "Notification", "Open311Client", "Open311Request", "PolicyAnswer", "RoutingRule", "ShortLink", "StaffUser",
    "SupervisionOrder", "metadata",
]
