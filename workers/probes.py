"""Each worker process's probe port (`WAYMARK_WORKER_PROBE_PORT`): the same endpoints as
the API's — `/health/live`, `/health/ready`, `/health` — and its own `/metrics`.

Live: every loop of the process comes round (`WorkerRunner.stalled`). Ready: the database
answers (and the outbox lag is within `WAYMARK_READY_MAX_OUTBOX_LAG` when that is set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from infrastructure.container import OutboxWorkerContainer, WorkerContainer
from infrastructure.health import (
    Check,
    breakers_check,
    database_check,
    instance_counts,
    outbox_component,
    runner_component,
)
from infrastructure.probes import ProbeServer, start_probe_server
from workers.runner import WorkerRunner


def worker_checks(container: WorkerContainer, runners: Sequence[WorkerRunner]) -> list[Check]:
    settings = container.settings
    stall = settings.liveness_stall_seconds
    checks = [database_check(container.core)]
    for runner in runners:
        checks.append(Check(runner.name, lambda r=runner: runner_component(r, stall)))  # type: ignore[misc]
    checks.append(breakers_check(container.core))
    if isinstance(container, OutboxWorkerContainer):
        from infrastructure.bootstrap import outbox_tables

        tables = outbox_tables(container.core)
        checks.append(
            Check(
                "outbox",
                lambda: outbox_component(tables.status(), settings.ready_max_outbox_lag),
                critical=True,
            )
        )
    checks.append(Check("instances", instance_counts))
    return checks


def serve_probes(container: WorkerContainer, runners: Sequence[WorkerRunner]) -> Callable[[], None]:
    """Start the probe server for this worker process; returns its closer."""
    settings = container.settings
    checks = worker_checks(container, runners)

    def live() -> tuple[bool, dict[str, Any]]:
        stalled = [r.name for r in runners if r.stalled(settings.liveness_stall_seconds)]
        return not stalled, {"stalled": stalled}

    server: ProbeServer | None = start_probe_server(
        settings.worker_probe_host, settings.worker_probe_port, lambda: checks, live
    )
    return server.close if server is not None else lambda: None


class StoppableWorker(Protocol):
    """A worker with one loop (`runner`) and resources to release (`close`)."""

    @property
    def runner(self) -> WorkerRunner: ...

    def close(self) -> None: ...


def run_until_stopped(container: WorkerContainer, worker: StoppableWorker) -> None:
    """Run a one-loop worker process until SIGTERM/SIGINT, its probe port open; then close
    the probes, the worker and the container."""
    worker.runner.install_signal_handlers()
    close_probes = serve_probes(container, [worker.runner])
    try:
        worker.runner.run_forever()
    finally:
        close_probes()
        worker.close()
        container.close()
