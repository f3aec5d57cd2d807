"""Eager dispatch: an activity scheduled by this process goes to this process's task worker
without a claim (issue 11).

Normally a scheduled activity is inserted unleased and a task worker claims it (an UPDATE
setting `locked_by`/`locked_until`, its own transaction) before running it. When the
scheduling process hosts a task worker with room, the scheduling commit itself inserts the
row already leased to that worker (`Projection.leases`), and after the commit the row is
handed to the worker in memory: one row version and one transaction less per step, and no
wait for a poll or a claim.

At-least-once is kept because the lease is the same as a claim's, written in the same
transaction as the activity: if the process dies before the result is recorded, the lease
expires and another worker claims and runs the attempt with the same idempotency key. No
other worker runs the row meanwhile (claims skip leased rows). A commit that fails writes
no row and hands nothing over; rows still queued when the worker stops are released
(`close`), so another worker takes them at once instead of after the lease.

The queue is bounded (`capacity`): past it, activities are inserted unleased and claimed
as before, so held leases never pile up behind a busy worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from application.ports import PendingCommit
from application.read_models import ActivityRow
from domain.instance import WorkflowInstance

_FRESH = timedelta(seconds=1)


class EagerActivities:
    """The hand-over from this process's commits to its own task worker."""

    def __init__(
        self,
        worker_id: str,
        lease_seconds: float,
        capacity: int,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.worker_id = worker_id
        self.lease = timedelta(seconds=lease_seconds)
        self.capacity = capacity
        self.wake = wake
        self._queue: deque[tuple[ActivityRow, datetime]] = deque()  # (row, lease end)
        self._reserved = 0
        self._closed = False
        self._lock = threading.Lock()
        self.handed_over = 0  # activities run without a claim (for tests and metrics)

    def offer(self, pending: PendingCommit, now: datetime) -> None:
        """Lease the commit's newly scheduled, due activities to this worker, as room
        allows: the leases go into the commit's projection. Once the commit is decided the
        leased rows are handed over (`committed`) or their room given back (`withdrawn`)."""
        scheduled = {
            e.activity["id"]
            for e in pending.events
            if isinstance(e, WorkflowInstance.ActivityScheduled)
        }
        if not scheduled:
            return
        rows = [
            row
            for row in pending.projection.activities
            if row.id in scheduled
            and row.status == "scheduled"
            and row.run_after <= now
            and row.id not in pending.projection.leases
        ]
        with self._lock:
            if self._closed:
                return
            room = self.capacity - len(self._queue) - self._reserved
            rows = rows[: max(room, 0)]
            self._reserved += len(rows)
        until = now + self.lease
        for row in rows:
            pending.projection.leases[row.id] = (self.worker_id, until)

    def committed(self, pending: PendingCommit) -> None:
        """The commit stored its leased rows: queue them for the worker and wake it."""
        rows = _leased(pending)
        if not rows:
            return
        with self._lock:
            self._reserved -= len(rows)
            leases = pending.projection.leases
            self._queue.extend((row, leases[row.id][1]) for row in rows)
        self.wake()

    def withdrawn(self, pending: PendingCommit) -> None:
        """The commit failed (nothing was stored): free the room it reserved."""
        rows = _leased(pending)
        pending.projection.leases.clear()
        if not rows:
            return
        with self._lock:
            self._reserved -= len(rows)

    def take(self, limit: int, now: datetime) -> tuple[list[ActivityRow], list[ActivityRow]]:
        """Up to `limit` rows leased to this worker, oldest first, and apart from them the
        rows whose lease would end before their action's timeout (they waited behind a slow
        batch): those are to be released, not run, as a claim would not run them either."""
        with self._lock:
            taken = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
        rows = [row for row, until in taken if self._runnable(row, until, now)]
        expiring = [row for row, until in taken if not self._runnable(row, until, now)]
        with self._lock:
            self.handed_over += len(rows)
        return rows, expiring

    def _runnable(self, row: ActivityRow, until: datetime, now: datetime) -> bool:
        # As for a claimed row (workers/task_worker.py `_lease_too_short`): one taken right
        # after it was leased always runs, so a timeout longer than the lease delays nothing.
        fresh = now - (until - self.lease) <= _FRESH
        return fresh or until - now > timedelta(seconds=row.timeout_seconds)

    def close(self) -> list[ActivityRow]:
        """Accept nothing more; the rows still queued (the caller releases their leases)."""
        with self._lock:
            self._closed = True
            left = [row for row, _ in self._queue]
            self._queue.clear()
            return left


def _leased(pending: PendingCommit) -> list[ActivityRow]:
    leases = pending.projection.leases
    return [row for row in pending.projection.activities if row.id in leases] if leases else []
