"""join the two branches that grew side by side from 0006 (requester loop, classifier)

Revision ID: 0009
Revises: 0007, 0008
"""

revision = "0009"
down_revision = ("0007", "0008")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
