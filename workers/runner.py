"""The loop every worker runs (modelled on procrastinate's worker).

A worker is a `tick() -> int` callable that handles one bounded batch and says how many items
it handled. The runner calls it again at once while there is work, otherwise sleeps for the
poll interval or until `wake()` (an in-process producer, a LISTEN/NOTIFY listener) or `stop()`.
A failing tick (database down, ...) is logged and retried with exponential backoff; it never
kills the loop, because the work it would have done stays in the database for the next try.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class WorkerRunner:
    """Runs a worker's `tick` until stopped: poll, wake-up, backoff on errors, heartbeat."""

    def __init__(
        self,
        tick: Callable[[], int],
        *,
        name: str = "worker",
        poll_interval: float = 1.0,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ):
        self.tick = tick
        self.name = name
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        # Heartbeat for health checks: wall-clock time of the last tick that did not raise.
        self.last_tick_at: datetime | None = None
        self.consecutive_failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """Tick as soon as the current tick (if any) is over instead of after the poll interval."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end after the current tick; True when it ended within `timeout`.

        Safe to call from a signal handler or another thread; only joins when the loop runs
        in a thread started by `start_in_thread`.
        """
        self._stop.set()
        self._wake.set()  # interrupt the idle wait
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def run_forever(self) -> None:
        logger.info("%s: started (poll every %g s)", self.name, self.poll_interval)
        while not self._stop.is_set():
            # Cleared before the tick: a wake() arriving during the tick makes the next
            # idle wait return at once, so nothing a producer announced waits a poll interval.
            self._wake.clear()
            try:
                handled = self.tick()
            except Exception:
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
            # stop() sets the stop flag before the wake flag, so checking here cannot miss it.
            if not handled and not self._stop.is_set():
                self._wake.wait(self.poll_interval)
        logger.info("%s: stopped", self.name)

    def backoff(self, failures: int) -> float:
        """min(poll * 2^(failures-1), max): the first retry comes one poll interval later."""
        return min(self.poll_interval * 2 ** max(failures - 1, 0), self.max_backoff)

    def seconds_since_tick(self) -> float | None:
        """Age of the heartbeat, for health checks (None before the first tick)."""
        if self.last_tick_at is None:
            return None
        return (datetime.now(UTC) - self.last_tick_at).total_seconds()

    def start_in_thread(self) -> threading.Thread:
        """Run the loop in a daemon thread (workers inside `waymark serve`)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._thread.start()
        return self._thread

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the loop gracefully; a second signal kills the process."""

        def handle(signum: int, frame: FrameType | None) -> None:
            logger.info("%s: %s received, stopping", self.name, signal.Signals(signum).name)
            # Back to the defaults so an impatient second Ctrl-C (or SIGTERM) ends us at once.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
