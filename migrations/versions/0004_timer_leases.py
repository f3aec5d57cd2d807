"""Timer leases: a timer worker claims the due rows it fires (FOR UPDATE SKIP LOCKED) and
leases them for a short while, so two replicas never load and try the same first N timers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a BookmarkRow field: the projection's upsert never touches it, so a lease outlives
    # the commands of its instance and only the claim query (or its expiry) changes it.
    op.execute("ALTER TABLE bookmarks ADD COLUMN timer_leased_until timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE bookmarks DROP COLUMN timer_leased_until")
