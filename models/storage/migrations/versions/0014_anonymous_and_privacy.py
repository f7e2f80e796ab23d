"""appeals with no contact (anonymous), the privacy notice the requester agreed to, and a name kept
from the department

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        batch.add_column(sa.Column("anonymous", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("name_withheld", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("privacy_notice", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appeal") as batch:
        batch.drop_column("privacy_notice")
        batch.drop_column("name_withheld")
        batch.drop_column("anonymous")
