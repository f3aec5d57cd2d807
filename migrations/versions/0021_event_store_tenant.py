"""The event store's second wall: a `tenant` column on `waymark_events` and its RLS policy.

Only one aggregate lives in `waymark_events`, the workflow instance (definitions, audit and
the other tables are read models of their own), and an instance's tenant never changes. So
the tenant of an event is the tenant of its instance, and the recorder writes it with the
event, from the instance rows of the projection it inserts in the same transaction (one more
array parameter of the one INSERT, no per-row lookup; infrastructure/postgres/recorder.py).
An event without a projection row falls back to its instance's read-model row, and without
that to NULL: a row with no tenant is seen only by the system scope, and an insert of one in
a tenant's scope is refused (fail closed).

The policy is the one of every tenant-owned table (0017). Existing rows are backfilled from
`instances` (one UPDATE: it rewrites every event row; on a large store run it in a quiet
hour). `waymark_events_head()` gives the highest notification id of every tenant (a global
position, not a row) without the policy's filter, so a feed reader in a quiet tenant's scope
does not scan the whole index backwards looking for one of its own events.

`rate_limit_counters` holds the shared rate-limit windows (`WAYMARK_RATE_LIMIT_STORAGE=
postgres`, infrastructure/postgres/rate_limits.py): UNLOGGED, since a counter is worth no
WAL; keyed by a digest of the API key or the client address, no tenant.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_POLICY = (
    "tenant = current_setting('waymark.tenant', true) "
    "OR current_setting('waymark.tenant', true) = '*'"
)


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (the backfill below does).
    op.execute("ALTER TABLE waymark_events ADD COLUMN tenant text")
    op.execute(
        "UPDATE waymark_events e SET tenant = i.tenant FROM instances i "
        "WHERE i.id = e.originator_id AND e.tenant IS NULL"
    )
    op.execute("ALTER TABLE waymark_events ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON waymark_events USING ({_POLICY}) WITH CHECK ({_POLICY})"
    )
    op.execute(
        """
        CREATE FUNCTION waymark_events_head() RETURNS bigint
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT coalesce(max(notification_id), 0) FROM waymark_events $$
        """
    )

    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limit_counters (
            key text NOT NULL,
            window_start bigint NOT NULL,
            expires_at bigint NOT NULL,
            hits integer NOT NULL,
            CONSTRAINT rate_limit_counters_pkey PRIMARY KEY (key)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rate_limit_counters")
    op.execute("DROP FUNCTION waymark_events_head()")
    op.execute("DROP POLICY tenant_isolation ON waymark_events")
    op.execute("ALTER TABLE waymark_events DISABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE waymark_events DROP COLUMN tenant")
