"""Development mode's embedded PostgreSQL stops with the last clean stop of `waymark serve`,
whatever a previous SIGKILL left behind (a dead pid in pgserver's handle list, an orphaned
server, a stale postmaster.pid)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import (
    Server,
    _free_port,
    _wait_until_ready,
    server_env,
    terminate,
    wait_for,
    waymark,
)

pytestmark = pytest.mark.e2e

# uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
CLEAN_EXIT = (0, -signal.SIGTERM)


def postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The postmaster(s) serving `pgdata` (their command line names it with -D)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(proc)
    return found


def start_serving(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], Server]:
    running = Server(f"http://127.0.0.1:{_free_port()}", workdir / "server.log")
    process = waymark(
        "serve", "--port", running.base_url.rsplit(":", 1)[1], env=env, log=running.log
    )
    _wait_until_ready(process, running)
    return process, running


def alive(process: psutil.Process) -> bool:
    # An orphan that died may linger as a zombie when the container's init does not reap.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def handles(pgdata: Path) -> list[int]:
    return [int(p) for p in json.loads((pgdata / ".handle_pids.json").read_text())]


@pytest.mark.parametrize("postgres_survives", [True, False], ids=["orphaned", "killed-too"])
def test_a_clean_stop_after_a_sigkill_stops_postgres(
    tmp_path: Path, postgres_survives: bool
) -> None:
    env = server_env(None, tmp_path)
    pgdata = (tmp_path / "data" / "pgdata").resolve()

    # Given a development server killed with SIGKILL
    first, _ = start_serving(env, tmp_path)
    [postmaster] = postgres_of(pgdata)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.pid in handles(pgdata)  # pgserver's list keeps the dead pid
    if postgres_survives:
        assert alive(postmaster)  # orphaned: the next serve must adopt it
    else:
        os.kill(postmaster.pid, signal.SIGKILL)
        psutil.wait_procs([postmaster], timeout=10)

    # When a new server starts (adopting or restarting PostgreSQL), then stops cleanly
    second, running = start_serving(env, tmp_path)
    assert first.pid not in handles(pgdata)
    assert len(postgres_of(pgdata)) == 1
    assert terminate(second) in CLEAN_EXIT, running.log.read_text()

    # Then no PostgreSQL serves that data directory any more
    wait_for(lambda: not postgres_of(pgdata), timeout=10, what="postgres to stop")
    if postgres_survives:
        assert not alive(postmaster)


def test_a_second_server_on_the_data_dir_keeps_postgres_until_the_last_stops(
    tmp_path: Path,
) -> None:
    env = server_env(None, tmp_path)
    pgdata = (tmp_path / "data" / "pgdata").resolve()
    first, _ = start_serving(env, tmp_path)
    second, _ = start_serving(env, tmp_path)

    assert terminate(first) in CLEAN_EXIT
    assert len(postgres_of(pgdata)) == 1  # the second still uses it

    assert terminate(second) in CLEAN_EXIT
    wait_for(lambda: not postgres_of(pgdata), timeout=10, what="postgres to stop")


def test_startup_logs_one_line_per_step(tmp_path: Path) -> None:
    process, running = start_serving(server_env(None, tmp_path), tmp_path)
    terminate(process)

    text = running.log.read_text()
    assert "Running commandline" not in text and "pg_ctl" not in text
    steps = [line for line in text.splitlines() if "embedded PostgreSQL:" in line]
    assert len(steps) <= 5, steps
