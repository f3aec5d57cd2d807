"""Ports: what the use cases need from the outside world. The infrastructure implements them."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol
from uuid import UUID

from application.audit import AuditEntry
from application.read_models import (
    ActivityRow,
    AdmittedStart,
    BookmarkRow,
    IncidentFilter,
    InstanceFilter,
    InstanceRow,
    Page,
    Projection,
    TaskFilter,
    TaskRow,
)
from domain.definition import Definition
from domain.instance import WorkflowInstance


class ConcurrencyConflictError(Exception):
    """Another command changed one of the instances first (optimistic concurrency)."""

    def __init__(self, instance_ids: Sequence[UUID] = ()):
        super().__init__(f"concurrent update of instance(s) {', '.join(map(str, instance_ids))}")
        self.instance_ids = list(instance_ids)


class DefinitionChangedError(Exception):
    """A start's definition changed after the cache admitted it: disabled, or (a start that
    asked for no version) a newer version published. Nothing of the commit is stored; the
    command is decided again on the store's word (application/admission.py)."""

    def __init__(self, admitted: Sequence[AdmittedStart]):
        names = ", ".join(f"{a.name} v{a.version}" for a in admitted)
        super().__init__(f"definition(s) changed since admitted: {names}")
        self.admitted = list(admitted)


class DuplicateIdempotencyKeyError(Exception):
    """Another command with the same idempotency key committed first.

    Names the key that collided, so a group of commits saved together can tell which of
    its commands lost: `scope` is the command's record scope (`resume`, `event`, ...) for
    an idempotency record, or None for an instance's own start key, in which case
    `instance_id` is the instance of this commit that carried it. `key` is None only when
    the store could not tell which key collided.
    """

    def __init__(
        self,
        tenant: str | None = None,
        key: str | None = None,
        *,
        scope: str | None = None,
        instance_id: UUID | None = None,
    ) -> None:
        what = f"idempotency key {key!r}" if key is not None else "an idempotency key"
        where = f" (tenant {tenant}, scope {scope or 'instance'})" if tenant else ""
        owner = f" of instance {instance_id}" if instance_id else ""
        super().__init__(f"{what}{where}{owner} was already used")
        self.tenant = tenant
        self.key = key
        self.scope = scope
        self.instance_id = instance_id


@dataclass(frozen=True)
class PendingCommit:
    """What one command attempt decided, ready to store: its events and read-model rows.

    `events` were taken from `instances` when the commit was prepared (the aggregates'
    queues are empty afterwards), so the same PendingCommit can be saved again, alone or
    with others, after a failed group save. `projection` holds every row the events
    changed plus the command's idempotency records.
    """

    instances: tuple[WorkflowInstance, ...]
    events: tuple[WorkflowInstance.Event, ...]
    projection: Projection

    @property
    def is_empty(self) -> bool:
        return not self.events and not self.projection.idempotency

    @property
    def instance_ids(self) -> frozenset[UUID]:
        return frozenset(i.id for i in self.instances)

    def involves(self, error: Exception) -> bool:
        """Whether the save error was caused by this commit (to split a failed group)."""
        if isinstance(error, ConcurrencyConflictError):
            return bool(self.instance_ids.intersection(error.instance_ids))
        if isinstance(error, DefinitionChangedError):
            return not set(self.projection.admitted).isdisjoint(error.admitted)
        if isinstance(error, DuplicateIdempotencyKeyError):
            if error.scope is None:
                return error.instance_id in self.instance_ids
            return any(
                (r.tenant, r.scope, r.key) == (error.tenant, error.scope, error.key)
                for r in self.projection.idempotency
            )
        return False


class Committer(Protocol):
    """Stores prepared commits. The default stores each at once, in its own transaction;
    a group committer may hold several and store them in one, as long as every caller
    gets the outcome of its own commit (or the error its commit caused)."""

    def commit(self, pending: PendingCommit) -> None:
        """Store `pending`, or raise ConcurrencyConflictError / DuplicateIdempotencyKeyError."""

    def commit_all(self, pendings: Sequence[PendingCommit]) -> list[Exception | None]:
        """Store each of `pendings` (in one transaction where they can share one); the error
        each one's commit raised, or None, in their order."""


@dataclass(frozen=True)
class PublishedDefinition:
    tenant: str
    name: str
    version: int
    document: dict[str, Any]
    enabled: bool
    created_at: datetime

    @cached_property
    def definition(self) -> Definition:
        """The parsed graph (parsed once per object; the cache keeps the objects)."""
        return Definition.from_document(self.document, version=self.version)


@dataclass(frozen=True)
class HistoryEntry:
    position: int | None  # global position (notification id)
    version: int  # aggregate version
    type: str
    timestamp: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class InstanceRead:
    """An instance as a store read it, not yet rebuilt: calling it replays the events read.

    `version` is the version of the last event read (None when the store does not say), so
    a caller holding a copy at that version (application/instance_cache.py) can use it
    instead: the same version is the same events."""

    id: UUID
    version: int | None
    rebuild: Callable[[], WorkflowInstance | None]

    def __call__(self) -> WorkflowInstance | None:
        return self.rebuild()


class DefinitionStore(Protocol):
    def publish(
        self,
        tenant: str,
        name: str,
        document: dict[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> PublishedDefinition:
        """Store the next version of `name` atomically (concurrent publishes get 1, 2, ...)."""

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition | None:
        """The given version, or the latest when `version` is None."""

    def list(self, tenant: str, limit: int, cursor: str | None) -> Page:
        """Latest version of each definition, ordered by name."""

    def set_enabled(
        self, tenant: str, name: str, enabled: bool, *, audit: AuditEntry | None = None
    ) -> bool:
        """Enable/disable every version of `name`; False when it does not exist."""

    def event_triggered(self, tenant: str, event_type: str) -> builtins.list[PublishedDefinition]:
        """Latest enabled version of each definition with an `event` trigger on the type."""

    def schedule_triggered(self) -> builtins.list[PublishedDefinition]:
        """Latest version of each definition of any tenant with a `schedule` trigger,
        enabled or not (the scheduler moves a disabled one's cursor without firing)."""


class InstanceStore(Protocol):
    def get(
        self, instance_id: UUID, tenant: str | None = None, version: int | None = None
    ) -> WorkflowInstance | None:
        """Rebuild the instance from its events; None when it has none. With `version`, as
        it was after that event (time travel, `application.recovery`).

        With `tenant`, also None when the instance belongs to another tenant — decided from
        the read model BEFORE replaying, so another tenant's instance costs no more to ask
        for than a missing one (no timing oracle on its size).
        """

    def get_many(self, instance_ids: Sequence[UUID]) -> dict[UUID, WorkflowInstance]:
        """The instances among `instance_ids` that exist, read together (one query on
        PostgreSQL; no tenant check: for workers acting on ids they read themselves)."""

    def by_bookmark_token(self, token: str) -> tuple[BookmarkRow, InstanceRead] | None:
        """The bookmark whose token this is and its instance, read together (one statement
        on PostgreSQL: a callback's two reads in one round trip); None when no bookmark has
        the token. No tenant filter: the token is the capability; the row names its tenant.
        The instance is rebuilt from the events read only when the read is called, so a
        caller that refuses the request first (a wrong signature), or holds the instance at
        the read's version, does not pay for it."""

    def save(
        self,
        changes: Sequence[WorkflowInstance | WorkflowInstance.Event],
        projection: Projection,
    ) -> None:
        """Commit the events and the projection in ONE transaction.

        `changes` are events, or instances standing for their pending events (collected,
        so the instances' queues are empty afterwards, whatever the outcome).

        Raises ConcurrencyConflictError when an instance's version moved on (after checking
        that the conflicting events are not our own, committed by an earlier try whose reply
        was lost), DuplicateIdempotencyKeyError (naming the key) when an idempotency record,
        or an instance's start key, already exists.
        """

    def history(
        self, instance_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[HistoryEntry]:
        """The instance's events in order, after `after_version`, at most `limit`."""


class ReadModelQueries(Protocol):
    def instance(self, tenant: str, instance_id: UUID) -> InstanceRow | None: ...

    def list_instances(
        self, tenant: str, criteria: InstanceFilter, *, limit: int, cursor: str | None
    ) -> Page: ...

    def bookmark_by_token(self, token: str) -> BookmarkRow | None: ...

    def waiting_bookmarks(
        self, tenant: str, event_type: str, correlation: str | None
    ) -> list[BookmarkRow]:
        """Open `wait` bookmarks for the type whose correlation is the event's, or unset."""

    def task(self, tenant: str, task_id: str) -> TaskRow | None: ...

    def list_tasks(
        self, tenant: str, criteria: TaskFilter, *, limit: int, cursor: str | None
    ) -> Page: ...

    def idempotent_result(self, tenant: str, scope: str, key: str) -> dict[str, Any] | None: ...


class DueTimers(Protocol):
    def due(self, now: datetime, limit: int) -> list[BookmarkRow]:
        """Claim open `timer` bookmarks and `wait` timeouts whose due time has passed, oldest
        first, leased to the caller for a while: other replicas' claims skip them."""

    def release(self, bookmark_id: str) -> None:
        """End the lease of a claimed row early (its firing should be retried soon)."""

    def next_due(self, now: datetime | None = None) -> datetime | None:
        """When this worker may next claim an open timer, wait timeout or SLA (set-aside ones
        excluded): the earliest due time of the unleased rows, or the earliest lease expiry
        of the rows another worker holds at `now` (the database's time when None)."""

    def set_aside(self, bookmark_id: str, error: str, at: datetime) -> None:
        """Skip this timer from now on, keeping why its firing failed (and counting it)."""

    def set_aside_count(self) -> int:
        """How many open timers are set aside (for GET /health)."""

    def set_aside_for(self, tenant: str, instance_id: UUID) -> list[BookmarkRow]:
        """The instance's open set-aside timers (for its view)."""


class ActivityQueue(Protocol):
    def claim(
        self, worker_id: str, limit: int, lease_seconds: float, now: datetime
    ) -> list[ActivityRow]:
        """Lease due `scheduled` activities (SKIP LOCKED) so replicas never share one."""

    def release(self, activity_id: str, attempt: int) -> None:
        """Give a leased activity back (graceful shutdown)."""

    def defer(self, activity_id: str, attempt: int, until: datetime) -> None:
        """Give a leased attempt back, not claimable before `until` (its target's circuit
        breaker is open): the attempt is not spent."""


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = True
    # Set when the action did not run (its target's circuit breaker is open): the worker
    # defers the attempt to then instead of recording a result.
    deferred_until: datetime | None = None


class ActionRunner(Protocol):
    def run(
        self,
        action: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float,
        tenant: str | None = None,
    ) -> ActionResult:
        """Perform the side effect. Never raises: failures come back as ActionResult(ok=False).

        `tenant` selects the tenant's connections (`action["connection"]`)."""


class SchemaValidator(Protocol):
    def check_schema(self, schema: dict[str, Any]) -> list[str]:
        """Problems with the schema itself (empty when it is a valid JSON Schema)."""

    def validate(self, schema: dict[str, Any], data: Any) -> list[tuple[str, str]]:
        """(json path, message) for every violation of `schema` by `data`."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class CronCalendar(Protocol):
    """The ticks of a cron expression in a time zone, as UTC instants."""

    def problem(self, cron: str, timezone: str) -> str | None:
        """Why the expression cannot be scheduled (bad field, never matches), or None."""

    def ticks_back(
        self, cron: str, timezone: str, *, after: datetime, until: datetime, limit: int
    ) -> list[datetime]:
        """Ticks in (after, until], newest first, at most `limit`."""

    def next_after(self, cron: str, timezone: str, after: datetime) -> datetime | None:
        """The first tick after `after`."""


class ScheduleCursors(Protocol):
    """Per (tenant, definition): the instant up to which its ticks have been handled."""

    def all(self) -> dict[tuple[str, str], datetime]: ...

    def advance(self, tenant: str, definition: str, to: datetime) -> None:
        """Move the cursor forward to `to` (never back: replicas' clocks differ)."""


@dataclass(frozen=True)
class FeedEntry:
    """One stored event of the feed, with the instance and tenant it belongs to."""

    instance_id: UUID
    tenant: str
    entry: HistoryEntry  # its `position` is set


@dataclass(frozen=True)
class FeedBatch:
    """The tenant's events after a position, oldest first, and how far the read reached.

    `read_to` is a position every event up to which has been read (this tenant's are in
    `entries`): the next read starts after it. `more` says events may follow it already.
    """

    entries: list[FeedEntry]
    read_to: int
    more: bool


class EventFeedReader(Protocol):
    def events_after(self, tenant: str, after: int, limit: int) -> FeedBatch:
        """The tenant's committed events with a global position above `after`, in commit
        order; at most `limit` of them."""


class IncidentQueries(Protocol):
    """The `incidents` read model (`GET /v1/incidents`)."""

    def list_incidents(
        self, tenant: str, criteria: IncidentFilter, *, limit: int, cursor: str | None
    ) -> Page: ...
