"""InstanceStore on PostgreSQL: instances' events and their projection saved in one commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import psycopg.errors
from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import retry

from application.ports import (
    ConcurrencyConflictError,
    DuplicateIdempotencyKeyError,
    HistoryEntry,
    InstanceRead,
)
from application.read_models import BookmarkRow, IdempotencyRecord, InstanceRow, Projection
from infrastructure.history import history_entry
from infrastructure.postgres.arrays import Int8Array, UuidArray
from infrastructure.postgres.datastore import one_statement
from infrastructure.postgres.event_store import WaymarkApplication, WaymarkFactory
from infrastructure.postgres.queries import to_row
from infrastructure.postgres.recorder import (
    EVENTS_TABLE,
    IDEMPOTENCY_CONSTRAINTS,
    IDEMPOTENCY_RECORDS_PRIMARY_KEY,
)

if TYPE_CHECKING:
    from domain.instance import WorkflowInstance

EVENTS_PRIMARY_KEY = f"{EVENTS_TABLE}_pkey"
_NO_LIMIT = 2**62  # no version bound (originator_version is a bigint)
_SELECT_HISTORY = (
    "SELECT originator_id, originator_version, topic, state, notification_id "
    "FROM waymark_events WHERE originator_id = %s AND originator_version > %s "
    "ORDER BY originator_version LIMIT %s"
)
_SELECT_MANY = (
    "SELECT originator_id, originator_version, topic, state FROM waymark_events "
    "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version"
)
# An instance's events when it is the tenant's: the ownership check and the read in one
# statement (one round trip; an instance in a callback or a task decision is read so).
_SELECT_OWNED_EVENTS = (
    "SELECT originator_id, originator_version, topic, state FROM waymark_events "
    "WHERE originator_id = %s AND originator_version <= %s "
    "AND EXISTS (SELECT 1 FROM instances WHERE id = %s AND tenant = %s) "
    "ORDER BY originator_version"
)
# The bookmark a token names with its instance's events (a callback's two reads, one
# round trip and one snapshot); the bookmark's columns repeat on every event's row.
_SELECT_BY_BOOKMARK = (
    "SELECT b.*, e.originator_version AS event_version, e.topic AS event_topic, "
    "e.state AS event_state FROM bookmarks b "
    "JOIN waymark_events e ON e.originator_id = b.instance_id "
    "WHERE b.token = %s ORDER BY e.originator_version"
)
_SELECT_RECORD = "SELECT 1 FROM idempotency_records WHERE tenant = %s AND scope = %s AND key = %s"
_SELECT_START_KEY = (
    "SELECT 1 FROM instances WHERE tenant = %s AND idempotency_key = %s AND id <> %s"
)
_SELECT_AT_VERSIONS = (
    "SELECT e.originator_id, e.originator_version, e.topic, e.state "
    "FROM waymark_events e "
    "JOIN unnest(%b::uuid[], %b::bigint[]) AS k(originator_id, originator_version) "
    "USING (originator_id, originator_version)"
)


class PostgresInstanceStore:
    """Loads instances from their events; saves events and projection atomically."""

    def __init__(self, app: WaymarkApplication) -> None:
        self.app = app

    @property
    def datastore(self) -> PostgresDatastore:
        # Application.factory is typed as the library's base factory; ours is a WaymarkFactory.
        return cast(WaymarkFactory, self.app.factory).datastore

    def get(
        self, instance_id: UUID, tenant: str | None = None, version: int | None = None
    ) -> WorkflowInstance | None:
        if tenant is None:
            stored = self.app.recorder.select_events(instance_id, lte=version)
        else:
            stored = self._owned_events(instance_id, tenant, version)
        if not stored:
            return None
        return _replay(map(self.app.mapper.to_domain_event, stored))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _owned_events(
        self, instance_id: UUID, tenant: str, version: int | None
    ) -> list[StoredEvent]:
        """The events when the instance is the tenant's, else none. The read-model row is
        written in the transaction of the instance's first events, so "no row for this
        tenant" means "not this tenant's" (or not there at all). Retried on a dropped
        connection as the library's `select_events` is."""
        upto = version if version is not None else _NO_LIMIT
        with one_statement(self.datastore) as curs:
            params = (instance_id, upto, instance_id, tenant)
            curs.execute(_SELECT_OWNED_EVENTS, params, prepare=True)
            return [_stored(row) for row in curs.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def by_bookmark_token(self, token: str) -> tuple[BookmarkRow, InstanceRead] | None:
        with one_statement(self.datastore) as curs:
            curs.execute(_SELECT_BY_BOOKMARK, (token,), prepare=True)
            rows = curs.fetchall()
        if not rows:
            return None
        bookmark = to_row(BookmarkRow, rows[0])
        to_domain_event = self.app.mapper.to_domain_event

        def instance() -> WorkflowInstance | None:
            return _replay(
                to_domain_event(
                    StoredEvent(
                        originator_id=bookmark.instance_id,
                        originator_version=row["event_version"],
                        topic=row["event_topic"],
                        state=bytes(row["event_state"]),
                    )
                )
                for row in rows
            )

        return bookmark, InstanceRead(bookmark.instance_id, rows[-1]["event_version"], instance)

    def get_many(self, instance_ids: Sequence[UUID]) -> dict[UUID, WorkflowInstance]:
        """Every instance among `instance_ids`, from one query (the timer worker's batch)."""
        ids = list(dict.fromkeys(instance_ids))
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_MANY, (UuidArray(ids),))
            rows = curs.fetchall()
        events: dict[UUID, list[Any]] = {}
        for row in rows:
            stored = _stored(row)
            owner = UUID(str(row["originator_id"]))
            events.setdefault(owner, []).append(self.app.mapper.to_domain_event(stored))
        return {owner: _replay(replay) for owner, replay in events.items()}

    def save(self, changes: Sequence[Aggregate | DomainEvent], projection: Projection) -> None:
        # Collect the pending events ourselves (the aggregates' queues are emptied either
        # way) so that a failed save can be compared with what is in the table.
        pending = [
            event
            for change in changes
            for event in (change.collect_events() if isinstance(change, Aggregate) else [change])
        ]
        # Straight to the recorder: what `Application.save` adds (a structural protocol
        # check per event, snapshots, the repository cache, notify hooks) is unused here
        # and cost ~0.4 ms per workflow.
        mapper = self.app.mapper
        try:
            self.app.recorder.insert_events(
                [mapper.to_stored_event(event) for event in pending], projection=projection
            )
        except IntegrityError as error:
            instance_ids = list(dict.fromkeys(cast(UUID, e.originator_id) for e in pending))
            self._classify_conflict(error, pending, instance_ids, projection)

    def _classify_conflict(
        self,
        error: IntegrityError,
        pending: list[Any],
        instance_ids: list[UUID],
        projection: Projection,
    ) -> None:
        """Return if our events are in fact committed, else raise the matching port error."""
        ours = [self.app.mapper.to_stored_event(event) for event in pending]
        stored = self._stored_at(ours)
        # The library retries insert_events on a dropped connection; when the first try
        # committed but its reply was lost, the retry collides with our own events. Events
        # carry unique ids and timestamps, so byte-identical rows can only be ours.
        if ours and all(stored.get(_key(e)) == (e.topic, e.state) for e in ours):
            return
        constraint = _constraint_name(error)
        if constraint in IDEMPOTENCY_CONSTRAINTS:
            raise self._duplicate_key(constraint, error, projection) from error
        if constraint == EVENTS_PRIMARY_KEY:
            # StoredEvent.originator_id is typed UUID | str; aggregates here have UUID ids.
            conflicted = list(
                dict.fromkeys(cast(UUID, e.originator_id) for e in ours if _key(e) in stored)
            )
            raise ConcurrencyConflictError(conflicted or instance_ids) from error
        raise error

    def _duplicate_key(
        self, constraint: str | None, error: IntegrityError, projection: Projection
    ) -> DuplicateIdempotencyKeyError:
        """The error naming which of our keys collided (so a failed group can be split).

        PostgreSQL's detail spells the key out, `Key (tenant, scope, key)=(acme, resume,
        k1) already exists.`; our candidates are matched against it. Values with ", " in
        them could make that ambiguous, and a server may withhold the detail, so without
        exactly one match the tables are asked which of our keys exist.
        """
        detail = _diagnostic_detail(error) or ""
        if constraint == IDEMPOTENCY_RECORDS_PRIMARY_KEY:
            records = projection.idempotency
            matched = list(
                {
                    (r.tenant, r.scope, r.key): r
                    for r in records
                    if f"=({r.tenant}, {r.scope}, {r.key})" in detail
                }.values()
            )
            if len(matched) != 1:
                matched = self._existing_records(records)
            if matched:
                r = matched[0]
                return DuplicateIdempotencyKeyError(r.tenant, r.key, scope=r.scope)
            return DuplicateIdempotencyKeyError()
        rows = [row for row in projection.instances if row.idempotency_key is not None]
        # Keyed by the key: with two rows of one save sharing it, the later one collided.
        found = list(
            {
                (row.tenant, row.idempotency_key): row
                for row in rows
                if f"=({row.tenant}, {row.idempotency_key})" in detail
            }.values()
        )
        if len(found) != 1:
            found = self._existing_start_keys(rows)
        if found:
            row = found[0]
            return DuplicateIdempotencyKeyError(row.tenant, row.idempotency_key, instance_id=row.id)
        return DuplicateIdempotencyKeyError()

    def _existing_records(self, records: list[IdempotencyRecord]) -> list[IdempotencyRecord]:
        with self.datastore.transaction(commit=False) as curs:
            return [
                r
                for r in records
                if curs.execute(_SELECT_RECORD, (r.tenant, r.scope, r.key)).fetchone()
            ]

    def _existing_start_keys(self, rows: list[InstanceRow]) -> list[InstanceRow]:
        with self.datastore.transaction(commit=False) as curs:
            return [
                row
                for row in rows
                if curs.execute(
                    _SELECT_START_KEY, (row.tenant, row.idempotency_key, row.id)
                ).fetchone()
            ]

    def _stored_at(self, ours: list[StoredEvent]) -> dict[tuple[UUID, int], tuple[str, bytes]]:
        if not ours:
            return {}
        ids = [e.originator_id for e in ours]
        versions = [e.originator_version for e in ours]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_AT_VERSIONS, (UuidArray(ids), Int8Array(versions)))
            return {
                (row["originator_id"], row["originator_version"]): (
                    row["topic"],
                    bytes(row["state"]),
                )
                for row in curs.fetchall()
            }

    def history(
        self, instance_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[HistoryEntry]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_HISTORY, (instance_id, after_version, limit))
            rows = curs.fetchall()
        return [
            history_entry(
                self.app.mapper,
                _stored(row),
                position=row["notification_id"],
            )
            for row in rows
        ]


def _key(event: StoredEvent) -> tuple[UUID, int]:
    return (UUID(str(event.originator_id)), event.originator_version)


def _psycopg_error(error: BaseException) -> psycopg.errors.IntegrityError | None:
    """The psycopg error behind eventsourcing's wrapped one, if any."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, psycopg.errors.IntegrityError):
            return cause
        cause = cause.__cause__
    return None


def _replay(events: Iterable[Any]) -> WorkflowInstance:
    """The aggregate from its events in order: the library's `project_aggregate` without its
    per-event structural protocol assertion (several microseconds an event on replay)."""
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return cast("WorkflowInstance", aggregate)


def _constraint_name(error: BaseException) -> str | None:
    """The violated constraint, from PostgreSQL's diagnostic."""
    cause = _psycopg_error(error)
    return cause.diag.constraint_name if cause is not None else None


def _diagnostic_detail(error: BaseException) -> str | None:
    cause = _psycopg_error(error)
    return cause.diag.message_detail if cause is not None else None


def _stored(row: dict[str, Any]) -> StoredEvent:
    """A stored event from a row of `waymark_events` (its state as bytes)."""
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
