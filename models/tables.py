"""Every table, imported in one place so the metadata is complete for migrations."""

from sqlmodel import SQLModel

from models.appeal import Appeal, AppealAssist, AppealEvent, IdempotencyKey
from models.department import Category, DeadlinePolicy, Department, RoutingRule
from models.outbox import Notification

metadata = SQLModel.metadata

__all__ = ["Appeal", "AppealAssist", "AppealEvent", "Category", "DeadlinePolicy", "Department",
           "IdempotencyKey", "Notification", "RoutingRule", "metadata"]
