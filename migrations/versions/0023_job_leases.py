"""Job leases: a running job belongs to the process that renews its lease; when that
process dies, another one claims the job after `lease_until` and goes on from `position` in
the job's frozen `items` (application/jobs.py, application/job_recovery.py).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE jobs
            ADD COLUMN items jsonb,
            ADD COLUMN item_position integer NOT NULL DEFAULT 0,
            ADD COLUMN lease_owner text,
            ADD COLUMN lease_until timestamptz,
            ADD COLUMN resumes integer NOT NULL DEFAULT 0
        """
    )
    # The claim's scan: running jobs whose lease has ended (few rows; jobs that ended are
    # not in the index).
    op.execute("CREATE INDEX jobs_running_lease_idx ON jobs (lease_until) WHERE status = 'running'")


def downgrade() -> None:
    op.execute("DROP INDEX jobs_running_lease_idx")
    op.execute(
        "ALTER TABLE jobs DROP COLUMN items, DROP COLUMN item_position, DROP COLUMN lease_owner, "
        "DROP COLUMN lease_until, DROP COLUMN resumes"
    )
