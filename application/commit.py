"""Committers: where a command's prepared commit (a PendingCommit) is stored.

`ImmediateCommitter` saves each commit at once, in its own transaction. `GroupCommitter`
lets commits that arrive together (API requests on different threads, a task worker's
results) share one transaction and one fsync'd COMMIT, while each caller still waits for
its own commit and gets its own outcome (docs/performance.md, "Group commit").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

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


class _Member:
    """One caller's commit waiting in the group committer's queue."""

    __slots__ = ("done", "error", "leads", "pending")

    def __init__(self, pending: PendingCommit) -> None:
        self.pending = pending
        self.done = threading.Event()
        self.leads = False  # woken to lead the next group rather than with an outcome
        self.error: BaseException | None = None


class GroupCommitter:
    """Stores the commits that arrive together in one transaction (leader/follower).

    The first caller to find the committer idle leads: it takes every queued commit (up to
    `max_group`, never two that touch the same instance: those would collide with each
    other) and saves them in ONE `InstanceStore.save` — one transaction, one table lock,
    one COMMIT. Callers arriving meanwhile queue up; when the leader is done it wakes each
    member of its group with that member's outcome and hands the lead to the first caller
    still queued, whose group is everything that queued during the previous COMMIT. A lone
    caller therefore waits for nothing: there is no timer, batching comes from the time a
    COMMIT takes.

    The events keep the members' order within one INSERT under the events table lock, so
    notification ids stay gap-free and in commit order, as with one commit per
    transaction. When a group's save fails, the members the error names
    (`PendingCommit.involves`) are saved alone and get their own error; the others are saved
    again together; an error no member claims splits the group into single saves. A
    failing or conflicting member therefore never fails its neighbours.
    """

    def __init__(self, store: InstanceStore, max_group: int = 64) -> None:
        self.store = store
        self.max_group = max(1, max_group)
        self._lock = threading.Lock()
        self._queue: list[_Member] = []
        self._busy = False
        # Counters for benchmarks and tests: transactions attempted, commits stored.
        self.groups = 0
        self.members = 0

    def commit(self, pending: PendingCommit) -> None:
        if pending.is_empty:
            return
        me = _Member(pending)
        with self._lock:
            self._queue.append(me)
            leads = not self._busy
            self._busy = True
        if not leads:
            me.done.wait()
            if not me.leads:
                if me.error is not None:
                    raise me.error
                return
        self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        """Save one group (this caller's commit is its first member), then pass the lead on."""
        group: list[_Member] = []
        try:
            with self._lock:
                group = self._take()
            self._save(group)
        except BaseException as e:  # KeyboardInterrupt mid-save: nobody is left waiting
            for member in group:
                if member.error is None and not member.done.is_set():
                    member.error = e
            raise
        finally:
            with self._lock:
                for member in group:
                    if member.done.is_set():
                        continue
                    member.done.set()
                if self._queue:
                    successor = self._queue[0]
                    successor.leads = True
                    successor.done.set()
                else:
                    self._busy = False

    def _take(self) -> list[_Member]:
        group: list[_Member] = []
        touched: set[object] = set()
        rest: list[_Member] = []
        for member in self._queue:
            ids = member.pending.instance_ids
            if len(group) < self.max_group and not touched.intersection(ids):
                group.append(member)
                touched.update(ids)
            else:
                rest.append(member)
        self._queue = rest
        # The first member is the leader itself; it is woken with the others, harmlessly.
        return group

    def _save(self, group: Sequence[_Member]) -> None:
        if not group:
            return
        self.groups += 1
        try:
            if len(group) == 1:
                pending = group[0].pending
                self.store.save(pending.events, pending.projection)
            else:
                events = tuple(e for m in group for e in m.pending.events)
                projection = Projection()
                for member in group:
                    projection.extend(member.pending.projection)
                self.store.save(events, projection)
        except Exception as error:
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
            return
        self.members += len(group)
