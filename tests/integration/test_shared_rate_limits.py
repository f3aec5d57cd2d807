"""`WAYMARK_RATE_LIMIT_STORAGE=postgres`: API replicas on one database share one budget.

Two apps, each with its own container (its own pool, as two containers of a deployment
would be), on one database. With the shared counters, requests alternating between them
are refused once their sum reaches the limit, by either replica, with `Retry-After`. The
negative control is the in-memory default, where each replica allows the whole budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.api_stub import AsgiClient

pytestmark = pytest.mark.integration

BUDGET = 5


class Replica:
    """One API replica: the real app over a container of its own, called in process."""

    def __init__(self, container: Any) -> None:
        from api.app import create_app
        from api.auth import build_token_verifier

        app = create_app(lambda: container)
        app.state.container = container
        app.state.token_verifier = build_token_verifier(container.settings)
        self.client = AsgiClient(app)

    def get(self, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": "Bearer k"})


def _replicas(database_url: str, storage: str, n: int = 2) -> Iterator[list[Replica]]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    settings = Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        tenant_secrets="acme=s1",
        db_pool_size=2,
        # Per day: a fixed window restarting in the middle of the test is all but impossible.
        rate_limit_per_key=f"{BUDGET}/day",
        rate_limit_per_ip="",
        rate_limit_storage=storage,  # type: ignore[arg-type]
    )
    containers = [build_api(settings) for _ in range(n)]
    try:
        yield [Replica(c) for c in containers]
    finally:
        for container in containers:
            container.close()


@pytest.fixture
def shared(database_url: str) -> Iterator[list[Replica]]:
    yield from _replicas(database_url, "postgres")


@pytest.fixture
def separate(database_url: str) -> Iterator[list[Replica]]:
    yield from _replicas(database_url, "memory")


def _statuses(replicas: list[Replica], requests: int) -> list[int]:
    return [replicas[i % len(replicas)].get("/v1/definitions").status_code for i in range(requests)]


def test_two_replicas_share_one_budget(shared: list[Replica], database_url: str) -> None:
    assert _statuses(shared, BUDGET) == [200] * BUDGET
    for client in shared:  # whichever replica the next request reaches refuses it
        refused = client.get("/v1/definitions")
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(refused.headers["retry-after"]) <= 86400
        assert refused.json()["type"].endswith("rate-limited")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT key, hits FROM rate_limit_counters").fetchall()
    # One counter for the key (a digest, not the key), counting every replica's requests.
    assert len(rows) == 1 and rows[0][1] == BUDGET + 2 and "Bearer" not in rows[0][0]


def test_negative_control_in_memory_each_replica_has_the_whole_budget(
    separate: list[Replica],
) -> None:
    assert _statuses(separate, 2 * BUDGET) == [200] * (2 * BUDGET)
    assert _statuses(separate, 2) == [429, 429]


def test_one_statement_checks_both_limits(database_url: str) -> None:
    from infrastructure.postgres.datastore import build_datastore
    from infrastructure.postgres.rate_limits import Check, PostgresRateLimiter

    datastore: Any = build_datastore(database_url, pool_size=1, app_role="waymark_app")
    try:
        limiter = PostgresRateLimiter(datastore)
        checks = [Check("key:a", 2, 3600), Check("ip:1", 1, 60)]
        assert [v.allowed for v in limiter.hit(checks)] == [True, True]
        second = limiter.hit(checks)
        assert [v.allowed for v in second] == [True, False]
        assert 0 < second[1].retry_after <= 60
        assert [v.allowed for v in limiter.hit(checks)] == [False, False]
    finally:
        datastore.close()
