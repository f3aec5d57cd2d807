"""Retention, erasure and the instances that need an operator (long-running, stuck).

`CleanupService.run` prunes what the retention settings (and a definition's `retention`
field) allow: ended instances past retention — their events, read models and bookmarks,
tasks, activities —, old idempotency records, old outbox dead letters. It works in bounded
batches (one short transaction each) so the writers of new events are never held up for
long, and never touches an instance that has not ended or events the outbox has not
published. `erase` removes one ended instance completely and leaves an audit entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from application.ports import Clock
from application.read_models import Page
from domain.retention import Retention

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """The instances one pass looks at: one definition version's (with its own retention), or
    (None) every instance whose definition has no `retention` field."""

    tenant: str
    definition: str
    version: int


@dataclass(frozen=True)
class Batch:
    """What one batch deleted (or, in a dry run, would delete), rows per table."""

    instances: int
    rows: dict[str, int]


class CleanupStore(Protocol):
    """The storage side of retention and erasure (PostgreSQL: infrastructure/postgres)."""

    def retention_overrides(self) -> list[tuple[Scope, Any]]: ...

    def outbox_watermark(self) -> int | None:
        """The highest notification id whose event may be deleted; None: no outbox guard.
        -1 (or any value below every id): no event may go yet."""
        ...

    def expire_instances(
        self,
        scope: Scope | None,
        cutoffs: dict[str, datetime],
        watermark: int | None,
        batch_rows: int,
        dry_run: bool,
    ) -> Batch: ...

    def prune_idempotency(self, before: datetime, batch_rows: int, dry_run: bool) -> int: ...

    def prune_dead_letters(self, before: datetime, batch_rows: int, dry_run: bool) -> int | None:
        """Rows deleted; None when the outbox's dead-letter table does not exist."""
        ...

    def vacuum(self, tables: list[str]) -> None: ...

    def record_run(self, report: CleanupReport) -> None: ...

    def last_run(self) -> dict[str, Any] | None: ...

    def erase(
        self,
        instance_id: UUID,
        tenant: str | None,
        erased_by: str,
        reason: str | None,
        at: datetime,
    ) -> dict[str, Any]: ...

    def list_condition(
        self,
        tenant: str,
        condition: str,
        suspended_before: datetime,
        *,
        limit: int,
        cursor: str | None,
    ) -> Page: ...

    def condition_counts(self, suspended_before: datetime) -> dict[str, int]: ...


@dataclass(frozen=True)
class CleanupPolicy:
    """The retention settings (SPEC §6 defaults) and how the work is cut up."""

    retention: Retention
    idempotency: timedelta
    dead_letters: timedelta
    batch_rows: int
    long_running_after: timedelta
    vacuum: bool = True
    # Kafka configured: the outbox will publish, so events without a position stay.
    outbox_configured: bool = False


@dataclass
class CleanupReport:
    """One run: what it deleted (or would delete), per table."""

    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    deleted: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def add(self, rows: dict[str, int]) -> None:
        for table, count in rows.items():
            self.deleted[table] = self.deleted.get(table, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "deleted": dict(sorted(self.deleted.items())),
            "notes": list(self.notes),
            "error": self.error,
        }


Progress = Callable[[str, dict[str, int]], None]


class CleanupService:
    """Prunes by retention, erases one instance on request, finds instances needing help."""

    def __init__(self, store: CleanupStore, clock: Clock, policy: CleanupPolicy):
        self.store = store
        self.clock = clock
        self.policy = policy

    def run(
        self,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> CleanupReport:
        """One full cleanup run (or, dry, the counts of what it would delete)."""
        now = self.clock.now()
        report = CleanupReport(dry_run=dry_run, started_at=now)
        try:
            self._instances(report, now, progress, should_stop)
            self._bookkeeping(report, now, progress, should_stop)
            if not dry_run and self.policy.vacuum and any(report.deleted.values()):
                # The library switches autovacuum's delete trigger off on the event table:
                # after deleting, the cleanup vacuums what it deleted from itself.
                self.store.vacuum(sorted(t for t, n in report.deleted.items() if n))
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.finished_at = self.clock.now()
            if not dry_run:
                try:
                    self.store.record_run(report)
                except Exception:
                    logger.exception("cleanup: recording the run failed")
        logger.info("cleanup %s: %s", "dry run" if dry_run else "run", report.as_dict())
        return report

    def _watermark(self, report: CleanupReport) -> tuple[bool, int | None]:
        """(may prune instances, the outbox watermark: None when there is no guard)."""
        watermark = self.store.outbox_watermark()
        if watermark is None and self.policy.outbox_configured:
            # The outbox will publish events that have no position yet: keep them all.
            report.notes.append("outbox configured, no published position yet: kept instances")
            return False, None
        return True, watermark

    def _instances(
        self,
        report: CleanupReport,
        now: datetime,
        progress: Progress | None,
        should_stop: Callable[[], bool],
    ) -> None:
        allowed, watermark = self._watermark(report)
        if not allowed:
            return
        scopes: list[tuple[Scope | None, Retention]] = [(None, self.policy.retention)]
        for override, field_value in self.store.retention_overrides():
            scopes.append((override, self.policy.retention.overridden_by(field_value)))
        for scope, retention in scopes:
            cutoffs = retention.cutoffs(now)
            if not cutoffs:
                continue  # kept forever
            while not should_stop():
                batch = self.store.expire_instances(
                    scope, cutoffs, watermark, self.policy.batch_rows, report.dry_run
                )
                report.add(batch.rows)
                if batch.instances and progress:
                    progress("instances", dict(report.deleted))
                if report.dry_run or batch.instances == 0:
                    break

    def _bookkeeping(
        self,
        report: CleanupReport,
        now: datetime,
        progress: Progress | None,
        should_stop: Callable[[], bool],
    ) -> None:
        batch, dry = self.policy.batch_rows, report.dry_run
        while not should_stop():
            deleted = self.store.prune_idempotency(now - self.policy.idempotency, batch, dry)
            report.add({"idempotency_records": deleted})
            if dry or deleted < batch:
                break
        while not should_stop():
            letters = self.store.prune_dead_letters(now - self.policy.dead_letters, batch, dry)
            if letters is None:
                report.notes.append("no outbox_dead_letters table: skipped")
                break
            report.add({"outbox_dead_letters": letters})
            if dry or letters < batch:
                break
        if progress:
            progress("bookkeeping", dict(report.deleted))

    def last_run(self) -> dict[str, Any] | None:
        return self.store.last_run()

    def erase(
        self, instance_id: UUID, *, tenant: str | None, erased_by: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Delete an ended instance's events and read models; the audit entry stays."""
        result = self.store.erase(instance_id, tenant, erased_by, reason, self.clock.now())
        logger.info("erased instance %s (%s) by %s: %s", instance_id, tenant, erased_by, result)
        return result

    def list_condition(
        self, tenant: str, condition: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Instances suspended longer than the threshold, or stuck (not ended, nothing open
        and nothing scheduled, so nothing will ever move them on)."""
        suspended_before = self.clock.now() - self.policy.long_running_after
        return self.store.list_condition(
            tenant, condition, suspended_before, limit=limit, cursor=cursor
        )

    def condition_counts(self) -> dict[str, int]:
        return self.store.condition_counts(self.clock.now() - self.policy.long_running_after)
