"""Committers: where a command's prepared commit (a PendingCommit) is stored.

`ImmediateCommitter` saves each commit at once, in its own transaction. `GroupCommitter`
lets commits that arrive together (API requests on different threads, a task worker's
results) share one transaction and one fsync'd COMMIT, while each caller still waits for
its own commit and gets its own outcome (docs/performance.md, "Group commit").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from application import tenant_scope
from application.ports import Committer, InstanceStore, PendingCommit
from application.read_models import Projection

__all__ = ["Committer", "GroupCommitter", "ImmediateCommitter"]


class ImmediateCommitter:
    """Saves each commit as soon as it is prepared (one transaction per command attempt)."""

    def __init__(self, store: InstanceStore) -> None:
        self.store = store

    def commit(self, pending: PendingCommit) -> None:
        if not pending.is_empty:
            self.store.save(pending.events, pending.projection)

    def commit_all(self, pendings: Sequence[PendingCommit]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for pending in pendings:
            try:
                self.commit(pending)
            except Exception as e:  # each commit's own outcome
                outcomes.append(e)
            else:
                outcomes.append(None)
        return outcomes


class _Member:
    """One commit waiting in the group committer's queue."""

    __slots__ = ("error", "finished", "leads", "pending", "saved", "scope", "within_scope")

    def __init__(self, pending: PendingCommit) -> None:
        self.pending = pending
        # The caller's tenant scope (RLS, application/tenant_scope.py): the leader, another
        # caller's thread, saves the commit under it (see GroupCommitter, "Scopes").
        self.scope = tenant_scope.current()
        # Whether every row of the commit is of the scope's tenant (always, in the system
        # scope): only such a commit may share a transaction with another tenant's.
        self.within_scope = self.scope == tenant_scope.SYSTEM or (
            pending.projection.tenants() <= {self.scope}
            and all(i.tenant == self.scope for i in pending.instances)
        )
        self.finished = pending.is_empty
        self.leads = False  # told to lead the next group
        self.saved = False
        self.error: Exception | None = None


class GroupCommitter:
    """Stores the commits that arrive together in one transaction (leader/follower).

    The first caller to find the committer idle leads: it takes every queued commit (up to
    `max_group`, never two that touch the same instance: those would collide with each
    other) and saves them in ONE `InstanceStore.save` — one transaction, one insert-order
    lock, one COMMIT. Callers arriving meanwhile queue up; when the leader is done it marks each
    member of its group finished with that member's outcome and hands the lead to the
    commit at the head of the queue, whose caller saves everything that queued during the
    previous COMMIT. A lone caller waits for nothing: there is no timer, the batching comes
    from the time a COMMIT takes. `commit_all` queues several commits of one caller (a task
    worker's results) at once.

    The events keep the members' order within one INSERT under the insert-order lock, so
    notification ids increase in commit order, as with one commit per transaction. When a
    group's save fails, the members the error names (`PendingCommit.involves`) are saved
    alone and get their own error; the others are saved again together; an error no member
    claims splits the group into single saves. A failing or conflicting member therefore
    never fails its neighbours.

    Scopes: the leader saves in its own thread, so a member's tenant scope (which the
    connection's row-level security setting comes from) is recorded when it is queued, and
    a group is saved under its members' scope when they share one. A group of several
    tenants (API requests of different tenants, a worker's batch) is saved in the system
    scope: the database then checks no row's tenant, so before a tenant's commit may join
    such a group every one of its rows is checked to be of its own tenant here; one that is
    not is saved alone under its own scope, where the policies refuse it. The events' tenant
    column is written from the commits' instance rows, whatever the scope (migration 0021).
    """

    def __init__(self, store: InstanceStore, max_group: int = 64) -> None:
        self.store = store
        self.max_group = max(1, max_group)
        self._cond = threading.Condition()
        self._queue: list[_Member] = []
        self._busy = False
        # Counters for benchmarks and tests: transactions attempted, commits stored.
        self.groups = 0
        self.members = 0

    def commit(self, pending: PendingCommit) -> None:
        (error,) = self.commit_all([pending])
        if error is not None:
            raise error

    def commit_all(self, pendings: Sequence[PendingCommit]) -> list[Exception | None]:
        """Store each commit (together where they can be); each one's error or None."""
        members = [_Member(p) for p in pendings]
        live = [m for m in members if not m.finished]
        if live:
            with self._cond:
                self._queue.extend(live)
                if not self._busy:
                    self._busy = True
                    live[0].leads = True  # the queue was empty: ours is at its head
            for member in live:
                while self._wait(member, live):
                    self._lead()
        return [m.error for m in members]

    def _wait(self, member: _Member, ours: list[_Member]) -> bool:
        """Wait until `member` is finished (False) or one of `ours` is told to lead (True)."""
        with self._cond:
            while True:
                if member.finished:
                    return False
                for candidate in ours:
                    if candidate.leads:
                        candidate.leads = False
                        return True
                self._cond.wait()

    def _lead(self) -> None:
        """Save the group at the head of the queue, then pass the lead on."""
        group: list[_Member] = []
        try:
            with self._cond:
                group = self._take()
            self._save(group)
        finally:
            with self._cond:
                for member in group:
                    if not member.saved and member.error is None:
                        # The save was cut short (KeyboardInterrupt, SystemExit in the
                        # leader): never report success for a commit that may not exist.
                        member.error = RuntimeError("the group commit was interrupted")
                    member.finished = True
                if self._queue:
                    self._queue[0].leads = True
                else:
                    self._busy = False
                self._cond.notify_all()

    def _take(self) -> list[_Member]:
        group: list[_Member] = []
        touched: set[object] = set()
        rest: list[_Member] = []
        scopes: set[str] = set()
        all_within = True
        for member in self._queue:
            ids = member.pending.instance_ids
            # Several scopes in one group only when every member's rows are its own tenant's
            # (see "Scopes"): one that is not shares its transaction with its scope's only,
            # where the database checks it.
            mixes = bool(scopes) and scopes != {member.scope}
            fits = not mixes or (all_within and member.within_scope)
            if fits and len(group) < self.max_group and not touched.intersection(ids):
                group.append(member)
                touched.update(ids)
                scopes.add(member.scope)
                all_within = all_within and member.within_scope
            else:
                rest.append(member)
        self._queue = rest
        return group

    def _save(self, group: Sequence[_Member]) -> None:
        if not group:
            return
        self.groups += 1
        scopes = {m.scope for m in group}
        scope = scopes.pop() if len(scopes) == 1 else tenant_scope.SYSTEM
        try:
            with tenant_scope.acting_for(None if scope == tenant_scope.SYSTEM else scope):
                self._store(group)
        except Exception as error:
            self._handle(group, error)
            return
        self.members += len(group)
        for member in group:
            member.saved = True

    def _store(self, group: Sequence[_Member]) -> None:
        if len(group) == 1:
            pending = group[0].pending
            self.store.save(pending.events, pending.projection)
        else:
            events = tuple(e for m in group for e in m.pending.events)
            projection = Projection()
            for member in group:
                projection.extend(member.pending.projection)
            self.store.save(events, projection)

    def _handle(self, group: Sequence[_Member], error: Exception) -> None:
        """Find whose commit failed the group's save: they get the error, the rest is saved."""
        if len(group) == 1:
            group[0].error = error
            return
        named = [m for m in group if m.pending.involves(error)]
        if not named or len(named) == len(group):
            for member in group:
                self._save([member])
            return
        for member in named:
            self._save([member])
        self._save([m for m in group if m not in named])
