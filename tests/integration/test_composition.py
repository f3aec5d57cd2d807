"""One composition root per process: a worker builds only what it runs (no web framework,
no API credentials), and the in-process workers live in `workers/`, on the API's core."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance
from infrastructure.bootstrap import build_api
from infrastructure.settings import Settings
from infrastructure.worker_bootstrap import build_task_worker, build_timer_worker

WEB_FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
# Entries a parser refuses: an API process cannot start with them, a worker never reads them.
BROKEN = {"api_keys": "no-tenant-here", "tenant_secrets": "no-secret-here"}

TIMER = {
    "name": "short-pause",
    "nodes": [
        {"id": "pause", "type": "timer", "duration": "PT1S"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "pause", "to": "done"}],
}


def loaded_web_modules(database_url: str, code: str) -> list[str]:
    """Run `code` in a fresh interpreter, then list the web-framework modules it loaded."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from infrastructure.settings import Settings
        settings = Settings(database_url={database_url!r}, db_pool_size=2)
        {code}
        print(json.dumps(sorted(
            m for m in sys.modules if m.split(".")[0] in {WEB_FRAMEWORKS!r}
        )))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_worker_process_imports_no_web_framework(database_url: str) -> None:
    # What `waymark worker tasks|timers` runs: the entry modules and their composition
    # functions, with the containers built against a real database.
    loaded = loaded_web_modules(
        database_url,
        """
        from workers import task_worker, timer_worker
        from infrastructure.worker_bootstrap import build_task_worker, build_timer_worker
        tasks = task_worker.TaskWorker(build_task_worker(settings))
        timers = timer_worker.TimerWorker(build_timer_worker(settings))
        tasks.close(); tasks.container.close(); timers.container.close()
        """,
    )
    assert loaded == []


def test_the_command_worker_process_imports_no_web_framework(database_url: str) -> None:
    # `waymark worker commands` validates messages with the API's request models, which
    # live in the application layer for that reason: no FastAPI comes with them.
    loaded = loaded_web_modules(
        database_url,
        """
        from workers import command_worker
        from infrastructure.worker_bootstrap import build_command_worker
        settings = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:9"})
        worker = command_worker.CommandWorker(build_command_worker(settings))
        worker.close(); worker.container.close()
        """,
    )
    assert loaded == []


def test_the_web_module_probe_sees_fastapi_when_it_is_imported(database_url: str) -> None:
    # Negative control of the test above: the probe would notice a worker importing it.
    loaded = loaded_web_modules(database_url, "import api.app")
    assert "fastapi" in loaded and "starlette" in loaded


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("api_keys", "WAYMARK_API_KEYS"),
        ("tenant_secrets", "WAYMARK_TENANT_SECRETS"),
    ],
)
def test_workers_read_no_api_keys_or_tenant_secrets(
    database_url: str, field: str, variable: str
) -> None:
    settings = Settings(database_url=database_url, db_pool_size=2, **{field: BROKEN[field]})
    for build in (build_task_worker, build_timer_worker):
        built: Any = build(settings)
        assert not hasattr(built, field)
        built.close()
    # Negative control: the API process parses them, and refuses these.
    with pytest.raises(ValueError, match=variable):
        build_api(settings)


def test_worker_containers_on_the_api_core_share_it_and_leave_it_open(database_url: str) -> None:
    settings = Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=2)
    api = build_api(settings)
    try:
        timers = build_timer_worker(settings, core=api.core)
        assert timers.runner is api.runner  # one command path, so on_commit reaches both
        timers.close()
        api.definitions.publish("acme", TIMER)
        view, _ = api.instances.start(
            StartInstance("acme", "short-pause")
        )  # the pool is still open
        assert view["status"] == "suspended"
    finally:
        api.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("hooked", [True, False], ids=["on-commit-wake", "no-wake"])
def test_in_process_workers_wake_on_the_api_commit(database_url: str, hooked: bool) -> None:
    from workers.in_process import InProcessWorkers

    # A 30 s poll: a 1 s timer fires on time only if the API's commit woke the timer worker.
    settings = Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        timer_poll_interval=30,
        task_poll_interval=30,
        db_pool_size=4,
    )
    api = build_api(settings)
    api.definitions.publish("acme", TIMER)
    workers = InProcessWorkers.start(api.core)
    try:
        if not hooked:  # the negative control: the same workers without the wake-up
            api.runner.on_commit.remove(workers._wake)
        for runner in workers.runners:
            wait_until(lambda r=runner: r.last_tick_at is not None, 10, f"{runner.name} tick")
        view, _ = api.instances.start(StartInstance("acme", "short-pause"))

        def completed() -> bool:
            return api.instances.get("acme", UUID(str(view["id"])))["status"] == "completed"

        if hooked:
            wait_until(completed, 5.0, "the timer to fire")
        else:
            with pytest.raises(AssertionError, match="timed out"):
                wait_until(completed, 3.0, "the timer to fire")
    finally:
        workers.stop(timeout=10)
        names = {r.name for r in workers.runners}
        assert not [t for t in threading.enumerate() if t.name in names]  # loops ended
        assert workers._wake not in api.runner.on_commit
        api.close()
