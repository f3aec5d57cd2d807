"""Tracked jobs: bulk operator operations (version migrations) and their progress.

One row per job: what it does (`kind`, `params`), its counts (`total`, `done`, `refused`,
`failed`), the refused instances with reasons (`errors`, bounded), and its times.
`GET /v1/jobs/{id}` reads it (application/jobs.py).

Revision ID: 0019
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


_POLICY = (
    "tenant = current_setting('waymark.tenant', true) "
    "OR current_setting('waymark.tenant', true) = '*'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id uuid NOT NULL,
            tenant text NOT NULL,
            kind text NOT NULL,
            status text NOT NULL,
            params jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_by text,
            total integer NOT NULL DEFAULT 0,
            done integer NOT NULL DEFAULT 0,
            refused integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0,
            errors jsonb NOT NULL DEFAULT '[]'::jsonb,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            finished_at timestamptz,
            CONSTRAINT jobs_pkey PRIMARY KEY (id)
        )
        """
    )
    op.execute("CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at)")
    # Tenant-owned: the same row-level security wall as every such table (0017).
    op.execute("ALTER TABLE jobs ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON jobs USING ({_POLICY}) WITH CHECK ({_POLICY})")


def downgrade() -> None:
    op.execute("DROP TABLE jobs")
