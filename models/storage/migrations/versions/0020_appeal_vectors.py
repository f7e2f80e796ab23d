"""each appeal's embedding, kept from its dispatch (models/routing/vectors.py)

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appeal_vector",
        sa.Column("appeal_id", sa.Integer(), sa.ForeignKey("appeal.id"), primary_key=True),
        sa.Column("embedder", sa.String(length=40), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("appeal_vector")
