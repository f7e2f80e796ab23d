"""routing model versions and the policy Q&A base

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "classifier_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("embedder", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trained_on", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_classifier_version_status", "classifier_version", ["status"])
    op.create_table(
        "policy_answer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("question", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("theme", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_policy_answer_theme", "policy_answer", ["theme"])


def downgrade() -> None:
    op.drop_index("ix_policy_answer_theme", "policy_answer")
    op.drop_table("policy_answer")
    op.drop_index("ix_classifier_version_status", "classifier_version")
    op.drop_table("classifier_version")
