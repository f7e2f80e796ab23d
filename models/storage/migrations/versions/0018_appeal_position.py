"""the appeal's position: latitude, longitude and how far off they may be

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appeal") as table:
        table.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        table.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        table.add_column(sa.Column("position_accuracy_m", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appeal") as table:
        table.drop_column("position_accuracy_m")
        table.drop_column("longitude")
        table.drop_column("latitude")
