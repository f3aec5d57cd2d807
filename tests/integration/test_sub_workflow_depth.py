"""WAYMARK_MAX_SUB_WORKFLOW_DEPTH: a configured, validated nesting limit (issue 10).

A recursion across commands (a timer between levels) that reaches the limit fails its
deepest `sub_workflow` node cleanly and the failure climbs to the root; nothing raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from pydantic import ValidationError

from application.commands import StartInstance
from infrastructure.settings import Settings

TENANT = "acme"
LIMIT = 24


def calling(name: str, other: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "tick", "type": "timer", "duration": "PT0S"},
            {"id": "call", "type": "sub_workflow", "definition": other},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "tick", "to": "call"}, {"from": "call", "to": "done"}],
    }


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import bootstrap

    settings = Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        db_pool_size=4,
        max_sub_workflow_depth=LIMIT,
    )
    built = bootstrap(settings)
    for document in (calling("ping", "pong"), calling("pong", "ping")):
        built.definitions.publish(TENANT, document)
    yield built
    built.close()


def statuses(database_url: str, correlation_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM instances WHERE correlation_id = %s GROUP BY status",
            (correlation_id,),
        ).fetchall()
    return {status: count for status, count in rows}


def test_a_recursion_reaching_the_configured_depth_fails_cleanly_to_the_root(
    container: Any, database_url: str
) -> None:
    # Given a recursion through a timer, one level per command
    root, _ = container.instances.start(StartInstance(TENANT, "ping", correlation_id="limit"))

    # When every due timer fires until none is left (25 levels: the 25th is refused)
    rounds = 0
    while container.timers.fire_due(10) and rounds < 100:
        rounds += 1

    # Then the tree stopped at the configured limit and failed from the leaf to the root
    assert rounds == LIMIT + 1
    assert statuses(database_url, "limit") == {"failed": LIMIT + 1}
    error = container.instances.get(TENANT, UUID(root["id"]))["error"]["message"]
    assert "sub-workflow depth limit exceeded" in error
    assert f"level {LIMIT + 1} of its instance tree (at most {LIMIT}" in error


@pytest.mark.parametrize("depth", [0, 65])
def test_the_depth_setting_is_validated(depth: int) -> None:
    with pytest.raises(ValidationError, match="max_sub_workflow_depth"):
        Settings(max_sub_workflow_depth=depth)
