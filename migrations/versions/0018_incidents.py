"""Incidents: node failures held for an operator (`on_failure: "incident"`).

`incidents` is a read model like `tasks`: one row per incident, upserted from the instance's
state in the events' transaction (`application.projection.incident_row`). `GET
/v1/incidents` lists the open ones of a tenant, oldest first.

Revision ID: 0018
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


_POLICY = (
    "tenant = current_setting('waymark.tenant', true) "
    "OR current_setting('waymark.tenant', true) = '*'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE incidents (
            id text NOT NULL,
            tenant text NOT NULL,
            instance_id uuid NOT NULL,
            definition text NOT NULL,
            version integer NOT NULL,
            node_id text NOT NULL,
            node_type text NOT NULL,
            error jsonb NOT NULL,
            status text NOT NULL,
            raised_at timestamptz NOT NULL,
            resolved_at timestamptz,
            resolved_by text,
            reason text,
            CONSTRAINT incidents_pkey PRIMARY KEY (id)
        )
        """
    )
    op.execute(
        "CREATE INDEX incidents_tenant_status_raised ON incidents (tenant, status, raised_at, id)"
    )
    op.execute("CREATE INDEX incidents_instance ON incidents (instance_id)")
    # Tenant-owned: the same row-level security wall as every such table (0017).
    op.execute("ALTER TABLE incidents ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON incidents USING ({_POLICY}) WITH CHECK ({_POLICY})"
    )


def downgrade() -> None:
    op.execute("DROP TABLE incidents")
