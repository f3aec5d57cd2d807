"""The event recorder that also writes the read-model projection in the events' transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, cast
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Cursor, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from application.read_models import (
    ActivityRow,
    BookmarkRow,
    IdempotencyRecord,
    IncidentRow,
    InstanceRow,
    Projection,
    TaskRow,
)
from infrastructure.postgres.admission_check import send_admission_check
from infrastructure.postgres.arrays import ByteaArray, Int8Array, TextArray, UuidArray
from infrastructure.postgres.audit import insert_entry
from infrastructure.postgres.listener import notify_new_work

EVENTS_TABLE = "waymark_events"
_BEGIN = b"BEGIN"
_COMMIT = b"COMMIT"
IDEMPOTENCY_RECORDS_PRIMARY_KEY = "idempotency_records_pkey"
INSTANCES_START_KEY = "instances_tenant_idempotency_key_key"
IDEMPOTENCY_CONSTRAINTS = frozenset({IDEMPOTENCY_RECORDS_PRIMARY_KEY, INSTANCES_START_KEY})


def _upsert(
    table: str, row_type: type, extra_updates: str = "", insert_only: tuple[str, ...] = ()
) -> bytes:
    """INSERT ... ON CONFLICT (id) DO UPDATE of every column of the row dataclass
    (`insert_only` columns are written by the INSERT and left alone by the UPDATE); as
    bytes, so psycopg does not compose the statement again at every execution."""
    updated = [f.name for f in fields(row_type)]
    columns = updated + list(insert_only)
    updates = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updated if c != "id"
    ]
    if extra_updates:
        updates.append(sql.SQL(extra_updates))  # type: ignore[arg-type]
    return (
        sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) "
            "ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        .format(
            table=sql.Identifier(table),
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            updates=sql.SQL(", ").join(updates),
        )
        .as_bytes(None)
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
# A new activity leased, in its scheduling commit, to this process's task worker
# (application/eager.py): one row version instead of an insert and a claim's update. Only
# new rows are leased so (the ids are fresh); on a conflict the usual lease rule applies.
UPSERT_LEASED_ACTIVITIES = _upsert(
    "activities",
    ActivityRow,
    extra_updates=_LEASE_RESET,
    insert_only=("locked_by", "locked_until"),
)
UPSERT_INCIDENTS = _upsert("incidents", IncidentRow)
INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency_records (tenant, scope, key, result) VALUES (%s, %s, %s, %s)"
)


_FIELDS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
_JSON = (dict, list)


def _params(row: Any) -> tuple[Any, ...]:
    # JSON columns (action, form) travel as jsonb; everything else psycopg adapts itself.
    getter = _FIELDS.get(type(row))
    if getter is None:  # one getter per row type: `fields()` per row cost more than the rest
        names = [f.name for f in fields(row)]
        getter = _FIELDS[type(row)] = attrgetter(*names) if len(names) > 1 else _one(names[0])
    values = getter(row)
    for value in values:  # most rows have none: then the getter's tuple is the parameters
        if isinstance(value, _JSON):
            return tuple([Jsonb(v) if isinstance(v, _JSON) else v for v in values])
    return values


def _one(name: str) -> Callable[[Any], tuple[Any, ...]]:
    return lambda row: (getattr(row, name),)


def _by_id(rows: Sequence[Any]) -> list[Any]:
    # One lock order for every transaction: two commands touching the same rows in
    # opposite orders would otherwise deadlock.
    return sorted(rows, key=lambda row: str(row.id))


def write_projection(curs: Cursor[DictRow], projection: Projection) -> None:
    """Upsert the projection's rows and insert its idempotency records."""
    leases = projection.leases
    activities = [a for a in projection.activities if a.id not in leases]
    for statement, rows in (
        (UPSERT_INSTANCES, projection.instances),
        (UPSERT_BOOKMARKS, projection.bookmarks),
        (UPSERT_TASKS, projection.tasks),
        (UPSERT_ACTIVITIES, activities),
        (UPSERT_INCIDENTS, projection.incidents),
    ):
        if rows:
            curs.executemany(statement, [_params(row) for row in _by_id(rows)])
    leased = [a for a in projection.activities if a.id in leases]
    if leased:  # new rows: no other transaction can hold them, so their order is free
        curs.executemany(
            UPSERT_LEASED_ACTIVITIES, [(*_params(row), *leases[row.id]) for row in leased]
        )
    if projection.idempotency:
        records = [_idempotency_params(r) for r in projection.idempotency]
        curs.executemany(INSERT_IDEMPOTENCY, records)
    for entry in projection.audit:
        insert_entry(curs, entry)
    # Delivered at commit, to the workers of every process (dropped if this rolls back).
    notify_new_work(curs, projection)


def _idempotency_params(record: IdempotencyRecord) -> tuple[Any, ...]:
    return (record.tenant, record.scope, record.key, Jsonb(record.result))


class StoredEventTooLargeError(Exception):
    """A command would write more than a configured storage limit allows (nothing is written).

    `limit` names the setting (`WAYMARK_MAX_EVENT_BYTES` or `WAYMARK_MAX_COMMAND_BYTES`),
    `size` and `maximum` are in bytes of stored (transcoded) event state.
    """

    def __init__(self, limit: str, size: int, maximum: int, what: str) -> None:
        super().__init__(f"{what} is {size} bytes stored, over {limit}={maximum}")
        self.limit = limit
        self.size = size
        self.maximum = maximum


@dataclass(frozen=True)
class WriteLimits:
    """What one command may write: per stored event and in total (bytes of event state)."""

    max_event_bytes: int = 262_144
    max_command_bytes: int = 8_388_608

    def check(self, stored_events: Sequence[StoredEvent]) -> None:
        total = 0
        for event in stored_events:
            size = len(event.state)
            total += size
            if size > self.max_event_bytes:
                what = f"event {event.topic.rpartition('.')[2]}"
                raise StoredEventTooLargeError(
                    "WAYMARK_MAX_EVENT_BYTES", size, self.max_event_bytes, what
                )
        if total > self.max_command_bytes:
            raise StoredEventTooLargeError(
                "WAYMARK_MAX_COMMAND_BYTES", total, self.max_command_bytes, "the command's events"
            )


class WaymarkRecorder(PostgresApplicationRecorder):
    """Records stored events and, in the same transaction, the command's projection.

    `insert_events` replaces the library's: same transaction, and a psycopg pipeline used
    differently; the library's NOTIFY of the events' channel is queued by the table's
    statement trigger instead (migration 0025: one statement less per commit). Notification
    ids are issued in commit order (a reader tailing them never passes a gap that fills
    later) by the insert-order lock every INSERT into the table takes: a transaction-scoped
    advisory lock, taken by the table's statement trigger (migration 0024), not the
    library's `LOCK TABLE ... IN EXCLUSIVE MODE`, which also stopped every writer while a
    VACUUM or ANALYZE of the table ran.
    psycopg 3.3.9's `Pipeline.sync()` can leave the tail of a large message (about 1 MB and
    up) in libpq's output buffer and then wait to read a reply the server cannot send,
    because the server is still waiting for the rest of the message: the transaction hangs
    forever holding the insert-order lock (docs/upstream/psycopg-pipeline-large-composite.md).
    Fetching a result inside the pipeline and leaving it by exiting its block both flush
    completely before they wait (`_fetch_gen(flush=True)`), so this recorder never calls
    `sync()`: tests/integration/test_postgres_large_writes.py commits multi-megabyte
    events and projections through it.
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = EVENTS_TABLE,
        limits: WriteLimits | None = None,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.limits = limits or WriteLimits()
        table = sql.Identifier(datastore.schema, events_table_name)
        # Four parallel arrays, sent binary: no composite type (whose text form spells a
        # bytea out in hex, twice its size), one row per event in the arrays' order, so
        # the notification ids follow the events' order.
        # The fifth array is each event's tenant (migration 0021), from the projection's
        # instance rows: every command projects its instances, so that is the usual path,
        # as cheap as the four arrays alone. An event without one (a save with no
        # projection) takes its instance's read-model row's tenant in a second form of
        # the statement, only then: its correlated lookup costs ~0.2 ms a statement.
        insert = (
            "INSERT INTO {table} (originator_id, originator_version, topic, state, tenant) "
            "SELECT u.id, u.version, u.topic, u.state, {tenant} "
            "FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[], %b::text[]) "
            "AS u(id, version, topic, state, tenant) "
            "RETURNING notification_id"
        )
        # Composed once, as bytes: psycopg composes a `sql.Composed` again at every execution.
        self.insert_events_sql = (
            sql.SQL(insert).format(table=table, tenant=sql.SQL("u.tenant")).as_bytes(None)
        )
        self.insert_untagged_events_sql = (
            sql.SQL(insert)
            .format(
                table=table,
                tenant=sql.SQL(
                    "coalesce(u.tenant, (SELECT i.tenant FROM instances i WHERE i.id = u.id))"
                ),
            )
            .as_bytes(None)
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Refused before any connection is taken: an oversized command never reaches the
        # database, let alone the insert-order lock.
        self.limits.check(stored_events)
        return self._insert_events_in_transaction(stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_events_in_transaction(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # One pipeline for the whole transaction. BEGIN and the projection's statements go
        # out first; then (starts only) the admission check is fetched, before the lock;
        # then the insert (whose trigger takes the insert-order lock and queues the NOTIFY)
        # and COMMIT go out TOGETHER and the pipeline is left by exiting its block (one
        # Sync, a flushing fetch: never `Pipeline.sync()`, which can hang on a large
        # message, see the class docstring). So the lock is never held across a round trip
        # to this process, whose threads may wait milliseconds for the GIL there: every
        # event writer of the database queues behind that lock (docs/scaling.md). The
        # insert's parameters are dumped before it is sent;
        # tests/integration/test_events_lock_hold.py.
        # BEGIN and COMMIT are plain statements, not `conn.transaction()`: in a pipeline
        # that block syncs on leaving (one more round trip, the lock still held) before it
        # sends COMMIT.
        projection: Projection | None = kwargs.get("projection")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            try:
                with conn.pipeline():
                    conn.execute(_BEGIN)
                    self._insert_events(curs, stored_events, **kwargs)
                    if stored_events:
                        # The starts' admission (admission_check.py): its answer is read
                        # now, so that a stale claim rolls back before the lock is taken.
                        admitted = projection.admitted if projection else ()
                        send_admission_check(conn, admitted).verify()
                        self._send_insert(curs, stored_events, projection)
                    conn.execute(_COMMIT)
            except BaseException:
                # A failed statement aborted the transaction and the pipeline skipped the
                # rest, COMMIT included: end it (which also forgets prepared statements
                # whose PREPARE the abort skipped). A broken connection cannot: the pool
                # discards it, and the first error is the one that matters.
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                raise
            if not stored_events:
                return None
            return [row["notification_id"] for row in curs.fetchall()]

    def _send_insert(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        projection: Projection | None,
    ) -> None:
        """Queue the insert (RETURNING the notification ids) on `curs`. Its parameters are
        built first: the insert's trigger takes the insert-order lock, held from then to the
        commit (and queues the channel's NOTIFY, migration 0025)."""
        tenants = {row.id: row.tenant for row in projection.instances} if projection else {}
        tagged = [tenants.get(cast(UUID, e.originator_id)) for e in stored_events]
        insert = self.insert_events_sql if None not in tagged else self.insert_untagged_events_sql
        params = (  # typed: dumped without psycopg's per-list type discovery (arrays.py)
            UuidArray([e.originator_id for e in stored_events]),
            Int8Array([e.originator_version for e in stored_events]),
            TextArray([e.topic for e in stored_events]),
            ByteaArray([e.state for e in stored_events]),
            TextArray(tagged),
        )
        curs.execute(insert, params)

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
