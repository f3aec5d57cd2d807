"""The audit log, the application role, and row-level security on every tenant-owned table.

`audit_log` records every administrative act: who (actor), when, what (action, target), from
where (client IP, user agent), with a few details. It is append-only for the application.

Row-level security is a second wall behind the queries' `WHERE tenant = ...`: the
application connects as (or switches to) the role `waymark_app`, which does not own the
tables and so is subject to their policies; migrations run as the owner, which is not. The
policy lets a row through when its tenant is the transaction's `waymark.tenant` setting, or
when that setting is `*` (the cross-tenant background work: timers, cleanup, outbox,
callbacks looked up by token). An unset setting shows nothing. docs/security.md explains it.

`waymark_events` (the event store) has no tenant column and carries no policy: see
docs/security.md.

Revision ID: 0017
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

APP_ROLE = "waymark_app"

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
    # Roles are cluster-wide: another database of the cluster may have created it already
    # (concurrently, too: both errors mean "it exists").
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END
        $$
        """
    )
    # The owner switches to the role on connect (`-c role=waymark_app`): it must be a member.
    op.execute(f"GRANT {APP_ROLE} TO current_user")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    # No TRUNCATE (it ignores row-level security), no DDL.
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {APP_ROLE}")
    # Tables later migrations create (as this owner) are the application's too.
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )
    # The audit trail is append-only for the application.
    op.execute(f"REVOKE UPDATE, DELETE ON audit_log FROM {APP_ROLE}")
    op.execute(f"GRANT UPDATE (exported_at) ON audit_log TO {APP_ROLE}")
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({_POLICY}) WITH CHECK ({_POLICY})"
        )


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "  # noqa: S608 - a constant role name
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute("DROP TABLE audit_log")
    # The role stays: it is cluster-wide and other databases may use it.
