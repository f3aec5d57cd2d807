"""The event recorder that also writes the read-model projection in the events' transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from application.read_models import (
    ActivityRow,
    BookmarkRow,
    IdempotencyRecord,
    InstanceRow,
    Projection,
    TaskRow,
)
from infrastructure.postgres.listener import notify_new_work

EVENTS_TABLE = "waymark_events"
IDEMPOTENCY_CONSTRAINTS = frozenset(
    {"idempotency_records_pkey", "instances_tenant_idempotency_key_key"}
)


def _upsert(table: str, row_type: type, extra_updates: str = "") -> sql.Composed:
    """INSERT ... ON CONFLICT (id) DO UPDATE of every column of the row dataclass."""
    columns = [f.name for f in fields(row_type)]
    updates = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns if c != "id"
    ]
    if extra_updates:
        updates.append(sql.SQL(extra_updates))  # type: ignore[arg-type]
    return sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {updates}"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=sql.SQL(", ").join(updates),
    )


# A lease belongs to one attempt: when the projection moves the activity on (a new attempt
# after a failure, or completed/cancelled), the worker's lock no longer applies.
_LEASE_RESET = (
    "locked_by = CASE WHEN activities.attempt = EXCLUDED.attempt "
    "AND activities.status = EXCLUDED.status THEN activities.locked_by END, "
    "locked_until = CASE WHEN activities.attempt = EXCLUDED.attempt "
    "AND activities.status = EXCLUDED.status THEN activities.locked_until END"
)

UPSERT_INSTANCES = _upsert("instances", InstanceRow)
UPSERT_BOOKMARKS = _upsert("bookmarks", BookmarkRow)
UPSERT_TASKS = _upsert("tasks", TaskRow)
UPSERT_ACTIVITIES = _upsert("activities", ActivityRow, extra_updates=_LEASE_RESET)
INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency_records (tenant, scope, key, result) VALUES (%s, %s, %s, %s)"
)


def _params(row: Any) -> tuple[Any, ...]:
    # JSON columns (action, form) travel as jsonb; everything else psycopg adapts itself.
    return tuple(
        Jsonb(value) if isinstance(value, dict | list) else value
        for value in (getattr(row, f.name) for f in fields(row))
    )


def _by_id(rows: Sequence[Any]) -> list[Any]:
    # One lock order for every transaction: two commands touching the same rows in
    # opposite orders would otherwise deadlock.
    return sorted(rows, key=lambda row: str(row.id))


def write_projection(curs: Cursor[DictRow], projection: Projection) -> None:
    """Upsert the projection's rows and insert its idempotency records."""
    for statement, rows in (
        (UPSERT_INSTANCES, projection.instances),
        (UPSERT_BOOKMARKS, projection.bookmarks),
        (UPSERT_TASKS, projection.tasks),
        (UPSERT_ACTIVITIES, projection.activities),
    ):
        if rows:
            curs.executemany(statement, [_params(row) for row in _by_id(rows)])
    if projection.idempotency:
        records = [_idempotency_params(r) for r in projection.idempotency]
        curs.executemany(INSERT_IDEMPOTENCY, records)
    # Delivered at commit, to the workers of every process (dropped if this rolls back).
    notify_new_work(curs, projection)


def _idempotency_params(record: IdempotencyRecord) -> tuple[Any, ...]:
    return (record.tenant, record.scope, record.key, Jsonb(record.result))


class WaymarkRecorder(PostgresApplicationRecorder):
    """Records stored events and, in the same transaction, the command's projection.

    The library calls `_insert_events` inside its transaction (and pipeline) before it
    inserts the events, so the read models can never disagree with the event store: a
    conflict on either rolls back both.
    """

    def construct_pg_stored_event(
        self, originator_id: Any, originator_version: int, topic: str, state: bytes
    ) -> Any:
        # The composite type is looked up when the recorder is built; a process started
        # while another one was still migrating finds it on first use instead.
        if self.stored_event_type_name not in self.datastore.psycopg_python_types:
            self.datastore.register_type_adapters()
        return super().construct_pg_stored_event(originator_id, originator_version, topic, state)

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        projection: Projection | None = None,
        **kwargs: Any,
    ) -> None:
        if projection is not None:
            write_projection(curs, projection)
        super()._insert_events(curs, stored_events, **kwargs)
