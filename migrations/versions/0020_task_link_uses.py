"""Signed task links (approve/reject from a notification): one row per used link, so each
is used once. The signing key is derived from the `keyed-instance-ids` server secret of
0003 (no new secret). `expires_at` lets old rows be pruned: a link past it fails as expired
whether or not its row is still there.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


_POLICY = (
    "tenant = current_setting('waymark.tenant', true) "
    "OR current_setting('waymark.tenant', true) = '*'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE task_link_uses (
            link_id text NOT NULL,
            tenant text NOT NULL,
            task_id text NOT NULL,
            decision text NOT NULL,
            expires_at timestamptz NOT NULL,
            used_at timestamptz NOT NULL,
            used_by text NOT NULL,
            CONSTRAINT task_link_uses_pkey PRIMARY KEY (link_id)
        )
        """
    )
    op.execute("CREATE INDEX task_link_uses_expires_idx ON task_link_uses (expires_at)")
    # Tenant-owned: the same row-level security wall as every such table (0017).
    op.execute("ALTER TABLE task_link_uses ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON task_link_uses USING ({_POLICY}) WITH CHECK ({_POLICY})"
    )


def downgrade() -> None:
    op.execute("DROP TABLE task_link_uses")
