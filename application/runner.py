"""The command runner: runs a command's attempts (application/session.py), re-deciding on
concurrency conflicts, holding per-instance locks, and handing prepared commits to the
committer; after a commit it tells the eager dispatcher, the listeners and the observers,
and keeps the committed aggregates in the instance cache (application/instance_cache.py).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from application.admission import StartAdmission
from application.commit import ImmediateCommitter
from application.definitions import DefinitionCache
from application.delivery import EventDelivery
from application.eager import EagerActivities
from application.errors import CommandConflictError
from application.instance_cache import InstanceCache
from application.ports import (
    Clock,
    Committer,
    ConcurrencyConflictError,
    DefinitionChangedError,
    InstanceStore,
    PendingCommit,
)
from application.session import MAX_SUB_WORKFLOW_DEPTH, CommandAttempt
from domain.env import ForEachLimits
from domain.events import InstanceEvent

T = TypeVar("T")


class CommandRunner:
    """Runs commands with bounded re-decision on concurrency conflicts.

    Commands on one instance in one process run one after the other: `run` holds a lock for
    each instance the command targets while it loads, decides and commits, so concurrent
    resumes of different bookmarks of one instance queue up instead of racing and losing
    (they would all read version n and all but one collide on n+1). Only the command's
    primary targets are locked — not the parents or children that settling touches, whose
    ids are not known in advance; optimistic concurrency still guards those, and commands
    from other processes. A lost race is re-decided after a jittered exponential backoff
    (so colliding processes spread out instead of colliding again), within a bounded number
    of attempts and a bounded total time; then `CommandConflictError`.
    """

    def __init__(
        self,
        store: InstanceStore,
        definitions: DefinitionCache,
        admission: StartAdmission,
        clock: Clock,
        max_attempts: int = 10,
        *,
        retry_base_seconds: float = 0.005,
        retry_cap_seconds: float = 0.25,
        retry_budget_seconds: float = 3.0,
        lock_instances: bool = True,
        committer: Committer | None = None,
        delivery: EventDelivery | None = None,
        public_url: str = "",
        for_each: ForEachLimits | None = None,
        max_depth: int = MAX_SUB_WORKFLOW_DEPTH,
        task_link: Callable[[str, str, str, datetime, str | None], str] | None = None,
        cache: InstanceCache | None = None,
    ):
        self.store = store
        self.cache = cache  # committed instances, read instead of the store (None: off)
        self.task_link = task_link  # signs approve/reject links (application/task_links.py)
        self.for_each = for_each  # for_each bounds (WAYMARK_FOR_EACH_*)
        self.max_depth = max_depth  # sub-workflow nesting (WAYMARK_MAX_SUB_WORKFLOW_DEPTH)
        # Settles `emit` actions inside the command that reaches them.
        self.delivery = delivery
        # Where prepared commits go: saved at once unless a group committer is given.
        self.committer = committer or ImmediateCommitter(store)
        self.definitions = definitions
        self.admission = admission
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retry_cap_seconds = retry_cap_seconds
        self.retry_budget_seconds = retry_budget_seconds
        self.locks = InstanceLocks() if lock_instances else None
        self.public_url = public_url  # links in task notifications (WAYMARK_PUBLIC_URL)
        # Called after each commit with the events it stored, in order (in-process workers
        # use it to wake up when work was scheduled for them).
        self.on_commit: list[Callable[[list[InstanceEvent]], None]] = []
        # Observers (metrics, traces; infrastructure/observability.py): each commit with its
        # aggregates, each lost race, and each command's end (outcome, seconds).
        self.on_committed: list[Callable[[PendingCommit], None]] = []
        self.on_conflict: list[Callable[[], None]] = []
        # This process's task worker, handed the activities its commits schedule, leased in
        # the same commit (application/eager.py); None: every activity is claimed.
        self.eager: EagerActivities | None = None
        self.on_finished: list[Callable[[str, float], None]] = []
        # Tracing (infrastructure/tracing.py): the scope each command runs in (a span) and
        # the current trace context handed to the engine.
        self.command_scope: Callable[[], contextlib.AbstractContextManager[object]] = (
            contextlib.nullcontext
        )
        self.trace_context: Callable[[], str | None] = _no_trace

    def run(
        self,
        command: Callable[[CommandAttempt], T],
        targets: UUID | Iterable[UUID] = (),
        *,
        caller_waits: bool = False,
        finish: Callable[[T], T] | None = None,
    ) -> T:
        """Run `command` (re-decided on conflicts) holding the locks of its `targets`.

        `caller_waits`: a client waits for the answer (an HTTP request, a command message),
        so what it sent may be refused as a whole (`CommandEnv.caller_waits`). `finish`
        turns the committed result into the answer (a view of the aggregates it holds)
        before the instance cache may hand those aggregates to another command."""
        ids = [targets] if isinstance(targets, UUID) else list(targets)
        if self.locks is None or not ids:
            return self._attempts(command, caller_waits, finish)
        with self.locks.holding(ids):
            return self._attempts(command, caller_waits, finish)

    def _attempts(
        self,
        command: Callable[[CommandAttempt], T],
        caller_waits: bool,
        finish: Callable[[T], T] | None = None,
    ) -> T:
        with self.command_scope():
            return self._observed(command, caller_waits, finish)

    def _observed(
        self,
        command: Callable[[CommandAttempt], T],
        caller_waits: bool,
        finish: Callable[[T], T] | None,
    ) -> T:
        if not self.on_finished:
            return self._decide(command, caller_waits, finish)
        started = time.monotonic()
        outcome = "error"
        try:
            result = self._decide(command, caller_waits, finish)
            outcome = "committed"
            return result
        except CommandConflictError:
            outcome = "conflict"
            raise
        finally:
            for finished in self.on_finished:
                finished(outcome, time.monotonic() - started)

    def _decide(
        self,
        command: Callable[[CommandAttempt], T],
        caller_waits: bool,
        finish: Callable[[T], T] | None = None,
    ) -> T:
        conflict: ConcurrencyConflictError | None = None
        deadline = time.monotonic() + self.retry_budget_seconds
        for attempt in range(self.max_attempts):
            if attempt:
                pause = self._backoff(attempt)
                if time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
            session, result, pending = self.decided(command, caller_waits=caller_waits)
            try:
                self.commit(pending, keep=False)
            except ConcurrencyConflictError as e:
                conflict = e
                # The copies it decided on are behind the store: read them next time.
                self.forget(session.cached | set(e.instance_ids))
                for lost in self.on_conflict:
                    lost()
                continue
            except DefinitionChangedError as e:
                # Disabled or superseded since the cache admitted it: decided again, admitted
                # on the store's word (the cache forgets what it answered).
                self.definitions.forget(e.admitted)
                self.forget(session.cached)  # the aggregates this decision changed
                continue
            try:
                return finish(result) if finish is not None else result
            finally:
                self.keep([pending])
        raise CommandConflictError(conflict.instance_ids if conflict else [])

    def decided(
        self, command: Callable[[CommandAttempt], T], *, caller_waits: bool = False
    ) -> tuple[CommandAttempt, T, PendingCommit]:
        """One decision and its prepared commit. A decision on cached instances that
        failed, or wrote nothing for one of them, is taken again at once on state read from
        the store (application/instance_cache.py): only writes are version-checked."""
        session = self.new_attempt(caller_waits=caller_waits)
        try:
            result = command(session)
            pending = session.prepare()
        except Exception:
            if not session.cached:
                raise
            self.forget(session.cached)
        else:
            if session.trusted(pending):
                return session, result, pending
            self.forget(session.cached)
        session = self.new_attempt(cached=False, caller_waits=caller_waits)
        result = command(session)
        return session, result, session.prepare()

    def forget(self, instance_ids: Iterable[UUID]) -> None:
        """Drop cached copies that may be behind the store."""
        if self.cache is not None:
            self.cache.drop(instance_ids)

    def new_attempt(self, *, cached: bool = True, caller_waits: bool = False) -> CommandAttempt:
        """A fresh attempt (one decision on current state); `cached=False` reads every
        instance from the store."""
        return CommandAttempt(
            self.store,
            self.definitions,
            self.admission,
            self.clock,
            delivery=self.delivery,
            public_url=self.public_url,
            task_link=self.task_link,
            for_each=self.for_each,
            max_depth=self.max_depth,
            trace_context=self.trace_context(),
            cache=self.cache if cached else None,
            caller_waits=caller_waits,
        )

    def commit(self, pending: PendingCommit, *, keep: bool = True) -> None:
        """Store a prepared commit, then tell the `on_commit` listeners and the
        `on_committed` observers (metrics) what it stored; `keep` puts its aggregates in
        the instance cache (else the caller does, with `keep`, once done with them)."""
        self.offer([pending])
        try:
            self.committer.commit(pending)
        except BaseException:
            self.withdraw(pending)
            raise
        self.committed([pending])
        if keep:
            self.keep([pending])

    def offer(self, pendings: Iterable[PendingCommit]) -> None:
        """Lease what the commits schedule to this process's task worker (eager dispatch)."""
        if self.eager is not None:
            now = self.clock.now()
            for pending in pendings:
                self.eager.offer(pending, now)

    def withdraw(self, pending: PendingCommit) -> None:
        """The commit failed: nothing it leased was stored."""
        if self.eager is not None:
            self.eager.withdrawn(pending)

    def committed(self, pendings: list[PendingCommit]) -> None:
        """Tell the listeners about commits stored together (one call for a batch of
        application/batch.py) and the observers about each."""
        if self.eager is not None:
            for pending in pendings:
                self.eager.committed(pending)
        committed = [event for pending in pendings for event in pending.events]
        if committed:
            for listener in self.on_commit:
                listener(committed)
            for pending in pendings:
                for observer in self.on_committed:
                    observer(pending)

    def keep(self, pendings: list[PendingCommit]) -> None:
        """Put committed aggregates in the instance cache: from here another command may
        take (and change) them, so the committing thread reads them no more."""
        if self.cache is not None:
            self.cache.put(
                (i for pending in pendings for i in pending.instances),
                (b for pending in pendings for b in pending.projection.bookmarks),
            )

    @contextlib.contextmanager
    def holding(self, targets: Iterable[UUID]) -> Iterator[None]:
        """Hold the per-instance locks of `targets` (application/grouped.py)."""
        if self.locks is None:
            yield
            return
        with self.locks.holding(targets):
            yield

    def _backoff(self, attempt: int) -> float:
        """Full jitter (AWS's "Exponential Backoff And Jitter"): uniform in [0, base·2^n]."""
        ceiling = min(self.retry_cap_seconds, self.retry_base_seconds * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - spreading retries, not a secret


def _no_trace() -> str | None:
    return None


class InstanceLocks:
    """Striped per-instance locks: a fixed set, an instance's lock chosen by its id.

    Striping keeps memory bounded without reference-counting locks per id; two instances
    that share a stripe merely wait for each other. A command holding several stripes takes
    them in ascending order, and every other command takes them the same way, so two
    commands can never wait for each other in a cycle.
    """

    def __init__(self, stripes: int = 1024):
        self._locks = [threading.Lock() for _ in range(stripes)]

    @contextlib.contextmanager
    def holding(self, instance_ids: Iterable[UUID]) -> Iterator[None]:
        stripes = sorted({instance_id.int % len(self._locks) for instance_id in instance_ids})
        with contextlib.ExitStack() as held:
            for stripe in stripes:
                held.enter_context(self._locks[stripe])
            yield
