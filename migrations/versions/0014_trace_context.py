"""Trace context on activities and bookmarks, and an index for the metrics' active count.

The trace context on activities and bookmarks: the W3C `traceparent` of the command that
created them, so the task worker's action and the timer worker's firing continue the
command's trace in another process (docs/observability.md). Nullable: untraced rows and
rows stored before this revision carry none.

Revision ID: 0014
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE activities ADD COLUMN trace_context text")
    op.execute("ALTER TABLE bookmarks ADD COLUMN trace_context text")
    # /metrics counts the instances not ended by definition and status at every scrape: a
    # partial index keeps that an index-only scan however many ended instances are kept.
    op.execute(
        "CREATE INDEX instances_active_definition_status_idx "
        "ON instances (definition, status) WHERE ended_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX instances_active_definition_status_idx")
    op.execute("ALTER TABLE bookmarks DROP COLUMN trace_context")
    op.execute("ALTER TABLE activities DROP COLUMN trace_context")
