"""Faults: the database going away answers 503 and loses nothing; it comes back by itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.conftest import instance, is_problem, publish, start, unique, wait_for

pytestmark = pytest.mark.e2e


@contextmanager
def database_down(admin_url: str, database_url: str) -> Iterator[None]:
    """Refuse new connections to the database and cut the open ones, as a restart would."""
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
            )


def test_database_outage_is_a_503_and_the_server_recovers(
    acme: httpx.Client, postgres_admin_url: str, module_database_url: str
) -> None:
    name = unique("outage")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "ok", "type": "approval", "approver_role": "r"},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "ok", "to": "done"}],
        },
    )
    before = start(acme, name)

    # Given the database is down (a restart or failover)
    with database_down(postgres_admin_url, module_database_url):
        # When a client starts an instance, it gets a retryable 503, never a 500
        response = acme.post("/v1/instances", json={"definition": name, "idempotency_key": "o-1"})
        problem = is_problem(response, 503, "database-unavailable")
        assert response.headers["retry-after"] == "1"
        assert "postgres" not in problem["detail"]
        assert acme.get("/health/ready").status_code == 503

    # Then, once it is back, the same request succeeds exactly once and nothing was lost
    def retried() -> httpx.Response | None:
        r = acme.post("/v1/instances", json={"definition": name, "idempotency_key": "o-1"})
        return r if r.status_code in (200, 201) else None

    first = wait_for(retried, timeout=30, what="the server to reconnect")
    again = acme.post("/v1/instances", json={"definition": name, "idempotency_key": "o-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert instance(acme, before["id"])["status"] == "suspended"
