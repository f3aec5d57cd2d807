"""The command path: load instances, decide, settle parent/child effects, commit once.

A command is a function of a `CommandAttempt` (one attempt at it). The attempt keeps every
instance it loaded or created (an identity map), then `settle()` starts the children that
`sub_workflow` nodes asked for and resumes the parents of children that ended — all in the
same unit of work, so the command's events for every instance commit in ONE transaction with
their read-model rows. Losing the optimistic-concurrency race is not a transient error: the
whole command is re-decided on fresh state a bounded number of times, then reported as a
conflict.

Deciding and storing are two steps: `CommandAttempt.prepare()` turns the attempt into a
`PendingCommit` (events and read-model rows), and the runner hands it to a `Committer`
port. The default saves it at once; a group committer can later save the commits of several
commands in one transaction without changing what each command means.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from application.admission import StartAdmission
from application.audit import AuditEntry
from application.definitions import DefinitionCache
from application.delivery import EventDelivery
from application.errors import (
    DefinitionDisabledError,
    DefinitionNotFoundError,
    InstanceNotFoundError,
    InvalidDataError,
)
from application.instance_cache import InstanceCache
from application.ports import (
    Clock,
    InstanceRead,
    InstanceStore,
    PendingCommit,
)
from application.projection import project
from application.read_models import AdmittedStart, IdempotencyRecord, Projection
from domain import engine, origin
from domain.definition import Definition
from domain.env import CommandEnv, ForEachLimits
from domain.events import ENDING_EVENTS
from domain.instance import WorkflowInstance, parent_ref
from domain.state import Bookmark, BookmarkKind

T = TypeVar("T")

# How deep an instance tree may grow: the root is level 0, its children level 1. A child
# that would be deeper fails its parent's `sub_workflow` node instead of starting, so
# workflows that start each other (directly, or across commands through a timer) stop.
MAX_SUB_WORKFLOW_DEPTH = 32

# Children one command may start. A loop through a `sub_workflow` whose child ends at once
# never waits, so without this one command would start a child per round of the loop (up to
# the step budget) and write them all in one transaction.
MAX_CHILDREN_PER_COMMAND = 200

# A backstop only: each settle round moves one level up or down the tree (a cancel reaching
# the leaves, a failure reaching the root), and every walk is bounded by the command's step
# budget, so a command settles in far fewer rounds. It is large because trees recorded before
# the depth limit existed may be deeper than MAX_SUB_WORKFLOW_DEPTH and must still cancel.
MAX_SETTLE_ROUNDS = 10_000

# `emit` actions one command may settle. An emitted event can resume an instance or start a
# definition whose next step emits again, all inside the same command: this bounds such a
# chain (a definition triggered by the event it emits would otherwise start itself forever).
# Instances an emit starts also count against MAX_CHILDREN_PER_COMMAND.
MAX_EMITS_PER_COMMAND = 50

EMIT_ACTION = "emit"


def new_id() -> str:
    return str(uuid.uuid4())


def new_token() -> str:
    # Callback tokens are bearer capabilities: 256 bits from the OS CSPRNG.
    return secrets.token_urlsafe(32)


class CommandAttempt:
    """One attempt at one command."""

    def __init__(
        self,
        store: InstanceStore,
        definitions: DefinitionCache,
        admission: StartAdmission,
        clock: Clock,
        delivery: EventDelivery | None = None,
        public_url: str = "",
        for_each: ForEachLimits | None = None,
        max_depth: int = MAX_SUB_WORKFLOW_DEPTH,
        trace_context: str | None = None,
        task_link: Callable[[str, str, str, datetime, str | None], str] | None = None,
        cache: InstanceCache | None = None,
        caller_waits: bool = False,
    ):
        self.store = store
        # Instances this process committed, taken instead of read (application/instance_cache.py);
        # the ids taken from it are in `cached`.
        self.cache = cache
        self.cached: set[UUID] = set()
        self.max_depth = max_depth  # WAYMARK_MAX_SUB_WORKFLOW_DEPTH
        self.definitions = definitions
        self.admission = admission
        # Settles `emit` actions in this unit of work (None: they wait for a task worker,
        # which refuses them).
        self.delivery = delivery
        self.env = CommandEnv(
            now=clock.now(),
            new_id=new_id,
            new_token=new_token,
            public_url=public_url,
            task_link=task_link,
            for_each=for_each or ForEachLimits(),
            trace_context=trace_context,
            caller_waits=caller_waits,
        )
        self.instances: dict[UUID, WorkflowInstance] = {}
        self.idempotency: list[IdempotencyRecord] = []
        self.audit_entries: list[AuditEntry] = []
        self.admitted: list[AdmittedStart] = []
        self.children_started = 0
        self.emits = 0

    def load(self, instance_id: UUID, tenant: str | None = None) -> WorkflowInstance:
        """The instance (from this session if already loaded); tenant-checked when given."""
        instance = self.instances.get(instance_id)
        if instance is None:
            instance = self.cache.take(instance_id) if self.cache is not None else None
            if instance is not None:
                self.cached.add(instance_id)
            else:
                # The store checks the tenant before replaying (no timing oracle across tenants).
                instance = self.store.get(instance_id, tenant)
            if instance is None or (tenant is not None and instance.tenant != tenant):
                raise InstanceNotFoundError(instance_id)
            self.instances[instance_id] = instance
        elif tenant is not None and instance.tenant != tenant:
            raise InstanceNotFoundError(instance_id)
        return instance

    def adopt(self, read: InstanceRead) -> None:
        """Take the instance the caller read just before this attempt (a callback reads it
        with its bookmark, in one statement) as the copy `load` returns: the cached copy
        when the cache holds it at the read's version, else the read rebuilt. It is
        trusted as one from the cache is: a decision that writes nothing for it is taken
        again on a fresh read, one that writes is version-checked
        (application/instance_cache.py)."""
        if read.id in self.instances:
            return
        instance = None
        if self.cache is not None and read.version is not None:
            instance = self.cache.take(read.id, read.version)
        if instance is None:
            instance = read()
        if instance is not None:
            self.instances[read.id] = instance
            self.cached.add(read.id)

    def definition_of(self, instance: WorkflowInstance) -> Definition:
        return self.definitions.get(
            instance.tenant, instance.definition, instance.definition_version
        ).definition

    def start(
        self,
        *,
        instance_id: UUID,
        tenant: str,
        definition: Definition,
        input: dict[str, Any],  # noqa: A002
        correlation_id: str | None,
        idempotency_key: str | None,
        parent: dict[str, Any] | None = None,
        started_by: dict[str, Any] | None = None,
        latest: bool = False,
    ) -> WorkflowInstance:
        """Start `definition` (`latest`: no version was asked, so it must be the newest);
        its commit checks the definition is so still (application/admission.py)."""
        self.admitted.append(AdmittedStart(tenant, definition.name, definition.version, latest))
        instance = WorkflowInstance(
            id=instance_id,
            tenant=tenant,
            definition=definition.name,
            definition_version=definition.version,
            input=input,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            parent=parent,
            started_by=started_by,
        )
        self.instances[instance.id] = instance
        engine.start(instance, definition, self.env)
        return instance

    def remember(self, tenant: str, scope: str, key: str | None, result: dict[str, Any]) -> None:
        """Store the command's result under its idempotency key, in the same transaction."""
        if key:
            self.idempotency.append(IdempotencyRecord(tenant, scope, key, result))

    def audit(self, entry: AuditEntry) -> None:
        """Record an administrative act in the same transaction as the command's events."""
        self.audit_entries.append(entry)

    def settle(self) -> None:
        """Start requested children; hand ended children's results to their parents."""
        handled: set[tuple[UUID, str]] = set()
        for _ in range(MAX_SETTLE_ROUNDS):
            work = [
                (instance, e)
                for instance in list(self.instances.values())
                for e in instance.pending_events
                if (instance.id, _event_key(e)) not in handled
                and (_needs_settling(e) or (self.delivery is not None and _is_emit(e)))
            ]
            if not work:
                return
            for instance, e in work:
                handled.add((instance.id, _event_key(e)))
                self._settle_event(instance, e)
        raise RuntimeError("sub-workflow nesting too deep to settle in one command")

    def _settle_event(self, instance: WorkflowInstance, e: object) -> None:
        if isinstance(e, WorkflowInstance.ActivityScheduled):
            self._emit(instance, e.activity)
        elif isinstance(e, WorkflowInstance.BookmarkCreated):
            self._start_child(instance, Bookmark.from_payload(e.bookmark))
        elif isinstance(e, WorkflowInstance.BookmarkCancelled):
            child_id = instance.bookmarks[e.bookmark_id].child_id
            if child_id:
                child = self.load(UUID(child_id))
                if not child.is_ended:
                    engine.cancel(child, f"parent {instance.id} ended", self.env)
        elif instance.parent:  # the instance ended
            parent = self.load(UUID(instance.parent["instance_id"]))
            bookmark_id = instance.parent["bookmark_id"]
            bookmark = parent.bookmarks.get(bookmark_id)
            if bookmark is None or not bookmark.is_open:
                return  # the parent moved on already (cancelled, or ended elsewhere)
            engine.child_finished(
                parent,
                self.definition_of(parent),
                bookmark_id,
                status=instance.status,
                output=instance.output,
                error=instance.error,
                env=self.env,
            )

    def _start_child(self, parent: WorkflowInstance, bookmark: Bookmark) -> None:
        depth = self.depth_of(parent) + 1
        if depth > self.max_depth:
            why = (
                f"sub-workflow depth limit exceeded: the child would be at level {depth} of "
                f"its instance tree (at most {self.max_depth}, WAYMARK_MAX_SUB_WORKFLOW_DEPTH)"
            )
            self._child_failed(parent, bookmark, why)
            return
        if self.children_started >= MAX_CHILDREN_PER_COMMAND:
            why = (
                f"sub-workflow limit exceeded: one command may start at most "
                f"{MAX_CHILDREN_PER_COMMAND} child instances (a loop through a sub_workflow "
                f"that never waits?)"
            )
            self._child_failed(parent, bookmark, why)
            return
        data = bookmark.child_input or {}
        try:
            model = self.admission.admit(
                parent.tenant, str(bookmark.child_definition), bookmark.child_version, data
            )
        except (DefinitionNotFoundError, DefinitionDisabledError, InvalidDataError) as e:
            # The parent's node fails like a failed child: its error route, or the parent.
            self._child_failed(parent, bookmark, str(e))
            return
        self.children_started += 1
        self.start(
            instance_id=UUID(str(bookmark.child_id)),
            tenant=parent.tenant,
            definition=model,
            input=data,
            correlation_id=parent.correlation_id,
            idempotency_key=None,
            parent=parent_ref(parent.id, bookmark.id, depth),
            started_by=origin.by_parent(str(parent.id), bookmark.node_id),
            latest=bookmark.child_version is None,
        )

    def _emit(self, instance: WorkflowInstance, scheduled: dict[str, Any]) -> None:
        """Settle an `emit` service task: deliver its event here, complete the node with
        `{type, resumed, started, rejected}` (or fail it, never retried)."""
        activity = instance.activities.get(scheduled["id"])
        if instance.is_ended or activity is None or not activity.is_scheduled:
            return  # the instance moved on in this same command (cancelled, ended)
        action = activity.action
        event_type, correlation = action.get("event"), action.get("correlation")
        assert self.delivery is not None  # noqa: S101 - only called when delivery is set
        error: str | None = None
        output: dict[str, Any] | None = None
        if not isinstance(event_type, str) or not event_type:
            error = "the emit action needs an 'event' (a non-empty string)"
        elif correlation is not None and not isinstance(correlation, str):
            error = "the emit action's 'correlation' must be a string"
        elif self.emits >= MAX_EMITS_PER_COMMAND:
            error = (
                f"emit limit exceeded: one command may emit at most {MAX_EMITS_PER_COMMAND} "
                f"events (an event that triggers a definition emitting it again?)"
            )
        else:
            waiting, triggered = self.delivery.lookup(instance.tenant, event_type, correlation)
            if self.children_started + len(triggered) > MAX_CHILDREN_PER_COMMAND:
                error = (
                    f"emit limit exceeded: one command may start at most "
                    f"{MAX_CHILDREN_PER_COMMAND} instances"
                )
            else:
                self.emits += 1
                self.children_started += len(triggered)
                output = self.delivery.deliver(
                    self,
                    instance.tenant,
                    event_type,
                    correlation,
                    action.get("payload"),
                    waiting=waiting,
                    triggered=triggered,
                    source=f"emit:{instance.id}:{activity.node_id}",
                )
        engine.record_activity_result(
            instance,
            self.definition_of(instance),
            activity.id,
            attempt=activity.attempt,
            ok=error is None,
            output=output,
            error=error,
            retryable=False,
            env=self.env,
        )

    def _child_failed(self, parent: WorkflowInstance, bookmark: Bookmark, why: str) -> None:
        engine.child_finished(
            parent,
            self.definition_of(parent),
            bookmark.id,
            status="failed",
            output=None,
            error={"message": why},
            env=self.env,
        )

    def depth_of(self, instance: WorkflowInstance) -> int:
        """The instance's level in its tree (0 for a root).

        Recorded in `parent_ref` since the depth limit exists; for instances started before,
        the ancestors are loaded until one carries it (at most past the limit, then stop).
        """
        depth = 0
        while instance.parent:
            recorded = instance.parent.get("depth")
            if isinstance(recorded, int):
                return depth + recorded
            depth += 1
            if depth > self.max_depth:
                return depth
            try:
                instance = self.load(UUID(instance.parent["instance_id"]))
            except InstanceNotFoundError:
                return depth
        return depth

    def prepare(self) -> PendingCommit:
        """Settle children and parents, project the read models, take the events to store.

        The instances' event queues are emptied: from here on the PendingCommit is what the
        command decided, whoever stores it and however often it has to try.
        """
        self.settle()
        changed = [i for i in self.instances.values() if i.pending_events]
        projection = Projection(
            idempotency=list(self.idempotency),
            audit=list(self.audit_entries),
            admitted=list(dict.fromkeys(self.admitted)),
        )
        for instance in changed:
            # Projected before the events are collected: project() reads the pending ones.
            projection.extend(project(instance))
        # Every event class of WorkflowInstance derives from WorkflowInstance.Event.
        events = tuple(
            cast(WorkflowInstance.Event, e)
            for instance in changed
            for e in instance.collect_events()
        )
        return PendingCommit(instances=tuple(changed), events=events, projection=projection)

    def trusted(self, pending: PendingCommit) -> bool:
        """False when an instance taken from the cache gets no events: the decision to
        leave it alone may rest on a stale copy, which no version check would catch."""
        return self.cached <= pending.instance_ids


def _needs_settling(e: object) -> bool:
    if isinstance(e, WorkflowInstance.BookmarkCreated):
        return e.bookmark.get("kind") == BookmarkKind.CHILD
    return isinstance(e, (WorkflowInstance.BookmarkCancelled, *ENDING_EVENTS))


def _is_emit(e: object) -> bool:
    if not isinstance(e, WorkflowInstance.ActivityScheduled):
        return False
    action = e.activity.get("action")
    return isinstance(action, dict) and action.get("type") == EMIT_ACTION


def _event_key(e: Any) -> str:
    return f"{e.originator_version}"
