"""Open311 client apps and what their requests carry beside the appeal

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import appealflow.models.storage.columns

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open311_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", appealflow.models.storage.columns.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", appealflow.models.storage.columns.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "open311_request",
        sa.Column("appeal_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("long", sa.Float(), nullable=True),
        sa.Column("address_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("media_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["appeal_id"], ["appeal.id"]),
        sa.ForeignKeyConstraint(["client_id"], ["open311_client.id"]),
        sa.PrimaryKeyConstraint("appeal_id"),
        sa.UniqueConstraint("token"),
    )
    with op.batch_alter_table("open311_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_open311_request_client_id"), ["client_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("open311_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_open311_request_client_id"))
    op.drop_table("open311_request")
    op.drop_table("open311_client")
