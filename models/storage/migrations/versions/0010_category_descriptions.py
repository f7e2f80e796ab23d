"""category scope descriptions and example appeals, which the routing model reads

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.add_column(sa.Column("description_zh", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("description_en", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("examples", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.drop_column("examples")
        batch.drop_column("description_en")
        batch.drop_column("description_zh")
