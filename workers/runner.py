"""The loop every worker runs (modelled on procrastinate's worker).

A worker is a `tick() -> int` callable that handles one bounded batch and says how many items
it handled. The runner calls it again at once while there is work, otherwise sleeps for the
poll interval, until an alarm it was given (`wake_in`: the next timer's due time), or until
`wake()` (an in-process producer, a LISTEN/NOTIFY listener) or `stop()`.
A failing tick (database down, ...) is logged and retried with exponential backoff; it never
kills the loop, because the work it would have done stays in the database for the next try.

Shutdown has a deadline: `stop()` starts a grace period (`shutdown_grace`) that a worker
holding work reads from `time_left()` to finish or hand back what it holds. Side tasks (a
LISTEN/NOTIFY listener, ...) run under the runner's supervision: one that raises or ends
before the runner stops is logged and restarted with backoff, never silently lost.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from infrastructure import metrics

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
DEFAULT_SHUTDOWN_GRACE_SECONDS = 25.0
# A standalone worker still running this long after its grace period is stuck (a database
# call that never returns, ...): the watchdog ends the process rather than outliving the
# orchestrator's patience with work half done.
WATCHDOG_MARGIN_SECONDS = 5.0
SIDE_TASK_JOIN_SECONDS = 5.0


@dataclass
class SideTask:
    """A thread the runner keeps alive while it runs (e.g. the LISTEN/NOTIFY listener).

    `target(stop)` runs until `stop` is set; raising or returning early is a failure.
    """

    name: str
    target: Callable[[threading.Event], None]
    max_backoff: float = MAX_BACKOFF_SECONDS
    failures: int = 0  # in a row; 0 while it runs normally
    restarts: int = 0
    last_error: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    restarting: bool = False  # waiting out the backoff after a failure

    @property
    def up(self) -> bool:
        return self.thread is not None and self.thread.is_alive() and not self.restarting

    def start(self, stop: threading.Event) -> None:
        self.thread = threading.Thread(
            target=self._supervised, args=(stop,), name=self.name, daemon=True
        )
        self.thread.start()

    def _supervised(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.target(stop)
                if stop.is_set():
                    return
                raise RuntimeError("returned before the worker stopped")
            except Exception as exc:
                # A task that ran a good while before failing starts its backoff afresh.
                if time.monotonic() - started > self.max_backoff:
                    self.failures = 0
                self.failures += 1
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(2 ** (self.failures - 1), self.max_backoff)
                logger.exception(
                    "side task %s failed (%d in a row), restarting in %g s",
                    self.name,
                    self.failures,
                    delay,
                )
                self.restarting = True
                stop.wait(delay)
                self.restarting = False


class WorkerRunner:
    """Runs a worker's `tick` until stopped: poll, wake-up, alarms, backoff, heartbeat."""

    def __init__(
        self,
        tick: Callable[[], int],
        *,
        name: str = "worker",
        poll_interval: float = 1.0,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
    ):
        self.tick = tick
        self.name = name
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.shutdown_grace = shutdown_grace
        # Heartbeat for health checks: wall-clock time of the last tick that did not raise.
        self.last_tick_at: datetime | None = None
        self.consecutive_failures = 0
        # time.monotonic() of the loop's last turn (a tick begun): liveness, not health.
        self.last_loop_at: float | None = None
        self.side_tasks: list[SideTask] = []
        self._stop = threading.Event()
        # Guards the wake flag and the alarm; notified by wake(), wake_in() and stop().
        self._changed = threading.Condition()
        self._woken = False
        self._alarm: float | None = None  # time.monotonic() of the earliest alarm
        self._deadline: float | None = None
        self._watchdog = False
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def healthy(self) -> bool:
        """Ticks succeed and every side task runs."""
        return self.consecutive_failures == 0 and all(t.up for t in self.side_tasks)

    def wake(self) -> None:
        """Tick as soon as the current tick (if any) is over instead of after the poll interval."""
        with self._changed:
            self._woken = True
            self._changed.notify_all()

    def wake_in(self, seconds: float) -> None:
        """Tick once `seconds` have passed (sooner if woken); the earliest alarm wins."""
        at = time.monotonic() + max(seconds, 0.0)
        with self._changed:
            if self._alarm is None or at < self._alarm:
                self._alarm = at
                self._changed.notify_all()

    def time_left(self) -> float | None:
        """Seconds left of the shutdown grace period; None while not stopping."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end after the current tick; True when it ended within `timeout`.

        The first call starts the grace period. Safe to call from a signal handler or another
        thread; only joins when the loop runs in a thread started by `start_in_thread`.
        """
        if self._deadline is None:
            self._deadline = time.monotonic() + self.shutdown_grace
            if self._watchdog:
                self._start_watchdog()
        self._stop.set()
        with self._changed:
            self._changed.notify_all()  # interrupt the idle wait
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def supervise(self, name: str, target: Callable[[threading.Event], None]) -> SideTask:
        """Run `target(stop_event)` beside the loop while it runs, restarting it if it fails."""
        task = SideTask(name, target, max_backoff=self.max_backoff)
        self.side_tasks.append(task)
        return task

    def run_forever(self) -> None:
        logger.info("%s: started (poll every %g s)", self.name, self.poll_interval)
        for task in self.side_tasks:
            task.start(self._stop)
        try:
            self._loop()
        finally:
            for task in self.side_tasks:
                if task.thread is not None:
                    task.thread.join(SIDE_TASK_JOIN_SECONDS)
        logger.info("%s: stopped", self.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._check_side_tasks()
            # Cleared before the tick: a wake() arriving during the tick makes the next
            # idle wait return at once, so nothing a producer announced waits a poll interval.
            with self._changed:
                self._woken = False
            self.last_loop_at = time.monotonic()
            try:
                handled = self.tick()
            except Exception:
                metrics.WORKER_TICKS.labels(self.name, "failed").inc()
                self.consecutive_failures += 1
                delay = self.backoff(self.consecutive_failures)
                logger.exception(
                    "%s: tick failed (%d in a row), retrying in %g s",
                    self.name,
                    self.consecutive_failures,
                    delay,
                )
                # Only stop() ends a backoff: wake-ups would just hammer a broken dependency.
                self._stop.wait(delay)
                continue
            self.consecutive_failures = 0
            self.last_tick_at = datetime.now(UTC)
            metrics.WORKER_TICKS.labels(self.name, "ok").inc()
            metrics.WORKER_LAST_TICK.labels(self.name).set(self.last_tick_at.timestamp())
            if not handled:
                self._idle()

    def _idle(self) -> None:
        """Wait for a wake-up, the earliest alarm, the poll interval or stop()."""
        poll_at = time.monotonic() + self.poll_interval
        with self._changed:
            while not self._woken and not self._stop.is_set():
                now = time.monotonic()
                until = poll_at if self._alarm is None else min(poll_at, self._alarm)
                if now >= until:
                    break
                self._changed.wait(until - now)
            if self._alarm is not None and self._alarm <= time.monotonic():
                self._alarm = None

    def _check_side_tasks(self) -> None:
        # The supervised wrapper catches every Exception; a thread can still end on a
        # BaseException (SystemExit raised in a callback, ...). Restart it, loudly.
        for task in self.side_tasks:
            if task.thread is not None and not task.thread.is_alive():
                task.restarts += 1
                task.last_error = task.last_error or "thread ended"
                logger.error("%s: side task %s died; restarting it", self.name, task.name)
                task.start(self._stop)

    def backoff(self, failures: int) -> float:
        """min(poll * 2^(failures-1), max): the first retry comes one poll interval later."""
        return min(self.poll_interval * 2 ** max(failures - 1, 0), self.max_backoff)

    def seconds_since_tick(self) -> float | None:
        """Age of the heartbeat, for health checks (None before the first tick)."""
        if self.last_tick_at is None:
            return None
        return (datetime.now(UTC) - self.last_tick_at).total_seconds()

    def stalled(self, limit: float) -> bool:
        """The loop has not come round for `limit` seconds (a tick that never returns)."""
        if self.last_loop_at is None or self._stop.is_set():
            return False
        return time.monotonic() - self.last_loop_at > max(
            limit, self.poll_interval + self.max_backoff
        )

    def start_in_thread(self) -> threading.Thread:
        """Run the loop in a daemon thread (workers inside `waymark serve`)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._thread.start()
        return self._thread

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the loop gracefully; a second signal kills the process.

        Also arms the watchdog: this is a process of its own, so a shutdown that overruns the
        grace period by `WATCHDOG_MARGIN_SECONDS` ends the process (exit status 1).
        """
        self._watchdog = True

        def handle(signum: int, frame: FrameType | None) -> None:
            logger.info(
                "%s: %s received, stopping (grace %g s)",
                self.name,
                signal.Signals(signum).name,
                self.shutdown_grace,
            )
            # Back to the defaults so an impatient second Ctrl-C (or SIGTERM) ends us at once.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _start_watchdog(self) -> None:
        def overrun() -> None:
            logger.error(
                "%s: still running %g s after the shutdown grace period; exiting",
                self.name,
                WATCHDOG_MARGIN_SECONDS,
            )
            exit_now(1)

        watchdog = threading.Timer(self.shutdown_grace + WATCHDOG_MARGIN_SECONDS, overrun)
        watchdog.daemon = True
        watchdog.start()


def exit_now(status: int) -> None:
    """End the process at once, after flushing the logs (threads still running are dropped)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)
