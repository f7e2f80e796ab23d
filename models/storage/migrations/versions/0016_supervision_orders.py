"""supervision orders (督办单): to a department, about appeals, with a deadline and an answer

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supervision_order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("appeals", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("due_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.Column("issued_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("issued_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("answered_at", appealflow.models.storage.columns.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["department_code"], ["department.code"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_supervision_order_department_code", "supervision_order", ["department_code"])


def downgrade() -> None:
    op.drop_index("ix_supervision_order_department_code", table_name="supervision_order")
    op.drop_table("supervision_order")
