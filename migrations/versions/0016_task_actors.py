"""Who completed a task: `tasks.completed_by`, the person's id (a token's user, the user a
key acted on behalf of, or the key's name for a service key). The `TaskCompleted` event is
the record (with its `actor`: kind, id, the key it came through, an admin override); the
column is its projection.

Revision ID: 0016
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tasks ADD COLUMN completed_by text")


def downgrade() -> None:
    op.execute("ALTER TABLE tasks DROP COLUMN completed_by")
