"""Task SLA escalation: when a task's SLA passed and which role it was escalated to.

`bookmarks.escalated_at` keeps an escalated task out of the timer worker's due query (the
`TaskEscalated` event is the record; the column is its projection); `tasks.escalated_to` is
the candidate role the escalation added, which `GET /v1/tasks?role=` also matches.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE bookmarks ADD COLUMN escalated_at timestamptz")
    op.execute("ALTER TABLE tasks ADD COLUMN escalated_at timestamptz")
    op.execute("ALTER TABLE tasks ADD COLUMN escalated_to text")
    op.execute(
        "CREATE INDEX tasks_tenant_escalated_to_idx ON tasks (tenant, escalated_to) "
        "WHERE escalated_to IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX tasks_tenant_escalated_to_idx")
    op.execute("ALTER TABLE tasks DROP COLUMN escalated_to")
    op.execute("ALTER TABLE tasks DROP COLUMN escalated_at")
    op.execute("ALTER TABLE bookmarks DROP COLUMN escalated_at")
