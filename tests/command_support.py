"""What the command-path integration tests share: a tenant with a callback secret, two
definitions (an approval, a wait), the engine container on the test's database, and helpers
(threads released together, an instance's event types, a signed callback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from application.callbacks import sign
from application.commands import DeliverCallback
from bench.definitions import approval_flow

TENANT = "acme"
SECRET = "s3cret"

APPROVAL = approval_flow("one-approval")

WAIT = {
    "name": "one-wait",
    "nodes": [
        {"id": "wait", "type": "wait", "event": "paid", "correlation": "input.order"},
        {"id": "done", "type": "end", "output": {"paid": "nodes.wait.result"}},
    ],
    "routes": [{"from": "wait", "to": "done"}],
}


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    settings = Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        tenant_secrets=f"{TENANT}={SECRET}",
        db_pool_size=8,
    )
    built = build_engine(settings)
    built.definitions.publish(TENANT, APPROVAL)
    built.definitions.publish(TENANT, WAIT)
    yield built
    built.close()


def race(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action` in n real threads released together; results or raised exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as e:  # the outcome under test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def event_types(container: Any, instance_id: str) -> list[str]:
    entries, _ = container.instances.history(TENANT, UUID(instance_id))
    return [e.type for e in entries]


def signed_callback(token: str, body: bytes = b'{"amount": 3}') -> DeliverCallback:
    path = f"/v1/callbacks/{token}"
    return DeliverCallback(token, body, sign(SECRET, body, int(time.time()), path), None)
