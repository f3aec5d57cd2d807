"""Schedule cursors: per definition with a cron `schedule` trigger, the instant up to which
its ticks have been handled (fired, or skipped by the catch-up policy or while disabled).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only a cursor: exactly-once per tick comes from the keyed start (the tick derives the
    # instance id), so a cursor lost or behind makes the scheduler look again, never fire twice.
    op.execute(
        """
        CREATE TABLE schedule_ticks (
            tenant text NOT NULL,
            definition text NOT NULL,
            last_tick timestamptz NOT NULL,
            PRIMARY KEY (tenant, definition)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE schedule_ticks")
