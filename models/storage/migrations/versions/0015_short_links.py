"""short links for text messages (/s/KEY, one per appeal)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "short_link",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_short_link_code", "short_link", ["code"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_short_link_code", table_name="short_link")
    op.drop_table("short_link")
