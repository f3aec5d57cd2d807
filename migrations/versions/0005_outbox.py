"""The transactional outbox: the publisher's position (and circuit-breaker state) and the
events it could never publish.

The outbox reads the event store itself (`waymark_events`, in notification-id order): the
events are the outbox records, so nothing is written twice. `outbox_positions` holds, per
publisher name, the last notification id the broker acknowledged; the cleanup worker keeps
every event above the lowest position (and every dead-lettered one).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE outbox_positions (
            name text PRIMARY KEY,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            breaker_state text NOT NULL DEFAULT 'closed',
            breaker_changed_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE outbox_dead_letters (
            id bigserial PRIMARY KEY,
            publisher text NOT NULL,
            position bigint NOT NULL,
            instance_id uuid NOT NULL,
            tenant text NOT NULL,
            event_type text NOT NULL,
            error text NOT NULL,
            status text NOT NULL DEFAULT 'dead',
            failed_at timestamptz NOT NULL DEFAULT now(),
            retry_requested_at timestamptz,
            published_at timestamptz,
            UNIQUE (publisher, position)
        )
        """
    )
    op.execute(
        "CREATE INDEX outbox_dead_letters_retry ON outbox_dead_letters (publisher, position) "
        "WHERE status = 'retry'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox_dead_letters")
    op.execute("DROP TABLE outbox_positions")
