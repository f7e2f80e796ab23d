"""the worker holding a received appeal's claim, so a dead worker's claims go back at once

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        batch.add_column(sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        batch.drop_column("claimed_by")
