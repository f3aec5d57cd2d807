"""A migration job survives the death of the API process running it: `waymark serve` is
killed with SIGKILL mid-job, the job stays `running` while its lease lasts, then another
`waymark serve` on the same database claims it (its job sweeper) and finishes it from the
stored position, every instance migrated — and counted — exactly once
(application/jobs.py, application/job_recovery.py, api/job_sweeper.py)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import (
    Server,
    _free_port,
    _wait_until_ready,
    publish,
    server_env,
    start,
    terminate,
    unique,
    wait_for,
)

# Two server start-ups and a few hundred requests: more than the default 120 s when loaded.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COUNT = 200
LEASE_SECONDS = 2


def waiting(name: str, version: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "hold", "type": "wait", "event": "go"}]
    routes = [{"from": "hold", "to": "done"}]
    if version == 2:  # v2 adds a step after the wait
        nodes.append({"id": "note", "type": "set", "variables": {"v2": "true"}})
        routes = [{"from": "hold", "to": "note"}, {"from": "note", "to": "done"}]
    nodes.append({"id": "done", "type": "end"})
    return {"name": name, "nodes": nodes, "routes": routes}


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[tuple[Any, Server]]:
    """`waymark serve` until ready; yields (process, server); SIGTERM after if still up."""
    from tests.e2e.conftest import waymark

    server = Server(f"http://127.0.0.1:{_free_port()}", log)
    process = waymark("serve", "--port", server.base_url.rsplit(":", 1)[1], env=env, log=log)
    try:
        _wait_until_ready(process, server)
        yield process, server
    finally:
        terminate(process)


def stored_job(database_url: str, job_id: str) -> tuple[str, int, int]:
    """(status, done, position) of the job row, read without any API process."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, done, item_position FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None
    return (str(row[0]), int(row[1]), int(row[2]))


def migrations_per_instance(database_url: str, ids: list[str]) -> dict[str, int]:
    """How many InstanceMigrated events each instance has, from the stored events."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id::text, count(*) FROM waymark_events "
            "WHERE originator_id = ANY(%s::uuid[]) AND topic LIKE %s GROUP BY originator_id",
            (ids, "%InstanceMigrated"),
        ).fetchall()
    found = {str(r[0]): int(r[1]) for r in rows}
    return {i: found.get(i, 0) for i in ids}


def job_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_job_whose_api_process_was_killed_is_resumed_by_another_each_instance_once(
    module_database_url: str, tmp_path: Path
) -> None:
    env = server_env(
        module_database_url,
        tmp_path,
        WAYMARK_MIGRATION_BATCH_SIZE="2",
        WAYMARK_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    name = unique("failover")
    with serve(env, tmp_path / "victim.log") as (victim, first), first.client("k-acme") as acme:
        # Given 200 waiting instances of version 1, and a version 2
        publish(acme, waiting(name, 1))
        ids = [start(acme, name)["id"] for _ in range(COUNT)]
        publish(acme, waiting(name, 2))
        # When a migration job starts, and its process is killed mid-job
        response = acme.post(
            f"/v1/definitions/{name}/migrations",
            json={"from_version": 1, "to_version": 2, "dry_run": False},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_for(
            lambda: job_of(acme, job_id)["done"] > 0,
            interval=0.01,
            what="the job's first batch",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    # Then it was cut off mid-job: still `running`, nobody going on with it
    at_kill = stored_job(module_database_url, job_id)
    assert at_kill[0] == "running" and 0 < at_kill[1] < COUNT, at_kill
    time.sleep(LEASE_SECONDS / 2)
    assert stored_job(module_database_url, job_id) == at_kill

    # ... until another API process comes up: it resumes the job once the lease has ended
    with (
        serve(env, tmp_path / "survivor.log") as (_survivor, second),
        second.client("k-acme") as acme,
    ):
        took = time.monotonic()
        done = wait_for(
            lambda: (job := job_of(acme, job_id))["status"] != "running" and job,
            timeout=60.0,
            interval=0.2,
            what="the resumed job",
        )
        took = time.monotonic() - took
        print(f"killed at {at_kill[1]}/{COUNT}; done {took:.1f} s after the restart began")
        assert (done["status"], done["total"], done["done"]) == ("succeeded", COUNT, COUNT)
        assert (done["refused"], done["failed"], done["remaining"]) == (0, 0, 0), done
        assert done["resumes"] == 1
        # Every instance moved exactly once (one InstanceMigrated each, now version 2)
        assert migrations_per_instance(module_database_url, ids) == {i: 1 for i in ids}
        some = ids[:: COUNT // 10]
        assert [acme.get(f"/v1/instances/{i}").json()["version"] for i in some] == [2] * 10
    assert "resumed at" in (tmp_path / "survivor.log").read_text()
