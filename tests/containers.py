"""Tests' composition: the API and both workers' containers on one core, as `waymark serve`
builds them when the workers run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from infrastructure.bootstrap import build_api
from infrastructure.container import Container, TaskWorkerContainer, TimerWorkerContainer
from infrastructure.settings import Settings
from infrastructure.worker_bootstrap import build_task_worker, build_timer_worker


@dataclass
class Engine:
    """Every part by name (`engine.instances`, `engine.timers`, `engine.activity_queue`), so
    one fixture serves the use cases and the workers (`TaskWorker(engine)`)."""

    api: Container
    task_worker: TaskWorkerContainer
    timer_worker: TimerWorkerContainer

    def __getattr__(self, name: str) -> Any:
        if name in ("api", "task_worker", "timer_worker"):
            raise AttributeError(name)  # not set yet: no recursion
        for part in (self.api, self.task_worker, self.timer_worker):
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(name)

    def close(self) -> None:
        self.task_worker.close()
        self.timer_worker.close()
        self.api.close()  # owns the core


def build_engine(settings: Settings) -> Engine:
    api = build_api(settings)
    return Engine(
        api,
        build_task_worker(settings, core=api.core),
        build_timer_worker(settings, core=api.core),
    )


@contextmanager
def api_publishing(
    database_url: str, *definitions: dict[str, Any], tenant: str = "acme", **settings: Any
) -> Iterator[Container]:
    """The API container on `database_url` (an admin key of `tenant`) with `definitions`
    published for `tenant`; closed after."""
    built = build_api(Settings(database_url=database_url, api_keys=f"k={tenant}:admin", **settings))
    try:
        for definition in definitions:
            built.definitions.publish(tenant, definition)
        yield built
    finally:
        built.close()
