"""WCP-12 (multiple instances without synchronization) on the real PostgreSQL: a `for_each`
`emit` starts one independent instance per item and goes on without waiting for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance

pytestmark = pytest.mark.integration

TENANT = "acme"

ON_ORDER = {
    "name": "on-order",
    "triggers": [{"type": "event", "event": "order.placed"}],
    "nodes": [{"id": "check", "type": "user_task", "role": "clerk"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "check", "to": "done"}],
}

SPAWNER = {
    "name": "spawner",
    "nodes": [
        {
            "id": "spawn",
            "type": "service_task",
            "result_var": "told",
            "for_each": {"items": "input.orders", "as": "order"},
            "action": {"type": "emit", "event": "order.placed", "payload": {"n": "{{ order }}"}},
        },
        {"id": "done", "type": "end", "output": {"told": "vars.told"}},
    ],
    "routes": [{"from": "spawn", "to": "done"}],
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    built = build_engine(Settings(database_url=database_url, api_keys="k=acme:admin"))
    yield built
    built.close()


def test_for_each_emit_starts_independent_instances_and_does_not_wait(engine: Any) -> None:
    for document in (ON_ORDER, SPAWNER):
        engine.definitions.publish(TENANT, document)
    view, _ = engine.instances.start(
        StartInstance(tenant=TENANT, definition="spawner", input={"orders": ["a", "b", "c"]})
    )
    assert view["status"] == "completed", view
    told = view["output"]["told"]
    assert len(told) == 3
    started = [UUID(result["started"][0]) for result in told]
    for child_id, n in zip(started, "abc", strict=True):
        child = engine.instances.get(TENANT, child_id)
        assert child["status"] == "suspended"  # still running on its own
        assert child["input"] == {"n": n}
