"""Standalone workers beside an API process that runs none: LISTEN/NOTIFY wakes them across
processes, and SIGTERM shuts them down within the grace period, finishing or handing back
the work they hold."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    publish,
    server_env,
    serving,
    start,
    terminate,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import calling
from tests.e2e.worker_processes import (
    SlowTarget,
    activity_rows,
    parse_time,
    serve_slow_target,
    start_worker,
    timer_definition,
)

pytestmark = pytest.mark.e2e

EXIT_SECONDS = 15.0


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API process only: every worker of these tests is a process of its own."""
    workdir = tmp_path_factory.mktemp("waymark-e2e-workers")
    env = server_env(module_database_url, workdir, WAYMARK_RUN_WORKERS_IN_PROCESS="false")
    with serving(env, workdir) as running:
        yield running


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowTarget]:
    target, http_server = serve_slow_target()
    try:
        yield target
    finally:
        target.open_gate()
        http_server.shutdown()
        http_server.server_close()


def worker_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    # Polls far apart: anything prompt below comes from a notification, not a poll.
    return server_env(
        database_url,
        tmp_path,
        WAYMARK_TIMER_POLL_INTERVAL="30",
        WAYMARK_TASK_POLL_INTERVAL="30",
        **extra,
    )


def test_a_standalone_timer_worker_fires_a_timer_created_by_the_api_process_on_time(
    module_database_url: str, acme: httpx.Client, tmp_path: Path
) -> None:
    worker = start_worker("timers", worker_env(module_database_url, tmp_path), tmp_path / "w.log")
    try:
        name = unique("pause")
        publish(acme, timer_definition(name, "PT2S"))
        view = start(acme, name)
        due = parse_time(view["bookmarks"][0]["due_at"])

        done = wait_for_status(acme, view["id"], "completed", timeout=10.0)
        late = (parse_time(done["ended_at"]) - due).total_seconds()
        print(f"timer fired {late:.3f} s after its due time")
        assert 0 <= late < 1.0, f"fired {late:.3f} s after its due time"
    finally:
        assert terminate(worker.process) == 0, worker.text()


def test_without_notifications_the_timer_waits_for_the_next_poll(
    module_database_url: str, acme: httpx.Client, tmp_path: Path
) -> None:
    # The negative control of the test above: the same worker with LISTEN turned off.
    env = worker_env(module_database_url, tmp_path, WAYMARK_WORKER_LISTEN="false")
    worker = start_worker("timers", env, tmp_path / "w.log")
    try:
        name = unique("pause")
        publish(acme, timer_definition(name, "PT1S"))
        view = start(acme, name)
        due = parse_time(view["bookmarks"][0]["due_at"])

        wait_for(lambda: datetime.now(UTC) > due, what="the due time")
        with pytest.raises(AssertionError, match="timed out"):
            wait_for_status(acme, view["id"], "completed", timeout=2.0)
    finally:
        assert terminate(worker.process) == 0, worker.text()


def test_a_standalone_worker_runs_without_the_api_credentials(
    module_database_url: str, acme: httpx.Client, tmp_path: Path
) -> None:
    # A worker builds only its own container: API keys and tenant secrets are the API's, so
    # entries the API would refuse do not stop a timer worker (it never parses them).
    env = worker_env(
        module_database_url,
        tmp_path,
        WAYMARK_API_KEYS="no-tenant-here",
        WAYMARK_TENANT_SECRETS="no-secret-here",
    )
    worker = start_worker("timers", env, tmp_path / "w.log")
    try:
        name = unique("pause")
        publish(acme, timer_definition(name, "PT1S"))
        view = start(acme, name)
        wait_for_status(acme, view["id"], "completed", timeout=10.0)
    finally:
        assert terminate(worker.process) == 0, worker.text()


def test_a_standalone_task_worker_runs_an_activity_scheduled_by_the_api_process_at_once(
    module_database_url: str, acme: httpx.Client, slow: SlowTarget, tmp_path: Path
) -> None:
    worker = start_worker("tasks", worker_env(module_database_url, tmp_path), tmp_path / "w.log")
    try:
        path = "/" + unique("prompt")
        slow.open_gate()
        name = unique("call")
        publish(acme, calling(name, slow.base_url + path))
        started = time.monotonic()
        view = start(acme, name)

        wait_for(lambda: slow.received(path), timeout=5.0, what="the worker's call")
        took = time.monotonic() - started
        print(f"activity ran {took:.3f} s after the start request")
        assert took < 1.0
        wait_for_status(acme, view["id"], "completed")
    finally:
        assert terminate(worker.process) == 0, worker.text()


def test_sigterm_lets_the_running_action_finish_and_record_then_exits_0(
    module_database_url: str, acme: httpx.Client, tmp_path: Path
) -> None:
    target, http_server = serve_slow_target()
    target.hold = 1.5  # the call takes 1.5 s; the grace period is 10 s
    env = worker_env(module_database_url, tmp_path, WAYMARK_WORKER_SHUTDOWN_GRACE="10")
    worker = start_worker("tasks", env, tmp_path / "w.log")
    try:
        path = "/" + unique("finish")
        name = unique("call")
        publish(acme, calling(name, target.base_url + path))
        view = start(acme, name)
        wait_for(lambda: target.received(path), what="the call in flight")

        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(EXIT_SECONDS)
        took = time.monotonic() - signalled

        print(f"exited {took:.2f} s after SIGTERM")
        assert code == 0, worker.text()
        assert took < 10.0
        # The action finished and its result was recorded by the stopping worker: done,
        # called once.
        assert wait_for_status(acme, view["id"], "completed", timeout=1.0)
        assert target.received(path) == 1
    finally:
        terminate(worker.process)
        http_server.shutdown()
        http_server.server_close()


def test_sigterm_hands_back_unstarted_work_and_releases_what_outlives_the_grace(
    module_database_url: str, acme: httpx.Client, tmp_path: Path
) -> None:
    target, http_server = serve_slow_target()  # calls wait until the gate opens
    env = worker_env(
        module_database_url,
        tmp_path,
        WAYMARK_WORKER_SHUTDOWN_GRACE="2",
        WAYMARK_TASK_WORKER_CONCURRENCY="1",
    )
    worker = None
    try:
        path = "/" + unique("held")
        name = unique("call")
        publish(acme, calling(name, target.base_url + path))
        ids = [start(acme, name)["id"] for _ in range(2)]
        worker = start_worker("tasks", env, tmp_path / "w.log")

        # One action runs (held by the target), the other is claimed and queued behind it.
        def leases() -> list[bool]:
            return [
                row["locked_by"] is not None
                for i in ids
                for row in activity_rows(module_database_url, i)
            ]

        wait_for(lambda: target.received(path) == 1 and all(leases()), what="both claimed")
        worker.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # The queued one is handed back at once, while the worker still waits for the other.
        wait_for(lambda: sorted(leases()) == [False, True], timeout=2.0, what="one handed back")
        assert worker.process.poll() is None

        # At the end of the grace period the running one's lease is released and it exits 0.
        code = worker.process.wait(EXIT_SECONDS)
        took = time.monotonic() - signalled
        print(f"exited {took:.2f} s after SIGTERM (grace 2 s)")
        assert code == 0, worker.text()
        assert took < 2.0 + 1.5
        assert leases() == [False, False]
        statuses = [row["status"] for i in ids for row in activity_rows(module_database_url, i)]
        assert statuses == ["scheduled", "scheduled"]

        # Another worker takes both at once (no 300 s lease to wait out) and finishes them.
        target.open_gate()
        again = start_worker(
            "tasks", worker_env(module_database_url, tmp_path), tmp_path / "w2.log"
        )
        try:
            for instance_id in ids:
                wait_for_status(acme, instance_id, "completed", timeout=10.0)
        finally:
            assert terminate(again.process) == 0, again.text()
        assert target.received(path) == 3  # the abandoned attempt ran again (at-least-once)
    finally:
        if worker is not None:
            terminate(worker.process)
        target.open_gate()
        http_server.shutdown()
        http_server.server_close()
