"""outbox rows hold what to say (event, audience, facts, language); words are rendered at delivery

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this keep their rendered subject and body and are sent as they are.
    with op.batch_alter_table("notification") as batch:
        batch.add_column(sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False,
                                   server_default="legacy"))
        batch.add_column(sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                   server_default="requester"))
        batch.add_column(sa.Column("facts", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                   server_default="zh"))
        batch.alter_column("subject", existing_type=sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        batch.alter_column("body", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("notification") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch.alter_column("subject", existing_type=sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False)
        for column in ("language", "facts", "audience", "event"):
            batch.drop_column(column)
