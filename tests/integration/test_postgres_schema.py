"""The alembic migrations build the expected schema, and the event store the library expects."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql

from infrastructure.embedded_postgres import database_url_for
from infrastructure.postgres.datastore import build_datastore
from infrastructure.postgres.migrate import alembic_config, migrate

pytestmark = pytest.mark.integration

TZ = "timestamp with time zone"
EXPECTED_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "alembic_version": [("version_num", "character varying", "NO")],
    "waymark_events": [
        ("originator_id", "uuid", "NO"),
        ("originator_version", "bigint", "NO"),
        ("topic", "text", "YES"),
        ("state", "bytea", "YES"),
        ("notification_id", "bigint", "NO"),
        # Waymark's, not the library's (migration 0021): the events' row-level security.
        ("tenant", "text", "YES"),
    ],
    "definitions": [
        ("tenant", "text", "NO"),
        ("name", "text", "NO"),
        ("version", "integer", "NO"),
        ("document", "jsonb", "NO"),
        ("enabled", "boolean", "NO"),
        ("created_at", TZ, "NO"),
    ],
    "instances": [
        ("id", "uuid", "NO"),
        ("tenant", "text", "NO"),
        ("definition", "text", "NO"),
        ("version", "integer", "NO"),
        ("status", "text", "NO"),
        ("correlation_id", "text", "YES"),
        ("idempotency_key", "text", "YES"),
        ("parent_id", "uuid", "YES"),
        ("created_at", TZ, "NO"),
        ("updated_at", TZ, "NO"),
        ("ended_at", TZ, "YES"),
        ("aggregate_version", "bigint", "NO"),
    ],
    "incidents": [
        ("id", "text", "NO"),
        ("tenant", "text", "NO"),
        ("instance_id", "uuid", "NO"),
        ("definition", "text", "NO"),
        ("version", "integer", "NO"),
        ("node_id", "text", "NO"),
        ("node_type", "text", "NO"),
        ("error", "jsonb", "NO"),
        ("status", "text", "NO"),
        ("raised_at", TZ, "NO"),
        ("resolved_at", TZ, "YES"),
        ("resolved_by", "text", "YES"),
        ("reason", "text", "YES"),
    ],
    "bookmarks": [
        ("id", "text", "NO"),
        ("tenant", "text", "NO"),
        ("instance_id", "uuid", "NO"),
        ("node_id", "text", "NO"),
        ("kind", "text", "NO"),
        ("status", "text", "NO"),
        ("token", "text", "YES"),
        ("event_type", "text", "YES"),
        ("correlation", "text", "YES"),
        ("due_at", TZ, "YES"),
        ("created_at", TZ, "NO"),
        ("resolved_at", TZ, "YES"),
        ("timer_error", "text", "YES"),
        ("timer_failed_at", TZ, "YES"),
        ("timer_attempts", "integer", "NO"),
        ("timer_leased_until", TZ, "YES"),
        ("escalated_at", TZ, "YES"),
        ("trace_context", "text", "YES"),
    ],
    "tasks": [
        ("id", "text", "NO"),
        ("tenant", "text", "NO"),
        ("instance_id", "uuid", "NO"),
        ("definition", "text", "NO"),
        ("node_id", "text", "NO"),
        ("name", "text", "NO"),
        ("kind", "text", "NO"),
        ("status", "text", "NO"),
        ("assignee", "text", "YES"),
        ("role", "text", "YES"),
        ("claimed_by", "text", "YES"),
        ("due_at", TZ, "YES"),
        ("urgency", "text", "NO"),
        ("form", "jsonb", "YES"),
        ("outcome", "text", "YES"),
        ("created_at", TZ, "NO"),
        ("completed_at", TZ, "YES"),
        ("escalated_at", TZ, "YES"),
        ("escalated_to", "text", "YES"),
        ("completed_by", "text", "YES"),
    ],
    "activities": [
        ("id", "text", "NO"),
        ("tenant", "text", "NO"),
        ("instance_id", "uuid", "NO"),
        ("node_id", "text", "NO"),
        ("attempt", "integer", "NO"),
        ("status", "text", "NO"),
        ("run_after", TZ, "NO"),
        ("action", "jsonb", "NO"),
        ("timeout_seconds", "double precision", "NO"),
        ("idempotency_key", "text", "NO"),
        ("locked_by", "text", "YES"),
        ("locked_until", TZ, "YES"),
        ("trace_context", "text", "YES"),
    ],
    "idempotency_records": [
        ("tenant", "text", "NO"),
        ("scope", "text", "NO"),
        ("key", "text", "NO"),
        ("result", "jsonb", "NO"),
        ("created_at", TZ, "NO"),
    ],
    "cleanup_runs": [
        ("id", "bigint", "NO"),
        ("started_at", TZ, "NO"),
        ("finished_at", TZ, "YES"),
        ("dry_run", "boolean", "NO"),
        ("deleted", "jsonb", "NO"),
        ("error", "text", "YES"),
    ],
    "erasures": [
        ("id", "bigint", "NO"),
        ("instance_id", "uuid", "NO"),
        ("tenant", "text", "NO"),
        ("erased_at", TZ, "NO"),
        ("erased_by", "text", "NO"),
        ("reason", "text", "YES"),
        ("deleted", "jsonb", "NO"),
    ],
    "audit_log": [
        ("id", "bigint", "NO"),
        ("tenant", "text", "NO"),
        ("recorded_at", TZ, "NO"),
        ("actor", "text", "NO"),
        ("action", "text", "NO"),
        ("target", "text", "NO"),
        ("client_ip", "text", "YES"),
        ("user_agent", "text", "YES"),
        ("details", "jsonb", "NO"),
        ("exported_at", TZ, "YES"),
    ],
    "task_link_uses": [
        ("link_id", "text", "NO"),
        ("tenant", "text", "NO"),
        ("task_id", "text", "NO"),
        ("decision", "text", "NO"),
        ("expires_at", TZ, "NO"),
        ("used_at", TZ, "NO"),
        ("used_by", "text", "NO"),
    ],
    "server_secrets": [
        ("name", "text", "NO"),
        ("value", "text", "NO"),
        ("created_at", TZ, "NO"),
    ],
    "schedule_ticks": [
        ("tenant", "text", "NO"),
        ("definition", "text", "NO"),
        ("last_tick", TZ, "NO"),
    ],
    "outbox_positions": [
        ("name", "text", "NO"),
        ("position", "bigint", "NO"),
        ("updated_at", TZ, "NO"),
        ("breaker_state", "text", "NO"),
        ("breaker_changed_at", TZ, "YES"),
    ],
    "outbox_dead_letters": [
        ("id", "bigint", "NO"),
        ("publisher", "text", "NO"),
        ("position", "bigint", "NO"),
        ("instance_id", "uuid", "NO"),
        ("tenant", "text", "NO"),
        ("event_type", "text", "NO"),
        ("error", "text", "NO"),
        ("status", "text", "NO"),
        ("failed_at", TZ, "NO"),
        ("retry_requested_at", TZ, "YES"),
        ("published_at", TZ, "YES"),
    ],
    "jobs": [
        ("id", "uuid", "NO"),
        ("tenant", "text", "NO"),
        ("kind", "text", "NO"),
        ("status", "text", "NO"),
        ("params", "jsonb", "NO"),
        ("created_by", "text", "YES"),
        ("total", "integer", "NO"),
        ("done", "integer", "NO"),
        ("refused", "integer", "NO"),
        ("failed", "integer", "NO"),
        ("errors", "jsonb", "NO"),
        ("created_at", TZ, "NO"),
        ("updated_at", TZ, "NO"),
        ("finished_at", TZ, "YES"),
        # 0023: job leases
        ("items", "jsonb", "YES"),
        ("item_position", "integer", "NO"),
        ("lease_owner", "text", "YES"),
        ("lease_until", TZ, "YES"),
        ("resumes", "integer", "NO"),
    ],
    "rate_limit_counters": [
        ("key", "text", "NO"),
        ("window_start", "bigint", "NO"),
        ("expires_at", "bigint", "NO"),
        ("hits", "integer", "NO"),
    ],
}


def _columns(url: str) -> dict[str, list[tuple[str, str, str]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    tables: dict[str, list[tuple[str, str, str]]] = {}
    for table, column, data_type, nullable in rows:
        tables.setdefault(table, []).append((column, data_type, nullable))
    return tables


def _event_store_catalog(url: str) -> dict[str, Any]:
    """Everything about the event store objects that the library's statements determine."""
    with psycopg.connect(url) as conn:

        def fetch(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query).fetchall()

        return {
            "columns": fetch(
                "SELECT column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_name = 'waymark_events' "
                # Migration 0021's column is Waymark's own; every other one is the library's.
                "AND column_name <> 'tenant' ORDER BY ordinal_position"
            ),
            "indexes": fetch(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'waymark_events' ORDER BY indexname"
            ),
            "options": fetch("SELECT reloptions FROM pg_class WHERE relname = 'waymark_events'"),
            "type": fetch(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'public.stored_event_uuid'::regclass AND attnum > 0 "
                "ORDER BY attnum"
            ),
            "function": fetch("SELECT pg_get_functiondef('public.es_insert_events_uuid'::regproc)"),
        }


@pytest.fixture
def empty_database(postgres_admin_url: str) -> Any:
    name = f"empty_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield database_url_for(postgres_admin_url, name)
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrations_create_the_expected_tables_and_columns(database_url: str) -> None:
    assert _columns(database_url) == EXPECTED_COLUMNS


def test_event_store_is_what_the_library_would_create(
    database_url: str, empty_database: str
) -> None:
    # Given the library's own DDL run on an empty database
    datastore = build_datastore(empty_database, pool_size=1)
    try:
        recorder = PostgresApplicationRecorder(datastore, events_table_name="waymark_events")
        recorder.create_table()
    finally:
        datastore.close()

    # Then the migrated event store is the same, object for object
    assert _event_store_catalog(database_url) == _event_store_catalog(empty_database)


def test_migrate_is_repeatable_and_reversible(empty_database: str) -> None:
    from alembic import command

    migrate(empty_database)
    migrate(empty_database)  # already at head: nothing to do
    assert _columns(empty_database) == EXPECTED_COLUMNS

    command.downgrade(alembic_config(empty_database), "base")
    assert _columns(empty_database) == {"alembic_version": EXPECTED_COLUMNS["alembic_version"]}

    migrate(empty_database)
    assert _columns(empty_database) == EXPECTED_COLUMNS


def test_migrate_accepts_sqlalchemy_style_and_unix_socket_urls(empty_database: str) -> None:
    migrate(empty_database.replace("postgresql://", "postgresql+psycopg://", 1))
    with psycopg.connect(empty_database) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row == ("0025",)
