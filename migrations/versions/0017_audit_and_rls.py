"""The audit log, the application role, and row-level security on every tenant-owned table.

`audit_log` records every administrative act: who (actor), when, what (action, target), from
where (client IP, user agent), with a few details. It is append-only for the application.

Row-level security is a second wall behind the queries' `WHERE tenant = ...`: the
application connects as (or switches to) the role `waymark_app` (or the one
`WAYMARK_DATABASE_APP_ROLE` names; created only if the migrating user has CREATEROLE, see
migrations/app_role.py), which does not own the
tables and so is subject to their policies; migrations run as the owner, which is not. The
policy lets a row through when its tenant is the transaction's `waymark.tenant` setting, or
when that setting is `*` (the cross-tenant background work: timers, cleanup, outbox,
callbacks looked up by token). An unset setting shows nothing. docs/security.md explains it.

`waymark_events` (the event store) had no tenant column here; migration 0021 adds it and
its policy.

Revision ID: 0017
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

from migrations import app_role

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Every table with a `tenant` column (the event store has none).
TENANT_TABLES = (
    "definitions",
    "instances",
    "bookmarks",
    "tasks",
    "activities",
    "idempotency_records",
    "outbox_dead_letters",
    "schedule_ticks",
    "erasures",
    "audit_log",
)

_POLICY = (
    "tenant = current_setting('waymark.tenant', true) "
    "OR current_setting('waymark.tenant', true) = '*'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE audit_log (
            id bigserial NOT NULL,
            tenant text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            action text NOT NULL,
            target text NOT NULL,
            client_ip text,
            user_agent text,
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            -- Set by the outbox publisher once the broker acknowledged the entry's event.
            exported_at timestamptz,
            CONSTRAINT audit_log_pkey PRIMARY KEY (id)
        )
        """
    )
    op.execute("CREATE INDEX audit_log_tenant_id_idx ON audit_log (tenant, id)")
    op.execute("CREATE INDEX audit_log_unexported_idx ON audit_log (id) WHERE exported_at IS NULL")
    # The role: created when the migrating user may (CREATEROLE or superuser), else a
    # WARNING names the manual step and the grants wait for the next `waymark migrate`
    # (migrations/app_role.py, which that runs after every upgrade).
    role = app_role.role_name(op.get_context().config.attributes.get("app_role"))
    if role:
        op.execute(app_role.create_role_sql(role))
        op.execute(app_role.grant_sql(role))
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({_POLICY}) WITH CHECK ({_POLICY})"
        )


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    role = app_role.role_name(op.get_context().config.attributes.get("app_role"))
    if role:
        revokes = [
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "  # noqa: S608 - role_name() checked it
            f"REVOKE USAGE, SELECT ON SEQUENCES FROM {role}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}",
            f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}",
            f"REVOKE USAGE ON SCHEMA public FROM {role}",
        ]
        body = " ".join(f"EXECUTE '{r}';" for r in revokes)
        # A role that was never created (no CREATEROLE) has nothing to revoke.
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"{body} END IF; END $$"
        )
    op.execute("DROP TABLE audit_log")
    # The role stays: it is cluster-wide and other databases may use it.
