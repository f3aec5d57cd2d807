"""The outbox worker: publishes every stored event to Kafka (`waymark worker outbox`).

Several replicas may run: one leads (a PostgreSQL advisory lock, infrastructure/postgres/
leadership.py) and publishes, the others stand by and take over within
`WAYMARK_OUTBOX_LEADER_RETRY_INTERVAL` once the leader's session ends (crash, SIGKILL). A
deposed leader can at worst publish a batch twice, which at-least-once delivery allows.

It wakes on the event store's own NOTIFY (the recorder sends one on the `waymark_events`
channel with every insert, delivered at commit), so under light load an event is on its way
to the broker milliseconds after it commits; the poll interval is the fallback.
"""

from __future__ import annotations

import logging
import threading
import time

from infrastructure.container import OutboxWorkerContainer
from infrastructure.outbox import PublishingStoppedError
from infrastructure.postgres.leadership import Leadership
from infrastructure.postgres.listener import PostgresListener
from infrastructure.postgres.recorder import EVENTS_TABLE
from workers.probes import run_until_stopped
from workers.runner import DEFAULT_SHUTDOWN_GRACE_SECONDS, WorkerRunner

logger = logging.getLogger(__name__)

# The eventsourcing recorder NOTIFYs on a channel named after the events table.
EVENTS_CHANNEL = EVENTS_TABLE
# How often a wait between retries looks whether the worker is stopping.
STOP_CHECK_SECONDS = 0.2


class OutboxWorker:
    """Publishes batches while it leads; with `listen`, wakes on every committed insert."""

    def __init__(self, container: OutboxWorkerContainer, *, listen: bool = True):
        settings = container.settings
        self.container = container
        self.publisher = container.publisher
        self.leadership = Leadership(
            container.database_url,
            container.leadership_name,
            retry_interval=settings.outbox_leader_retry_interval,
            connect_timeout=settings.db_connect_timeout,
        )
        self.runner = WorkerRunner(
            self.tick,
            name="outbox-worker",
            poll_interval=settings.outbox_poll_interval,
            shutdown_grace=float(
                getattr(settings, "worker_shutdown_grace", DEFAULT_SHUTDOWN_GRACE_SECONDS)
            ),
        )
        # A shutdown interrupts the wait between retries instead of outliving the grace period.
        self._stopping = threading.Event()
        self.publisher.sleep = self._retry_sleep
        self.listener: PostgresListener | None = None
        if listen:
            self.listener = PostgresListener(
                container.database_url,
                [EVENTS_CHANNEL],
                lambda _channel, _payload: self.runner.wake(),
                on_connect=self.runner.wake,
                connect_timeout=settings.db_connect_timeout,
                name="outbox-worker-listener",
            )
            self.runner.supervise(self.listener.name, self.listener.run)

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def _retry_sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not (self.runner.stopping or self._stopping.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, STOP_CHECK_SECONDS))
        raise PublishingStoppedError("stopping: the batch is left for the next publisher")

    def tick(self) -> int:
        if not self.leadership.ensure():
            # A standby: try again soon rather than after a whole poll interval.
            self.runner.wake_in(self.leadership.retry_interval)
            return 0
        # Instance events first, then the audit log's entries (its second source).
        return self.publisher.publish_batch() + self.publisher.publish_audit_batch()

    def wake(self) -> None:
        """Something was committed in this process: publish now."""
        self.runner.wake()

    def close(self) -> None:
        self._stopping.set()
        self.leadership.release()


def main(container: OutboxWorkerContainer) -> None:
    """`waymark worker outbox`: run until SIGTERM/SIGINT."""
    worker = OutboxWorker(
        container, listen=bool(getattr(container.settings, "worker_listen", True))
    )
    run_until_stopped(container, worker)
