"""The task and timer workers (the cron scheduler, and with KAFKA_BOOTSTRAP_SERVERS set the
outbox publisher) as threads of `waymark serve` (development, or when
`WAYMARK_RUN_WORKERS_IN_PROCESS` asks for it).

They are built on the API's core, so they share its pool and its `CommandRunner`: a commit
that schedules work wakes its worker through `on_commit` at once, with no LISTEN needed.
`api.cli` hands `InProcessWorkers.start` to the API's lifespan; `api.app` never imports
this package.
"""

from __future__ import annotations

import logging

from application.eager import EagerActivities
from domain.instance import WorkflowInstance
from infrastructure.container import Core
from infrastructure.worker_bootstrap import (
    build_outbox_worker,
    build_task_worker,
    build_timer_worker,
)
from workers.outbox_worker import OutboxWorker
from workers.runner import WorkerRunner
from workers.task_worker import TaskWorker
from workers.timer_worker import TimerWorker, schedule_worker_of

logger = logging.getLogger(__name__)

# How long shutdown waits for each in-process worker to finish its batch.
WORKER_STOP_TIMEOUT_SECONDS = 30.0


class InProcessWorkers:
    """Starts the task and timer workers in daemon threads; `stop()` ends and closes them."""

    def __init__(self, core: Core):
        self.tasks = TaskWorker(build_task_worker(core.settings, core=core))
        self.timers = TimerWorker(build_timer_worker(core.settings, core=core))
        self.schedules = schedule_worker_of(self.timers.container)
        # Woken by this process's commits (`_wake`); it still takes the leadership, so a
        # standalone `waymark worker outbox` beside it never publishes at the same time.
        self.outbox: OutboxWorker | None = None
        if core.settings.kafka_bootstrap_servers:
            self.outbox = OutboxWorker(build_outbox_worker(core.settings, core=core), listen=False)
        self._core = core

    @classmethod
    def start(cls, core: Core) -> InProcessWorkers:
        """Build both workers on `core`, hook the commit wake-up, run their loops."""
        workers = cls(core)
        if core.settings.eager_dispatch:
            tasks = workers.tasks
            tasks.eager = EagerActivities(
                tasks.worker_id, tasks.lease_seconds, capacity=tasks.batch_size, wake=tasks.wake
            )
            core.runner.eager = tasks.eager
        core.runner.on_commit.append(workers._wake)
        for runner in workers.runners:
            runner.start_in_thread()
        logger.info("task and timer workers running in-process (%s)", workers.tasks.worker_id)
        return workers

    @property
    def runners(self) -> list[WorkerRunner]:
        runners = [self.tasks.runner, self.timers.runner]
        if self.schedules is not None:
            runners.append(self.schedules.runner)
        if self.outbox is not None:
            runners.append(self.outbox.runner)
        return runners

    def stop(self, timeout: float = WORKER_STOP_TIMEOUT_SECONDS) -> None:
        """Stop both loops (each within `timeout`), then release what they hold."""
        if self._wake in self._core.runner.on_commit:
            self._core.runner.on_commit.remove(self._wake)
        if self._core.runner.eager is self.tasks.eager:
            self._core.runner.eager = None  # commits from now on lease nothing to this worker
        workers: list[TaskWorker | TimerWorker | OutboxWorker] = [self.tasks, self.timers]
        if self.outbox is not None:
            workers.append(self.outbox)
        for worker in workers:
            if not worker.runner.stop(timeout):
                logger.warning("%s did not stop within %g s", worker.runner.name, timeout)
            worker.close()
        if self.schedules is not None and not self.schedules.runner.stop(timeout):
            logger.warning("the scheduler did not stop within %g s", timeout)
        # The worker containers do not own the core: only their own parts are released.
        for worker in workers:
            worker.container.close()

    def _wake(self, events: list[WorkflowInstance.Event]) -> None:
        # A commit that scheduled work wakes its worker instead of leaving it to the poll.
        if any(isinstance(e, WorkflowInstance.ActivityScheduled) for e in events):
            self.tasks.wake()
        if any(isinstance(e, WorkflowInstance.BookmarkCreated) for e in events):
            self.timers.wake()
        if self.outbox is not None and events:
            self.outbox.wake()
