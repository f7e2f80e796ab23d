"""Every table, imported in one place so the metadata is complete for migrations."""

from sqlmodel import SQLModel

from models.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest, IdempotencyKey
from models.department import Category, DeadlinePolicy, Department, RoutingRule
from models.outbox import Notification
from models.people import ApiKey, StaffUser

metadata = SQLModel.metadata

__all__ = ["ApiKey", "Appeal", "AppealAssist", "AppealEvent", "Category", "DeadlinePolicy", "Department",
           "ExtensionRequest", "IdempotencyKey", "Notification", "RoutingRule", "StaffUser", "metadata"]
