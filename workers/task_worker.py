"""The task worker: runs scheduled service-task actions and records their results.

Delivery is at-least-once. An activity is leased (`claim`), its action runs, then the result
is recorded in a command of its own. If the process dies or the database is unreachable in
between, the lease expires and another worker runs the same attempt again with the same
idempotency key (`instance:node:attempt`), which the receiving system uses to deduplicate.
Recording is itself idempotent: a second result for an attempt is rejected as stale.

A result that cannot be recorded for any other reason (a bug, a value the store refuses)
would fail the same way on every run, so the attempt is failed for good instead (the node's
`error` route, or the instance fails): the side effect is never repeated for it. Should even
that failure not record, the worker remembers the attempt and never runs its action again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from application.eager import EagerActivities
from application.errors import CommandConflictError
from application.ports import ActionResult, ConcurrencyConflictError
from application.read_models import ActivityRow
from infrastructure.container import TaskWorkerContainer
from infrastructure.observability import observe_action
from infrastructure.postgres.datastore import DatabaseUnavailableError
from infrastructure.postgres.listener import ACTIVITIES_CHANNEL, PostgresListener
from infrastructure.tracing import enabled as tracing_enabled
from workers.probes import serve_probes
from workers.runner import DEFAULT_SHUTDOWN_GRACE_SECONDS, WorkerRunner, exit_now
from workers.wakeups import wake_on_notify

logger = logging.getLogger(__name__)

# Runs of one attempt whose result this worker could not record before it fails the attempt
# without running it again (a transient error lets the lease expire and the attempt rerun).
MAX_UNRECORDED_RUNS = 3
_MAX_TRACKED_ATTEMPTS = 10_000
# While a batch runs, how often the worker looks whether it is shutting down.
STOP_CHECK_SECONDS = 0.2


def is_transient(exc: BaseException) -> bool:
    """Errors that a later try may not meet: lost concurrency races, the database away."""
    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError

    transient = (
        CommandConflictError,
        ConcurrencyConflictError,
        DatabaseUnavailableError,
        OperationalError,
        InterfaceError,
        psycopg.OperationalError,
        psycopg.InterfaceError,
    )
    return isinstance(exc, transient)


class TaskWorker:
    """Claims due activities in batches and runs their actions on a bounded thread pool."""

    def __init__(
        self, container: TaskWorkerContainer, *, worker_id: str | None = None, listen: bool = False
    ):
        settings = container.settings
        self.container = container
        self.queue = container.activity_queue
        self.actions = container.actions
        self.activities = container.activities
        self.clock = container.clock
        self.concurrency = int(getattr(settings, "task_worker_concurrency", 16))
        self.batch_size = int(getattr(settings, "task_batch_size", 100))
        self.lease_seconds = float(getattr(settings, "task_lease_seconds", 300))
        poll_interval = float(getattr(settings, "task_poll_interval", 1.0))
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        grace = float(getattr(settings, "worker_shutdown_grace", DEFAULT_SHUTDOWN_GRACE_SECONDS))
        self.runner = WorkerRunner(
            self.tick, name="task-worker", poll_interval=poll_interval, shutdown_grace=grace
        )
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="waymark-task")
        # (activity id, attempt) -> how often this worker ran it without recording a result.
        self._unrecorded: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._running = 0
        # Activities this process's commits leased to this worker as they scheduled them
        # (application/eager.py; set by workers/in_process.py): run without a claim.
        self.eager: EagerActivities | None = None
        self.listener: PostgresListener | None = None
        if listen:
            # Activities scheduled by other processes (the API) wake this one at once.
            self.listener = wake_on_notify(self.runner, container, ACTIVITIES_CHANNEL)

    def tick(self) -> int:
        """Claim up to one batch, run it, record the results; the number of activities claimed."""
        if self.runner.stopping:
            return 0  # shutting down: claim nothing more
        rows: list[ActivityRow] = []
        if self.eager is not None:
            rows, expiring = self.eager.take(self.batch_size, self.clock.now())
            for row in expiring:
                self._release(row)
        if len(rows) < self.batch_size:  # and the rest claimed, so none of those starves
            now = self.clock.now()
            rows += self.queue.claim(
                self.worker_id, self.batch_size - len(rows), self.lease_seconds, now
            )
        if not rows:
            return 0
        claimed_at = time.monotonic()
        futures = {self._pool.submit(self._run, row, claimed_at): row for row in rows}
        # Waiting for the whole batch keeps the number of leases held bounded by batch_size.
        self._wait_for_batch(futures)
        return len(rows)

    def wake(self) -> None:
        """Nudge the worker (an activity was just scheduled in this process)."""
        self.runner.wake()

    @property
    def running(self) -> int:
        """Actions running right now."""
        with self._lock:
            return self._running

    def close(self, *, wait: bool = True) -> int:
        """Shut the thread pool down; the number of actions still running (when not waiting).
        Activities handed over but not started are released for another worker."""
        if self.eager is not None:
            for row in self.eager.close():
                self._release(row)
        self._pool.shutdown(wait=wait, cancel_futures=True)
        return self.running

    def _run(self, row: ActivityRow, claimed_at: float) -> ActionResult | None:
        with self._lock:
            self._running += 1
        try:
            return self._execute(row, claimed_at)
        finally:
            with self._lock:
                self._running -= 1

    def _wait_for_batch(self, futures: dict[Future[ActionResult | None], ActivityRow]) -> None:
        """Wait for the batch, recording the results of the actions that finished together
        in one go (`_record_all`); once stopping, hand back what has not started and, when
        the grace period is over, the leases of what still runs."""
        pending = set(futures)
        while pending:
            left = self.runner.time_left()
            if left is not None:
                for future in [f for f in pending if f.cancel()]:
                    pending.discard(future)  # never started: hand it back at once
                    self._release(futures[future])
                if left <= 0:
                    self._abandon([futures[f] for f in pending])
                    return
            timeout = STOP_CHECK_SECONDS if left is None else min(left, STOP_CHECK_SECONDS)
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            self._record_all([(futures[f], r) for f in done if (r := _result_of(f))])

    def _abandon(self, rows: list[ActivityRow]) -> None:
        # The grace period is over and these actions still run: give their leases up so
        # another worker runs the attempt at once (same idempotency key: at-least-once)
        # instead of after the lease expires. A result this process still records is
        # accepted or found stale like any other.
        for row in rows:
            logger.warning(
                "activity %s attempt %d still running at the end of the shutdown grace "
                "period: lease released, it will run again",
                row.id,
                row.attempt,
            )
            self._release(row)

    def _execute(self, row: ActivityRow, claimed_at: float) -> ActionResult | None:
        """Run the action; its result to record, or None when it is handled already."""
        if self.runner.stopping or self._lease_too_short(row, claimed_at):
            # Not started yet: hand it back so another worker (or this one, later) takes it
            # with a fresh lease rather than running it when our lease may already be gone.
            self._release(row)
            return None
        if self._unrecorded_runs(row) >= MAX_UNRECORDED_RUNS:
            # This worker ran the attempt that often and never got its result recorded:
            # running the side effect again would not mend that.
            self._fail_attempt(row, f"it ran {MAX_UNRECORDED_RUNS} times without being recorded")
            return None
        with observe_action(row) as observed:
            try:
                result = self.actions.run(
                    row.action,
                    idempotency_key=row.idempotency_key,
                    timeout=row.timeout_seconds,
                    tenant=row.tenant,
                )
            except Exception as exc:  # ActionRunner promises not to raise; do not trust that
                logger.exception("activity %s: action runner raised", row.id)
                result = ActionResult(
                    ok=False, error=f"{type(exc).__name__}: {exc}", retryable=True
                )
            observed.result = result
            if result.deferred_until is not None:
                self._defer(row, result)
                return None
            if tracing_enabled():
                # Traced: recorded alone inside the action's span, so the command and what
                # it schedules (a timer, the next activity) continue the same trace.
                self._record_all([(row, result)])
                return None
        return result  # recorded with the results that finish together (`_record_all`)

    def _defer(self, row: ActivityRow, result: ActionResult) -> None:
        # The action did not run (its target's circuit breaker is open): no result is
        # recorded, the attempt is not spent, and the row comes back when the breaker
        # half-opens. Should the deferral fail, the lease expires and the row comes back
        # then: deferred either way.
        until = result.deferred_until
        assert until is not None
        logger.info(
            "activity %s attempt %d deferred until %s: %s",
            row.id,
            row.attempt,
            until.isoformat(),
            result.error,
        )
        try:
            self.queue.defer(row.id, row.attempt, until)
        except Exception:
            logger.exception("activity %s: deferral failed; its lease will expire", row.id)
            return
        self.runner.wake_in((until - self.clock.now()).total_seconds())

    def _record_all(self, results: list[tuple[ActivityRow, ActionResult]]) -> None:
        """Record results that are ready together: decided one by one, committed in one
        transaction where they can share one (`ActivityService.record_many`)."""
        if not results:
            return
        try:
            outcomes = self.activities.record_many(results)
        except Exception as exc:  # record_many keeps each outcome apart; this is a backstop
            outcomes = [exc] * len(results)
        for (row, result), outcome in zip(results, outcomes, strict=True):
            self._recorded(row, result, outcome)

    def _recorded(self, row: ActivityRow, result: ActionResult, outcome: bool | Exception) -> None:
        key = (row.id, row.attempt)
        recorded = outcome
        if isinstance(outcome, Exception):
            exc = outcome
            self._note_unrecorded(key)
            if is_transient(exc):
                # Left leased: when the lease expires the activity is claimed and run again
                # with the same idempotency key (at-least-once), so nothing is lost.
                logger.warning(
                    "activity %s attempt %d: cannot record the result (%s); it will run again "
                    "after its lease expires",
                    row.id,
                    row.attempt,
                    type(exc).__name__,
                )
                return
            # The same result would fail the same way on every run: fail the attempt once
            # instead of repeating its side effect every lease period.
            logger.error(
                "activity %s attempt %d: the result cannot be recorded; failing the attempt",
                row.id,
                row.attempt,
                exc_info=exc,
            )
            self._fail_attempt(row, f"{type(exc).__name__}: {exc}")
            return
        self._unrecorded.pop(key, None)
        if not recorded:
            logger.info("activity %s attempt %d: result was stale, dropped", row.id, row.attempt)
        else:
            logger.debug("activity %s attempt %d: ok=%s", row.id, row.attempt, result.ok)

    def _fail_attempt(self, row: ActivityRow, reason: str) -> None:
        try:
            self.activities.fail_unrecordable(row, reason)
        except Exception:
            # Still leased; the run count makes this worker try the failure again, never the
            # action, when it claims the attempt after the lease expires.
            logger.exception(
                "activity %s attempt %d: cannot record its failure either", row.id, row.attempt
            )
            self._note_unrecorded((row.id, row.attempt), at_least=MAX_UNRECORDED_RUNS)
            return
        self._unrecorded.pop((row.id, row.attempt), None)

    def _unrecorded_runs(self, row: ActivityRow) -> int:
        with self._lock:
            return self._unrecorded.get((row.id, row.attempt), 0)

    def _note_unrecorded(self, key: tuple[str, int], at_least: int = 0) -> None:
        with self._lock:
            self._unrecorded[key] = max(self._unrecorded.pop(key, 0) + 1, at_least)
            while len(self._unrecorded) > _MAX_TRACKED_ATTEMPTS:  # forget the oldest first
                del self._unrecorded[next(iter(self._unrecorded))]

    def _lease_too_short(self, row: ActivityRow, claimed_at: float) -> bool:
        """True when a row that queued behind others could outlive its lease if started now.

        A row that starts right after the claim always runs, so a timeout longer than the
        lease (a misconfiguration) delays nothing forever.
        """
        waited = time.monotonic() - claimed_at
        return waited > 1.0 and waited + row.timeout_seconds > self.lease_seconds

    def _release(self, row: ActivityRow) -> None:
        try:
            self.queue.release(row.id, row.attempt)
        except Exception:
            logger.exception("activity %s: release failed; its lease will expire", row.id)


def _result_of(future: Future[ActionResult | None]) -> ActionResult | None:
    if future.cancelled():
        return None
    error = future.exception()
    if error is not None:  # _execute handles its own errors; this is a backstop
        logger.error("a task worker thread raised", exc_info=error)
        return None
    return future.result()


def main(container: TaskWorkerContainer) -> None:
    """`waymark worker tasks`: run until SIGTERM/SIGINT, then shut down within the grace period.

    Shutting down: claim nothing more, hand back claimed activities not started yet, wait
    for running actions to record their results until the grace period ends, then release
    the leases of those still running and exit 0.
    """
    listen = bool(getattr(container.settings, "worker_listen", True))
    worker = TaskWorker(container, listen=listen)
    worker.runner.install_signal_handlers()
    close_probes = serve_probes(container, [worker.runner])
    logger.info(
        "task worker %s: concurrency %d, batch %d, lease %g s, shutdown grace %g s",
        worker.worker_id,
        worker.concurrency,
        worker.batch_size,
        worker.lease_seconds,
        worker.runner.shutdown_grace,
    )
    try:
        worker.runner.run_forever()
    finally:
        close_probes()
        still_running = worker.close(wait=False)
        container.close()
    if still_running:
        # Their leases are released; the interpreter would wait for their threads at exit.
        logger.warning("task worker: exiting with %d action(s) abandoned", still_running)
        exit_now(0)
