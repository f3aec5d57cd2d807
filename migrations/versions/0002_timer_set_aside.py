"""Timers set aside: a timer or wait timeout whose firing failed keeps its error here.

The timer worker skips these rows, so one that fails every time (a corrupt value, a bug)
no longer blocks the due timers behind it; operators see the error on the bookmark and the
count in GET /health.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE bookmarks "
        "ADD COLUMN timer_error text, "
        "ADD COLUMN timer_failed_at timestamptz, "
        "ADD COLUMN timer_attempts integer NOT NULL DEFAULT 0"
    )
    # GET /health counts the open ones; there are few, so the partial index stays tiny.
    op.execute(
        "CREATE INDEX bookmarks_timer_set_aside_idx ON bookmarks (timer_failed_at) "
        "WHERE timer_error IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX bookmarks_timer_set_aside_idx")
    op.execute(
        "ALTER TABLE bookmarks "
        "DROP COLUMN timer_attempts, DROP COLUMN timer_failed_at, DROP COLUMN timer_error"
    )
