"""The outbox's tables: the publisher's position and breaker state (`outbox_positions`) and
the events it gave up on (`outbox_dead_letters`); and the reads of the event store it does.

Why tailing `notification_id > position` skips nothing: every insert into `waymark_events`
takes the insert-order lock (an advisory lock its statement trigger takes, migration 0024)
before its ids are drawn and holds it until commit, so ids become visible in id order. A reader that
sees id N has every committed id below N (a rolled-back id is a gap forever, never filled).
tests/integration/test_outbox.py shows a reader without that lock missing events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import DictRow

from application import audit
from application.envelopes import EventEnvelope, audit_envelope, envelope
from application.outbox import DeadLetter, OutboxStatus
from infrastructure.history import history_entry
from infrastructure.postgres.arrays import Int8Array
from infrastructure.postgres.audit import entry_of, insert_entry
from infrastructure.postgres.recorder import EVENTS_TABLE

logger = logging.getLogger(__name__)

DEFAULT_PUBLISHER = "kafka"

_SELECT_EVENTS = f"""
    SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,
           i.tenant
    FROM {EVENTS_TABLE} e LEFT JOIN instances i ON i.id = e.originator_id
"""  # noqa: S608 - a constant table name


@dataclass(frozen=True)
class OutboxRecord:
    """One stored event to publish: its envelope, or why it has none (undecodable...)."""

    position: int
    instance_id: UUID
    tenant: str
    event_type: str
    envelope: EventEnvelope | None
    error: str | None = None


class PostgresOutbox:
    """The publisher's view of PostgreSQL, and the operators' (`OutboxMonitor`)."""

    def __init__(
        self, datastore: PostgresDatastore, mapper: Mapper[UUID], name: str = DEFAULT_PUBLISHER
    ) -> None:
        self.datastore = datastore
        self.mapper = mapper
        self.name = name

    # --- the publisher ---------------------------------------------------------------------

    def position(self) -> int:
        """The last acknowledged position (0, stored, the first time)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO outbox_positions (name, position) VALUES (%s, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )
            curs.execute("SELECT position FROM outbox_positions WHERE name = %s", (self.name,))
            row = curs.fetchone()
        assert row is not None
        return int(row["position"])

    def read_after(self, position: int, limit: int) -> list[OutboxRecord]:
        """The next `limit` stored events after `position`, in position order."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                _SELECT_EVENTS
                + " WHERE e.notification_id > %s ORDER BY e.notification_id LIMIT %s",
                (position, limit),
            )
            return [self._record(row) for row in curs.fetchall()]

    def read_positions(self, positions: list[int]) -> list[OutboxRecord]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                _SELECT_EVENTS + " WHERE e.notification_id = ANY(%b) ORDER BY e.notification_id",
                (Int8Array(positions),),
            )
            return [self._record(row) for row in curs.fetchall()]

    def advance(self, position: int, dead: list[tuple[OutboxRecord, str]]) -> None:
        """In one transaction: record the dead letters, then move the position forward (never
        back: a deposed leader's late write cannot rewind its successor)."""
        with self.datastore.transaction(commit=True) as curs:
            for record, error in dead:
                curs.execute(
                    "INSERT INTO outbox_dead_letters "
                    "(publisher, position, instance_id, tenant, event_type, error) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (publisher, position) "
                    "DO UPDATE SET error = EXCLUDED.error, status = 'dead', failed_at = now()",
                    (
                        self.name,
                        record.position,
                        record.instance_id,
                        record.tenant,
                        record.event_type,
                        error[:2000],
                    ),
                )
            curs.execute(
                "UPDATE outbox_positions SET position = GREATEST(position, %s), "
                "updated_at = now() WHERE name = %s",
                (position, self.name),
            )

    def retries_requested(self, limit: int) -> list[tuple[int, int]]:
        """(dead letter id, position) of re-drives operators asked for, oldest first."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT id, position FROM outbox_dead_letters "
                "WHERE publisher = %s AND status = 'retry' ORDER BY position LIMIT %s",
                (self.name, limit),
            )
            return [(int(r["id"]), int(r["position"])) for r in curs.fetchall()]

    def redriven(self, dead_letter_id: int, error: str | None) -> None:
        """A re-drive's outcome: published, or dead again with the new error."""
        with self.datastore.transaction(commit=True) as curs:
            if error is None:
                curs.execute(
                    "UPDATE outbox_dead_letters SET status = 'published', published_at = now() "
                    "WHERE id = %s",
                    (dead_letter_id,),
                )
            else:
                curs.execute(
                    "UPDATE outbox_dead_letters SET status = 'dead', error = %s, "
                    "failed_at = now() WHERE id = %s",
                    (error[:2000], dead_letter_id),
                )

    def set_breaker_state(self, state: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO outbox_positions (name, position, breaker_state, breaker_changed_at) "
                "VALUES (%s, 0, %s, now()) ON CONFLICT (name) DO UPDATE SET "
                "breaker_state = EXCLUDED.breaker_state, breaker_changed_at = now()",
                (self.name, state),
            )

    def _record(self, row: DictRow) -> OutboxRecord:
        position = int(row["notification_id"])
        instance_id = row["originator_id"]
        topic = str(row["topic"])
        event_type = topic.rpartition(".")[2]
        tenant = row["tenant"]
        if tenant is None:
            # The projection is written in the events' transaction: an event without its
            # instance row is not an instance event.
            return OutboxRecord(position, instance_id, "", event_type, None, "no instance row")
        try:
            stored = StoredEvent(
                originator_id=instance_id,
                originator_version=row["originator_version"],
                topic=topic,
                state=bytes(row["state"]),
            )
            entry = history_entry(self.mapper, stored, position)
            return OutboxRecord(
                position,
                instance_id,
                tenant,
                entry.type,
                envelope(entry, instance_id=instance_id, tenant=tenant),
            )
        except Exception as exc:  # undecodable: it can never be published as it is
            return OutboxRecord(
                position, instance_id, tenant, event_type, None, f"{type(exc).__name__}: {exc}"
            )

    # --- the audit log, the second source (application/audit.py) ---------------------------

    def unexported_audit(self, limit: int) -> list[EventEnvelope]:
        """The oldest audit entries not yet acknowledged by the broker, as envelopes.

        Marked rather than tailed by id: audit ids come from a sequence, and a transaction
        that drew a lower id may commit after one that drew a higher.
        """
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT * FROM audit_log WHERE exported_at IS NULL ORDER BY id LIMIT %s",
                (limit,),
            )
            return [audit_envelope(entry_of(row)) for row in curs.fetchall()]

    def audit_exported(self, ids: list[int]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("UPDATE audit_log SET exported_at = now() WHERE id = ANY(%s)", (ids,))

    # --- operators (OutboxMonitor) ---------------------------------------------------------

    def status(self) -> OutboxStatus:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT position, updated_at, breaker_state, breaker_changed_at "
                "FROM outbox_positions WHERE name = %s",
                (self.name,),
            )
            row: dict[str, Any] = dict(curs.fetchone() or {})
            position = int(row.get("position") or 0)
            curs.execute(
                f"SELECT count(*) AS n FROM {EVENTS_TABLE} WHERE notification_id > %s",  # noqa: S608
                (position,),
            )
            pending = int(curs.fetchone()["n"])  # type: ignore[index]
            curs.execute(
                "SELECT count(*) AS n FROM outbox_dead_letters "
                "WHERE publisher = %s AND status <> 'published'",
                (self.name,),
            )
            dead = int(curs.fetchone()["n"])  # type: ignore[index]
        lag = 0.0
        if pending:
            oldest = self.read_after(position, 1)
            if oldest and oldest[0].envelope is not None:
                age = datetime.now(UTC) - oldest[0].envelope.time
                lag = max(0.0, age.total_seconds())
        return OutboxStatus(
            publisher=self.name,
            position=position,
            pending=pending,
            lag_seconds=lag,
            breaker_state=str(row.get("breaker_state") or "closed"),
            breaker_changed_at=row.get("breaker_changed_at"),
            updated_at=row.get("updated_at"),
            dead_letters=dead,
        )

    def dead_letters(self, tenant: str | None, limit: int) -> list[DeadLetter]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT * FROM outbox_dead_letters WHERE publisher = %s "
                "AND (%s::text IS NULL OR tenant = %s) ORDER BY id DESC LIMIT %s",
                (self.name, tenant, tenant, limit),
            )
            return [_dead_letter(row) for row in curs.fetchall()]

    def request_retry(self, tenant: str | None, dead_letter_id: int) -> DeadLetter | None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE outbox_dead_letters SET status = 'retry', retry_requested_at = now() "
                "WHERE id = %s AND publisher = %s AND (%s::text IS NULL OR tenant = %s) "
                "RETURNING *",
                (dead_letter_id, self.name, tenant, tenant),
            )
            row = curs.fetchone()
            if row is not None:
                entry = audit.entry(
                    row["tenant"],
                    audit.DEAD_LETTER_RETRIED,
                    f"dead_letter:{dead_letter_id}",
                    event_type=row["event_type"],
                    instance_id=str(row["instance_id"]),
                )
                insert_entry(curs, entry)
        return None if row is None else _dead_letter(row)


def _dead_letter(row: DictRow) -> DeadLetter:
    return DeadLetter(
        id=int(row["id"]),
        position=int(row["position"]),
        instance_id=row["instance_id"],
        tenant=row["tenant"],
        event_type=row["event_type"],
        error=row["error"],
        status=row["status"],
        failed_at=row["failed_at"],
        retry_requested_at=row["retry_requested_at"],
        published_at=row["published_at"],
    )
