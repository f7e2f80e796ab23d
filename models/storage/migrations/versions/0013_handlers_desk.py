"""the handler's desk: who owns an appeal, the queue's sort by the nearest running deadline, review of
replies per department, canned replies, where a member of staff hears of their appeals

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD_OPEN = "status IN ('dispatched', 'accepted', 'in_progress', 'waiting_requester')"
OPEN = "status IN ('dispatched', 'accepted', 'in_progress', 'waiting_requester', 'reviewing')"
# The nearest deadline of a clock still running, as models.appeals.appeal.next_due computes it.
NEXT_DUE = """
UPDATE appeal SET next_due_at = CASE
  WHEN status = 'dispatched' THEN
    CASE WHEN contact_due_at IS NOT NULL AND contact_due_at < accept_due_at THEN contact_due_at
         ELSE accept_due_at END
  WHEN status = 'accepted' THEN
    CASE WHEN contact_due_at IS NOT NULL AND contact_due_at < resolve_due_at THEN contact_due_at
         ELSE resolve_due_at END
  WHEN status IN ('in_progress', 'reviewing', 'waiting_requester') THEN resolve_due_at
  ELSE NULL END
"""


def upgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        batch.add_column(sa.Column("next_due_at", appealflow.models.storage.columns.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.drop_index("ix_appeal_queue")
    op.execute(NEXT_DUE)
    with op.batch_alter_table("appeal") as batch:
        batch.create_index("ix_appeal_queue", ["department_code", "next_due_at", "id"], unique=False,
                           postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch.create_index("ix_appeal_assignee", ["assignee", "status"], unique=False)
        batch.create_index("ix_appeal_requester_phone", ["requester_phone"], unique=False)
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("notify", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
    with op.batch_alter_table("department") as batch:
        batch.add_column(sa.Column("review_replies", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "canned_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("category_code", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["category_code"], ["category.code"]),
        sa.ForeignKeyConstraint(["department_code"], ["department.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_canned_reply_department", "canned_reply", ["department_code", "category_code"])


def downgrade() -> None:
    op.drop_index("ix_canned_reply_department", table_name="canned_reply")
    op.drop_table("canned_reply")
    with op.batch_alter_table("department") as batch:
        batch.drop_column("review_replies")
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("notify")
    with op.batch_alter_table("appeal") as batch:
        batch.drop_index("ix_appeal_requester_phone")
        batch.drop_index("ix_appeal_assignee")
        batch.drop_index("ix_appeal_queue")
        batch.drop_column("assignee")
        batch.drop_column("next_due_at")
        batch.create_index("ix_appeal_queue", ["department_code", "resolve_due_at", "id"], unique=False,
                           postgresql_where=sa.text(OLD_OPEN), sqlite_where=sa.text(OLD_OPEN))
