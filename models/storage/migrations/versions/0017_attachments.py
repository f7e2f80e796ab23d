"""attachments: an appeal's photos and documents, their copies' keys in the blob store

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appeal_id", sa.Integer(), nullable=False),
        sa.Column("added_by", text(length=100), nullable=False),
        sa.Column("added_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.Column("kind", text(length=10), nullable=False),
        sa.Column("content_type", text(length=40), nullable=False),
        sa.Column("name", text(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("visibility", text(length=10), nullable=False),
        sa.Column("state", text(length=12), nullable=False),
        sa.Column("upload_key", text(length=64), nullable=True),
        sa.Column("file_key", text(length=64), nullable=True),
        sa.Column("thumb_key", text(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("purpose", text(length=20), nullable=False),
        sa.ForeignKeyConstraint(["appeal_id"], ["appeal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_attachment_appeal_id", "attachment", ["appeal_id"])
    op.create_index("ix_attachment_state", "attachment", ["state"])


def downgrade() -> None:
    op.drop_index("ix_attachment_state", table_name="attachment")
    op.drop_index("ix_attachment_appeal_id", table_name="attachment")
    op.drop_table("attachment")
