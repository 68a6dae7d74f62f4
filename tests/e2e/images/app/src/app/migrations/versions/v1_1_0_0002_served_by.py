"""1.1.0: which replica wrote a message. Nullable, so 1.0.0 (still serving from
the other slot during a release) keeps inserting without it.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("served_by", sa.Text, nullable=True))
    op.create_table(
        "app_releases",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("migrated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_releases")
    op.drop_column("messages", "served_by")
