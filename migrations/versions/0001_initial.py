"""Initial schema: the event store and the read models projected in the same transaction.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The event store, statement for statement what eventsourcing 9.5.6's
# PostgresApplicationRecorder creates for events_table_name="waymark_events",
# originator_id_type="uuid", schema "public" (the library's CREATE_TABLE is off: the
# migrations own the schema). tests/integration checks both stay identical.
EVENT_STORE = [
    'CREATE TYPE "public"."stored_event_uuid" AS '
    '(originator_id "uuid", originator_version bigint, topic text, state bytea)',
    'CREATE TABLE IF NOT EXISTS "public"."waymark_events" ('
    'originator_id "uuid" NOT NULL, '
    "originator_version bigint NOT NULL, "
    "topic text, "
    "state bytea, "
    "notification_id bigserial, "
    "PRIMARY KEY (originator_id, originator_version)) "
    "WITH ("
    "    autovacuum_enabled = true,"
    "    autovacuum_vacuum_threshold = 100000000,"
    "    autovacuum_vacuum_scale_factor = 0.5,"
    "    autovacuum_analyze_threshold = 1000,"
    "    autovacuum_analyze_scale_factor = 0.01"
    ")",
    'CREATE UNIQUE INDEX IF NOT EXISTS "waymark_events_notification_id_idx" '
    'ON "public"."waymark_events" (notification_id ASC)',
    'CREATE OR REPLACE FUNCTION "public"."es_insert_events_uuid"'
    '(events "public"."stored_event_uuid"[]) '
    "RETURNS SETOF bigint "
    "LANGUAGE plpgsql "
    "AS "
    "$BODY$"
    "BEGIN"
    "    SET LOCAL lock_timeout = '0s';"
    '    NOTIFY "waymark_events";'
    "    RETURN QUERY"
    '    INSERT INTO "public"."waymark_events" AS t ('
    "    originator_id, originator_version, topic, state)"
    "    SELECT originator_id, originator_version, topic, state"
    "    FROM unnest(events)"
    "    RETURNING notification_id;"
    "END;"
    "$BODY$",
]

READ_MODELS = [
    # Definitions are immutable per version; `enabled` is flipped for all versions at once.
    """
    CREATE TABLE definitions (
        tenant text NOT NULL,
        name text NOT NULL,
        version integer NOT NULL,
        document jsonb NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT definitions_pkey PRIMARY KEY (tenant, name, version)
    )
    """,
    """
    CREATE TABLE instances (
        id uuid NOT NULL,
        tenant text NOT NULL,
        definition text NOT NULL,
        version integer NOT NULL,
        status text NOT NULL,
        correlation_id text,
        idempotency_key text,
        parent_id uuid,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        ended_at timestamptz,
        aggregate_version bigint NOT NULL,
        CONSTRAINT instances_pkey PRIMARY KEY (id)
    )
    """,
    # Two starts with one key race on this index: the loser's whole save rolls back.
    "CREATE UNIQUE INDEX instances_tenant_idempotency_key_key "
    "ON instances (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL",
    # Keyset pagination (created_at DESC, id DESC), unfiltered and per list filter.
    "CREATE INDEX instances_tenant_created_idx ON instances (tenant, created_at, id)",
    "CREATE INDEX instances_tenant_status_created_idx "
    "ON instances (tenant, status, created_at, id)",
    "CREATE INDEX instances_tenant_definition_created_idx "
    "ON instances (tenant, definition, created_at, id)",
    "CREATE INDEX instances_tenant_correlation_idx "
    "ON instances (tenant, correlation_id) WHERE correlation_id IS NOT NULL",
    "CREATE INDEX instances_parent_id_idx ON instances (parent_id) WHERE parent_id IS NOT NULL",
    "CREATE INDEX instances_ended_at_idx ON instances (ended_at) WHERE ended_at IS NOT NULL",
    """
    CREATE TABLE bookmarks (
        id text NOT NULL,
        tenant text NOT NULL,
        instance_id uuid NOT NULL,
        node_id text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        token text,
        event_type text,
        correlation text,
        due_at timestamptz,
        created_at timestamptz NOT NULL,
        resolved_at timestamptz,
        CONSTRAINT bookmarks_pkey PRIMARY KEY (id),
        CONSTRAINT bookmarks_token_key UNIQUE (token)
    )
    """,
    "CREATE INDEX bookmarks_tenant_event_type_status_idx ON bookmarks (tenant, event_type, status)",
    "CREATE INDEX bookmarks_instance_id_idx ON bookmarks (instance_id)",
    # The timer service scans open bookmarks by due time.
    "CREATE INDEX bookmarks_open_due_at_idx ON bookmarks (due_at) "
    "WHERE status = 'open' AND due_at IS NOT NULL",
    """
    CREATE TABLE tasks (
        id text NOT NULL,
        tenant text NOT NULL,
        instance_id uuid NOT NULL,
        definition text NOT NULL,
        node_id text NOT NULL,
        name text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        assignee text,
        role text,
        claimed_by text,
        due_at timestamptz,
        urgency text NOT NULL,
        form jsonb,
        outcome text,
        created_at timestamptz NOT NULL,
        completed_at timestamptz,
        CONSTRAINT tasks_pkey PRIMARY KEY (id)
    )
    """,
    # Task queue order: due_at (NULLS LAST is the ASC default), created_at, id.
    "CREATE INDEX tasks_tenant_status_due_at_idx ON tasks (tenant, status, due_at, created_at, id)",
    "CREATE INDEX tasks_tenant_due_at_idx ON tasks (tenant, due_at, created_at, id)",
    "CREATE INDEX tasks_instance_id_idx ON tasks (instance_id)",
    # locked_by/locked_until are the task workers' lease, never part of the projection.
    """
    CREATE TABLE activities (
        id text NOT NULL,
        tenant text NOT NULL,
        instance_id uuid NOT NULL,
        node_id text NOT NULL,
        attempt integer NOT NULL,
        status text NOT NULL,
        run_after timestamptz NOT NULL,
        action jsonb NOT NULL,
        timeout_seconds double precision NOT NULL,
        idempotency_key text NOT NULL,
        locked_by text,
        locked_until timestamptz,
        CONSTRAINT activities_pkey PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX activities_status_run_after_idx ON activities (status, run_after)",
    "CREATE INDEX activities_instance_id_idx ON activities (instance_id)",
    # A plain primary key, no upsert: a duplicate must abort the command's whole transaction.
    """
    CREATE TABLE idempotency_records (
        tenant text NOT NULL,
        scope text NOT NULL,
        key text NOT NULL,
        result jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT idempotency_records_pkey PRIMARY KEY (tenant, scope, key)
    )
    """,
    "CREATE INDEX idempotency_records_created_at_idx ON idempotency_records (created_at)",
]


def upgrade() -> None:
    for statement in EVENT_STORE + READ_MODELS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("idempotency_records", "activities", "tasks", "bookmarks", "instances"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP TABLE definitions")
    op.execute('DROP FUNCTION "public"."es_insert_events_uuid"("public"."stored_event_uuid"[])')
    op.execute('DROP TABLE "public"."waymark_events"')
    op.execute('DROP TYPE "public"."stored_event_uuid"')
