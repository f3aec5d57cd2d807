"""The `waymark` command itself: `migrate`, a separate `worker tasks` process, the workers
not shipped yet, and `serve` in development mode (embedded PostgreSQL, no DATABASE_URL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.cli_support import empty_database, run
from tests.e2e.conftest import (
    Target,
    publish,
    server_env,
    serving,
    start,
    terminate,
    unique,
    wait_for,
    wait_for_status,
    waymark,
)
from tests.e2e.flow_support import calling

pytestmark = pytest.mark.e2e


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database with no schema at all."""
    with empty_database(postgres_admin_url, "e2e_empty") as url:
        yield url


def test_the_outbox_worker_needs_kafka(tmp_path: Path) -> None:
    env = server_env(None, tmp_path)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    result = run("worker", "outbox", env=env)

    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr


def test_the_command_worker_needs_a_broker(tmp_path: Path) -> None:
    env = server_env(None, tmp_path)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    result = run("worker", "commands", env=env)

    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr


def test_outbox_dead_letters_are_listed_and_redriven(
    module_database_url: str, tmp_path: Path
) -> None:
    import json

    env = server_env(module_database_url, tmp_path)
    position = uuid.uuid4().int % 1_000_000_000
    with psycopg.connect(module_database_url) as conn:
        row = conn.execute(
            "INSERT INTO outbox_dead_letters (publisher, position, instance_id, tenant, "
            "event_type, error) VALUES ('kafka', %s, %s, 'acme', 'Started', 'too big') "
            "RETURNING id",
            (position, uuid.uuid4()),
        ).fetchone()
    assert row is not None
    listed = run("outbox", "dead-letters", env=env)
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert any(d["id"] == row[0] and d["status"] == "dead" for d in letters)

    retried = run("outbox", "dead-letters", "--retry", str(row[0]), env=env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "retry"
    unknown = run("outbox", "dead-letters", "--retry", "987654321", env=env)
    assert unknown.returncode == 1
    assert "dead letter 987654321 not found" in unknown.stderr


def test_migrate_creates_the_schema(empty_database_url: str, tmp_path: Path) -> None:
    env = server_env(empty_database_url, tmp_path)

    first = run("migrate", env=env)
    again = run("migrate", env=env)  # idempotent

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    with psycopg.connect(empty_database_url) as conn:
        found = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    assert found == (True,)


def test_a_separate_task_worker_runs_service_tasks(
    module_database_url: str, target: Target, tmp_path: Path
) -> None:
    # Given a server that runs no workers itself
    env = server_env(module_database_url, tmp_path, WAYMARK_RUN_WORKERS_IN_PROCESS="false")
    path = "/" + unique("worker")
    with serving(env, tmp_path) as server, server.client("k-acme") as acme:
        name = unique("call")
        publish(acme, calling(name, target.base_url + path))
        view = start(acme, name)
        assert [a["status"] for a in view["activities"]] == ["scheduled"]
        assert target.received(path) == []

        # When `waymark worker tasks` runs, then the call is made and the instance ends
        worker = waymark("worker", "tasks", env=env, log=tmp_path / "worker.log")
        try:
            wait_for(lambda: target.received(path), what="the worker's call")
            wait_for_status(acme, view["id"], "completed")
        finally:
            # And SIGTERM stops it gracefully
            code = terminate(worker)
        assert code == 0, (tmp_path / "worker.log").read_text()


def test_serve_in_development_runs_an_embedded_postgres(tmp_path: Path) -> None:
    env = server_env(None, tmp_path)  # no DATABASE_URL

    with serving(env, tmp_path) as server, server.client("k-acme") as acme:
        assert httpx.get(server.base_url + "/health/ready").status_code == 200
        assert publish(acme, {"name": "dev", "nodes": [{"id": "e", "type": "end"}]})["version"] == 1

    assert (tmp_path / "data").is_dir()
    migrated = run("migrate", env=env)  # development: bootstrap's embedded server
    assert migrated.returncode == 0, migrated.stderr
