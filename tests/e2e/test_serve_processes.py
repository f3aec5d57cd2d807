"""`waymark serve --workers N` / `WAYMARK_API_WORKERS`: several API processes, the in-process
task and timer workers in each of them or as processes of their own beside them
(`WAYMARK_API_PROCESS_WORKERS`, api/serve_processes.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import (
    REPO_ROOT,
    Target,
    publish,
    server_env,
    serving,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import calling

pytestmark = pytest.mark.e2e


def _serve_process(port: str) -> psutil.Process:
    for process in psutil.Process().children(recursive=True):
        command = process.cmdline()
        if "serve" in command and port in command:
            return process
    raise AssertionError(f"no waymark serve on port {port}")


def _roles(serve: psutil.Process) -> list[str]:
    """What each child of `waymark serve` is: an API process, or `worker <name>`."""
    roles = []
    for child in serve.children():
        command = " ".join(child.cmdline())
        if "api.cli worker" in command:
            roles.append("worker " + command.rsplit(" ", 1)[-1])
        elif "multiprocessing" in command and "resource_tracker" not in command:
            roles.append("api")
    return sorted(roles)


@pytest.mark.parametrize(
    ("process_workers", "roles"),
    [
        # The default: each API process hosts its own task and timer workers (N replicas
        # of `waymark serve`), so no worker process is started.
        ("true", ["api", "api"]),
        # One task worker and one timer worker process beside the API processes (no
        # broker: no outbox publisher); the API processes themselves host no worker.
        ("false", ["api", "api", "worker tasks", "worker timers"]),
    ],
)
def test_two_api_processes_and_their_workers(
    module_database_url: str, target: Target, tmp_path: Path, process_workers: str, roles: list[str]
) -> None:
    env = server_env(
        module_database_url,
        tmp_path,
        WAYMARK_API_WORKERS="2",
        WAYMARK_API_PROCESS_WORKERS=process_workers,
    )
    path = "/" + unique("procs")
    with serving(env, tmp_path) as server, server.client("k-acme") as acme:
        serve = _serve_process(server.base_url.rsplit(":", 1)[-1])
        wait_for(lambda: _roles(serve) == roles, what="the processes of waymark serve")
        children = serve.children(recursive=True)

        # Service tasks started through the API processes are run (by the process that
        # started them, or by the worker process woken by NOTIFY) and the instances end.
        name = unique("call")
        publish(acme, calling(name, target.base_url + path))
        ids = [start(acme, name)["id"] for _ in range(6)]
        for instance_id in ids:
            wait_for_status(acme, instance_id, "completed")
        assert len(target.received(path)) == 6

    # SIGTERM (serving's exit) stops every process it started.
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []


def test_serve_with_one_process_starts_no_worker_process(
    module_database_url: str, tmp_path: Path
) -> None:
    # The control: the default layout is one process, workers in its threads.
    env = server_env(module_database_url, tmp_path)
    with serving(env, tmp_path) as server:
        serve = _serve_process(server.base_url.rsplit(":", 1)[-1])
        assert _roles(serve) == []


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "api.cli", "serve", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_several_processes_need_a_database_url(tmp_path: Path) -> None:
    refused = _serve("--workers", "2", env=server_env(None, tmp_path))
    assert refused.returncode == 2
    assert "needs DATABASE_URL" in refused.stderr
    assert not (tmp_path / "data").exists()  # refused before the embedded server started


def test_workers_must_be_positive(module_database_url: str, tmp_path: Path) -> None:
    refused = _serve("--workers", "0", env=server_env(module_database_url, tmp_path))
    assert refused.returncode == 2
    assert "at least 1" in refused.stderr
