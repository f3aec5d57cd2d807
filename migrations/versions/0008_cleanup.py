"""Cleanup and erasure bookkeeping: what the retention service did, and every GDPR erasure.

`cleanup_runs` holds one row per cleanup run (GET /health shows the last one; the API process
does not run the cleanup, so the report has to live in the database). `erasures` is the audit
trail of erased instances: who erased which instance of which tenant, when and why — the only
trace of the instance that remains.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE cleanup_runs (
            id bigserial NOT NULL,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            dry_run boolean NOT NULL,
            deleted jsonb NOT NULL DEFAULT '{}'::jsonb,
            error text,
            CONSTRAINT cleanup_runs_pkey PRIMARY KEY (id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE erasures (
            id bigserial NOT NULL,
            instance_id uuid NOT NULL,
            tenant text NOT NULL,
            erased_at timestamptz NOT NULL,
            erased_by text NOT NULL,
            reason text,
            deleted jsonb NOT NULL DEFAULT '{}'::jsonb,
            CONSTRAINT erasures_pkey PRIMARY KEY (id)
        )
        """
    )
    op.execute("CREATE INDEX erasures_tenant_instance_idx ON erasures (tenant, instance_id)")
    # Long-running listing: suspended instances by how long they have been waiting.
    op.execute(
        "CREATE INDEX instances_suspended_updated_idx ON instances (tenant, updated_at) "
        "WHERE status = 'suspended'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX instances_suspended_updated_idx")
    op.execute("DROP TABLE erasures")
    op.execute("DROP TABLE cleanup_runs")
