"""a photo's claim: which worker makes its copies, until when

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

from appealflow.models.storage.columns import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachment") as table:
        table.add_column(sa.Column("claimed_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachment") as table:
        table.drop_column("claimed_until")
