"""Retention and erasure in PostgreSQL: bounded deletes, the outbox guard, VACUUM, audit.

Locks: writers serialise their inserts on the events' insert-order lock, an advisory lock
(migration 0024) that neither a DELETE's ROW EXCLUSIVE nor a VACUUM's SHARE UPDATE
EXCLUSIVE conflicts with. Until 0024 every command took `LOCK TABLE waymark_events IN
EXCLUSIVE MODE`, which conflicts with both: a measured 300k-row DELETE stalled every writer
for 0.46 s. Each batch is still one short transaction bounded by `batch_rows` (an
instance's events are never split: an instance is deleted whole or not at all), with the
events deleted LAST in it, so its row locks, its WAL and a rollback stay small.

The outbox (another component) keeps `outbox_positions(name, position)`: an event may go only
once every publisher has passed it (`notification_id <= min(position)`). Its tables may not
exist (no outbox installed): they are looked up with `to_regclass` and skipped when absent.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.types.json import Jsonb

from application import audit
from application.cleanup import Batch, CleanupReport, Scope
from application.errors import InstanceNotEndedError, InstanceNotFoundError
from application.read_models import InstanceRow, Page
from application.views import instance_row_view
from infrastructure.postgres.audit import insert_entry
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
    parse_datetime,
    parse_uuid,
)
from infrastructure.postgres.datastore import normalise_url
from infrastructure.postgres.queries import to_row

logger = logging.getLogger(__name__)

ENDED = ("completed", "failed", "cancelled")
# Read models first, events last (see the module docstring).
_DELETE_INSTANCE_ROWS = (
    ("bookmarks", "DELETE FROM bookmarks WHERE instance_id = ANY(%s)"),
    ("tasks", "DELETE FROM tasks WHERE instance_id = ANY(%s)"),
    ("activities", "DELETE FROM activities WHERE instance_id = ANY(%s)"),
    ("incidents", "DELETE FROM incidents WHERE instance_id = ANY(%s)"),
    ("instances", "DELETE FROM instances WHERE id = ANY(%s)"),
    ("waymark_events", "DELETE FROM waymark_events WHERE originator_id = ANY(%s)"),
)
_COUNT_INSTANCE_ROWS = (
    ("bookmarks", "SELECT count(*) FROM bookmarks WHERE instance_id = ANY(%s)"),
    ("tasks", "SELECT count(*) FROM tasks WHERE instance_id = ANY(%s)"),
    ("activities", "SELECT count(*) FROM activities WHERE instance_id = ANY(%s)"),
    ("incidents", "SELECT count(*) FROM incidents WHERE instance_id = ANY(%s)"),
    ("waymark_events", "SELECT count(*) FROM waymark_events WHERE originator_id = ANY(%s)"),
)
_EXPIRED = """
    SELECT i.id, i.aggregate_version FROM instances i
    WHERE i.ended_at IS NOT NULL AND i.status = ANY(%(ended)s)
      AND ((i.status = 'completed' AND i.ended_at < %(completed)s)
        OR (i.status = 'failed' AND i.ended_at < %(failed)s)
        OR (i.status = 'cancelled' AND i.ended_at < %(cancelled)s))
      AND {scope}
      -- a child still running would resume a parent that is gone
      AND NOT EXISTS (SELECT 1 FROM instances c WHERE c.parent_id = i.id AND c.ended_at IS NULL)
      AND {published}
    ORDER BY i.ended_at, i.id
    {limit}
"""
_DEFAULT_SCOPE = (
    "NOT EXISTS (SELECT 1 FROM definitions d WHERE d.tenant = i.tenant "
    "AND d.name = i.definition AND d.version = i.version AND d.document ? 'retention')"
)
_ONE_DEFINITION = (
    "i.tenant = %(tenant)s AND i.definition = %(definition)s AND i.version = %(version)s"
)
_PUBLISHED = (
    "NOT EXISTS (SELECT 1 FROM waymark_events e WHERE e.originator_id = i.id "
    "AND e.notification_id > %(watermark)s)"
)
_STUCK = (
    "status = 'running' "
    "AND NOT EXISTS (SELECT 1 FROM bookmarks b WHERE b.instance_id = instances.id "
    "AND b.status = 'open') "
    "AND NOT EXISTS (SELECT 1 FROM activities a WHERE a.instance_id = instances.id "
    "AND a.status = 'scheduled')"
)
_LONG_RUNNING = "status = 'suspended' AND updated_at < %(before)s"
CONDITION_SQL = {"long_running": _LONG_RUNNING, "stuck": _STUCK}


class PostgresCleanupStore:
    """`application.cleanup.CleanupStore` on the process's pool (VACUUM on its own
    connection: it cannot run inside a transaction)."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        database_url: str,
        *,
        cursor_secret: bytes | None = None,
        lock_timeout: float = 5.0,
    ) -> None:
        self.datastore = datastore
        self.database_url = normalise_url(database_url)
        self.cursor_secret = cursor_secret or new_cursor_secret()
        self.lock_timeout_ms = int(lock_timeout * 1000)

    # --- retention ----------------------------------------------------------------------

    def retention_overrides(self) -> list[tuple[Scope, Any]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT tenant, name, version, document -> 'retention' AS retention "
                "FROM definitions WHERE document ? 'retention' ORDER BY tenant, name, version"
            )
            rows = curs.fetchall()
        return [(Scope(r["tenant"], r["name"], r["version"]), r["retention"]) for r in rows]

    def outbox_watermark(self) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            if not _exists(curs, "outbox_positions"):
                return None
            curs.execute("SELECT min(position) AS low, count(*) AS n FROM outbox_positions")
            row = curs.fetchone()
        if row is None or not row["n"]:
            return None
        return int(row["low"])

    def expire_instances(
        self,
        scope: Scope | None,
        cutoffs: dict[str, datetime],
        watermark: int | None,
        batch_rows: int,
        dry_run: bool,
    ) -> Batch:
        params: dict[str, Any] = {
            "ended": list(ENDED),
            "completed": cutoffs.get("completed"),
            "failed": cutoffs.get("failed"),
            "cancelled": cutoffs.get("cancelled"),
            "watermark": watermark,
            "limit": batch_rows,
        }
        if scope is not None:
            params.update(tenant=scope.tenant, definition=scope.definition, version=scope.version)
        query = _EXPIRED.format(
            scope=_ONE_DEFINITION if scope is not None else _DEFAULT_SCOPE,
            published=_PUBLISHED if watermark is not None else "true",
            # A dry run counts everything at once; a real one locks at most one batch and
            # skips rows another cleanup (or a command) holds.
            limit="" if dry_run else "LIMIT %(limit)s FOR UPDATE OF i SKIP LOCKED",
        )
        with self.datastore.transaction(commit=not dry_run) as curs:
            curs.execute(f"SET LOCAL lock_timeout = {self.lock_timeout_ms}")
            curs.execute(query, params)
            candidates = curs.fetchall()
            if dry_run:
                ids = [r["id"] for r in candidates]
                rows = {"instances": len(ids)}
                for table, statement in _COUNT_INSTANCE_ROWS:
                    curs.execute(statement, (ids,))
                    rows[table] = int(curs.fetchone()["count"])  # type: ignore[index]
                return Batch(len(ids), rows)
            ids = _within(candidates, batch_rows)
            rows = _delete_instances(curs, ids)
        return Batch(len(ids), rows)

    def prune_idempotency(self, before: datetime, batch_rows: int, dry_run: bool) -> int:
        return self._prune_by_age("idempotency_records", before, batch_rows, dry_run)

    def prune_dead_letters(self, before: datetime, batch_rows: int, dry_run: bool) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            if not _exists(curs, "outbox_dead_letters"):
                return None
        # A dead letter an operator asked to re-drive (status `retry`) is kept until sent.
        return self._prune_by_age(
            "outbox_dead_letters",
            before,
            batch_rows,
            dry_run,
            column="failed_at",
            extra="AND status <> 'retry'",
        )

    def _prune_by_age(
        self,
        table: str,
        before: datetime,
        batch_rows: int,
        dry_run: bool,
        *,
        column: str = "created_at",
        extra: str = "",
    ) -> int:
        name = sql.Identifier(table)
        where = sql.SQL("{} < %s ").format(sql.Identifier(column)) + sql.SQL(extra)
        with self.datastore.transaction(commit=not dry_run) as curs:
            if dry_run:
                curs.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {}").format(name, where),
                    (before,),
                )
                return int(curs.fetchone()["count"])  # type: ignore[index]
            curs.execute(
                sql.SQL(
                    "DELETE FROM {t} WHERE ctid = ANY(ARRAY("
                    "SELECT ctid FROM {t} WHERE {w} LIMIT %s FOR UPDATE SKIP LOCKED))"
                ).format(t=name, w=where),
                (before, batch_rows),
            )
            return curs.rowcount

    def vacuum(self, tables: list[str]) -> None:
        """VACUUM (ANALYZE) each table deleted from, outside any transaction.

        The event table's own settings (autovacuum_vacuum_threshold = 100000000, the
        library's) stay as they are: a schema test holds them to the library's DDL. A
        VACUUM takes SHARE UPDATE EXCLUSIVE, which the writers' insert-order lock (advisory,
        migration 0024) does not conflict with; bench/cleanup.py measures the writers'
        latency while it runs."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for table in tables:  # only tables rows were deleted from: they exist
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))

    def record_run(self, report: CleanupReport) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO cleanup_runs (started_at, finished_at, dry_run, deleted, error) "
                "VALUES (%s, %s, %s, %s, %s)",
                (
                    report.started_at,
                    report.finished_at,
                    report.dry_run,
                    Jsonb(report.deleted),
                    report.error,
                ),
            )
            # The run log keeps a bounded tail, not a row per run forever.
            curs.execute(
                "DELETE FROM cleanup_runs WHERE id < "
                "(SELECT min(id) FROM (SELECT id FROM cleanup_runs ORDER BY id DESC LIMIT 100) k)"
            )

    def last_run(self) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT started_at, finished_at, deleted, error FROM cleanup_runs "
                "ORDER BY id DESC LIMIT 1"
            )
            row = curs.fetchone()
        if row is None:
            return None
        return {
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
            "deleted": row["deleted"],
            "error": row["error"],
        }

    # --- erasure ------------------------------------------------------------------------

    def erase(
        self,
        instance_id: UUID,
        tenant: str | None,
        erased_by: str,
        reason: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT tenant, status FROM instances WHERE id = %s "
                "AND (%s::text IS NULL OR tenant = %s) FOR UPDATE",
                (instance_id, tenant, tenant),
            )
            row = curs.fetchone()
            if row is None:
                raise InstanceNotFoundError(instance_id)
            if row["status"] not in ENDED:
                raise InstanceNotEndedError(instance_id, row["status"])
            curs.execute(
                "SELECT id, status FROM instances WHERE parent_id = %s AND ended_at IS NULL "
                "LIMIT 1",
                (instance_id,),
            )
            child = curs.fetchone()
            if child is not None:
                raise InstanceNotEndedError(
                    instance_id, row["status"], f" but its child {child['id']} is not ended"
                )
            owner = row["tenant"]
            # Results stored under idempotency keys (a resume's, a cancel's) may quote the
            # instance: the tenant's records that name it go too. A scan of one tenant's
            # records, acceptable for an operation as rare as an erasure.
            curs.execute(
                "DELETE FROM idempotency_records WHERE tenant = %s AND result::text LIKE %s",
                (owner, f"%{instance_id}%"),
            )
            deleted = {"idempotency_records": curs.rowcount}
            deleted.update(_delete_instances(curs, [instance_id]))
            # Outbox positions are not moved: the outbox reads `notification_id > position`,
            # so the gap the erased events leave is skipped like any other.
            curs.execute(
                "INSERT INTO erasures (instance_id, tenant, erased_at, erased_by, reason, deleted) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (instance_id, owner, at, erased_by, reason, Jsonb(deleted)),
            )
            found = audit.context()
            entry = audit.AuditEntry(
                tenant=owner,
                action=audit.INSTANCE_ERASED,
                target=f"instance:{instance_id}",
                actor=erased_by,
                client_ip=found.client_ip,
                user_agent=found.user_agent,
                details={"reason": reason} if reason else {},
            )
            insert_entry(curs, entry)
        return {
            "instance_id": str(instance_id),
            "tenant": owner,
            "erased_at": at.isoformat(),
            "erased_by": erased_by,
            "reason": reason,
            "deleted": deleted,
        }

    # --- instances that need an operator -----------------------------------------------

    def list_condition(
        self,
        tenant: str,
        condition: str,
        suspended_before: datetime,
        *,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """Oldest change first: (updated_at, id) ascending."""
        kind = f"instances-{condition}"
        where = [sql.SQL("tenant = %(tenant)s"), sql.SQL(CONDITION_SQL[condition])]
        params: dict[str, Any] = {"tenant": tenant, "before": suspended_before}
        if cursor is not None:
            updated_at, last_id = decode_cursor(kind, cursor, size=2, secret=self.cursor_secret)
            where.append(sql.SQL("(updated_at, id) > (%(after)s, %(last)s)"))
            params.update(
                after=parse_datetime(cursor, updated_at), last=parse_uuid(cursor, last_id)
            )
        limit = clamp_limit(limit)
        params["limit"] = limit + 1
        query = sql.SQL(
            "SELECT * FROM instances WHERE {} ORDER BY updated_at, id LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(where))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, params)
            rows = [to_row(InstanceRow, r) for r in curs.fetchall()]
        page = page_of(
            rows,
            limit,
            lambda last: encode_cursor(kind, last.updated_at, last.id, secret=self.cursor_secret),
        )
        return Page([instance_row_view(r) for r in page.items], page.next_cursor)

    def condition_counts(self, suspended_before: datetime) -> dict[str, int]:
        counts = {}
        with self.datastore.transaction(commit=False) as curs:
            for condition, where in CONDITION_SQL.items():
                curs.execute(
                    sql.SQL("SELECT count(*) FROM instances WHERE {}").format(sql.SQL(where)),
                    {"before": suspended_before},
                )
                counts[condition] = int(curs.fetchone()["count"])  # type: ignore[index]
        return counts


def _exists(curs: Any, table: str) -> bool:
    curs.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,))
    return bool(curs.fetchone()["present"])


def _within(candidates: list[dict[str, Any]], batch_rows: int) -> list[UUID]:
    """The first candidates whose events add up to about `batch_rows` (at least one)."""
    ids: list[UUID] = []
    total = 0
    for row in candidates:
        if ids and total + row["aggregate_version"] > batch_rows:
            break
        ids.append(row["id"])
        total += row["aggregate_version"]
    return ids


def _delete_instances(curs: Any, ids: list[UUID]) -> dict[str, int]:
    if not ids:
        return {}
    rows = {}
    for table, statement in _DELETE_INSTANCE_ROWS:
        curs.execute(statement, (ids,))
        rows[table] = curs.rowcount
    return rows
