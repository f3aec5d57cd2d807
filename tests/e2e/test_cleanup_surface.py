"""The cleanup service's surface (issue 8): the erase API (admin only, 409 while running),
the long-running/stuck listings, the `cleanup` component of GET /health, `waymark cleanup
--once [--dry-run]`, `waymark erase`, and `waymark worker cleanup` with two replicas (one
runs, the other stands by)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.cli_support import run
from tests.e2e.conftest import (
    Server,
    is_problem,
    publish,
    server_env,
    start,
    terminate,
    unique,
    wait_for,
    waymark,
)

pytestmark = pytest.mark.e2e

# Fresh instances count as old: the CLI runs see what the server just created.
IMMEDIATE = {"WAYMARK_RETENTION_COMPLETED": "PT0S", "WAYMARK_RETENTION_HISTORY": "PT0S"}


def quick(name: str) -> dict:
    return {"name": name, "nodes": [{"id": "done", "type": "end"}], "routes": []}


def waiting(name: str) -> dict:
    return {
        "name": name,
        "nodes": [{"id": "hold", "type": "wait", "event": "go"}, {"id": "done", "type": "end"}],
        "routes": [{"from": "hold", "to": "done"}],
    }


@pytest.fixture
def viewer(server: Server) -> Iterator[httpx.Client]:
    with server.client("k-acme-viewer") as client:
        yield client


def events_of(url: str, instance_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM waymark_events WHERE originator_id = %s", (instance_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_erase_api_is_admin_only_and_refuses_a_running_instance(
    acme: httpx.Client, globex: httpx.Client, viewer: httpx.Client, module_database_url: str
) -> None:
    name, held = unique("erase"), unique("held")
    publish(acme, quick(name))
    publish(acme, waiting(held))
    ended = start(acme, name)["id"]
    running = start(acme, held)["id"]

    assert viewer.post(f"/v1/instances/{ended}/erase").status_code == 403
    assert globex.post(f"/v1/instances/{ended}/erase").status_code == 404
    refused = acme.post(f"/v1/instances/{running}/erase")
    assert is_problem(refused, 409, "instance-not-ended"), refused.text

    erased = acme.post(f"/v1/instances/{ended}/erase", json={"reason": "GDPR request 42"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["reason"] == "GDPR request 42"
    assert erased.json()["deleted"]["instances"] == 1
    assert acme.get(f"/v1/instances/{ended}").status_code == 404
    assert events_of(module_database_url, ended) == 0
    assert acme.get(f"/v1/instances/{running}").status_code == 200


def test_stuck_instances_are_listed_and_health_counts_them(
    acme: httpx.Client, globex: httpx.Client, module_database_url: str
) -> None:
    held = unique("stuck")
    publish(acme, waiting(held))
    stuck = start(acme, held)["id"]
    with psycopg.connect(module_database_url) as conn:
        conn.execute("UPDATE instances SET status = 'running' WHERE id = %s", (stuck,))
        conn.execute("UPDATE bookmarks SET status = 'consumed' WHERE instance_id = %s", (stuck,))

    listed = acme.get("/v1/instances", params={"condition": "stuck", "limit": 500})
    assert listed.status_code == 200, listed.text
    assert stuck in [item["id"] for item in listed.json()["items"]]
    assert globex.get("/v1/instances", params={"condition": "stuck"}).json()["items"] == []
    assert acme.get("/v1/instances", params={"condition": "long_running"}).status_code == 200
    assert acme.get("/v1/instances", params={"condition": "sleepy"}).status_code == 422

    health = acme.get("/health").json()["components"]["cleanup"]
    assert health["status"] == "up"
    assert health["instances"]["stuck"] >= 1


def test_cleanup_once_dry_run_then_for_real_and_erase_from_the_cli(
    acme: httpx.Client, module_database_url: str, tmp_path: Path
) -> None:
    name, held = unique("cli"), unique("cli-held")
    publish(acme, quick(name))
    publish(acme, waiting(held))
    ended = start(acme, name)["id"]
    running = start(acme, held)["id"]
    env = server_env(module_database_url, tmp_path, **IMMEDIATE)

    dry = run("cleanup", "--once", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout
    assert events_of(module_database_url, ended) > 0  # nothing deleted

    real = run("cleanup", "--once", env=env)
    assert real.returncode == 0, real.stderr
    assert "deleted" in real.stdout and "from waymark_events" in real.stdout
    assert events_of(module_database_url, ended) == 0
    assert events_of(module_database_url, running) > 0
    assert acme.get("/health").json()["components"]["cleanup"]["last_run"] is not None

    refused = run("erase", "--instance", running, env=env)
    assert refused.returncode == 1
    assert "only an ended one is erased" in refused.stderr


def runs_of(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM cleanup_runs").fetchone()
    return int(row[0]) if row else 0


def test_two_cleanup_workers_run_once_between_them(
    acme: httpx.Client, module_database_url: str, tmp_path: Path
) -> None:
    name = unique("replicas")
    publish(acme, quick(name))
    ended = start(acme, name)["id"]
    env = server_env(module_database_url, tmp_path, **IMMEDIATE)
    with psycopg.connect(module_database_url) as conn:
        row = conn.execute("SELECT count(*) FROM cleanup_runs").fetchone()
    runs_before = int(row[0]) if row else 0
    logs = [tmp_path / f"cleanup-{n}.log" for n in range(2)]
    workers = [waymark("worker", "cleanup", env=env, log=log) for log in logs]

    def tails() -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists()
        )

    try:
        # One replica runs (the instance goes), the other reports that it stands by
        wait_for(lambda: events_of(module_database_url, ended) == 0, timeout=60, what="cleanup")
        wait_for(
            lambda: any("standing by" in log.read_text() for log in logs if log.exists()),
            timeout=60,
            what="the standby",
        )
        # The run's record is written after its last batch (the instance may be gone a moment
        # before): wait for it, then there is exactly one, the standby ran nothing.
        wait_for(
            lambda: runs_of(module_database_url) > runs_before, timeout=30, what="the run's record"
        )
        assert runs_of(module_database_url) == runs_before + 1, tails()
    except BaseException:
        print(tails())
        raise
    finally:
        codes = [terminate(worker) for worker in workers]
    assert codes == [0, 0], tails()
