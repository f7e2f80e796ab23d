"""the requester's loop: language on the appeal, reply time and reopen count, delivery attempts

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        # Appeals filed before this were all answered in Chinese.
        batch.add_column(sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                   server_default="zh"))
        batch.add_column(sa.Column("replied_at", appealflow.models.storage.columns.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["notification_id"], ["notification.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_attempt_notification_id", "delivery_attempt", ["notification_id"])
    # The replied appeals the no-rating close looks for, oldest reply first.
    op.create_index("ix_appeal_replied", "appeal", ["status", "replied_at"])


def downgrade() -> None:
    op.drop_index("ix_appeal_replied", table_name="appeal")
    op.drop_index("ix_delivery_attempt_notification_id", table_name="delivery_attempt")
    op.drop_table("delivery_attempt")
    with op.batch_alter_table("appeal") as batch:
        for column in ("reopen_count", "replied_at", "language"):
            batch.drop_column(column)
