"""One instance's timer must never stop the others (issue 5 item 2), on the real PostgreSQL:
rows that cannot be read back or fired are set aside and the rows behind them still fire;
workflows that start each other across commands stop at the depth limit; a deep tree
cancels in one command."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.commands import CancelInstance, ResumeBookmark, StartInstance
from application.session import MAX_SUB_WORKFLOW_DEPTH

pytestmark = pytest.mark.integration

TENANT = "acme"

ONE_DAY = {
    "name": "one-day",
    "nodes": [{"id": "pause", "type": "timer", "duration": "P1D"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "pause", "to": "done"}],
}
AT_ONCE = {
    "name": "at-once",
    "nodes": [{"id": "pause", "type": "timer", "duration": "PT0S"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "pause", "to": "done"}],
}


def calling(name: str, other: str, duration: str = "PT0S") -> dict[str, Any]:
    """timer -> sub_workflow `other` -> end: with its mirror image, an endless recursion."""
    return {
        "name": name,
        "nodes": [
            {"id": "tick", "type": "timer", "duration": duration},
            {"id": "call", "type": "sub_workflow", "definition": other},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "tick", "to": "call"}, {"from": "call", "to": "done"}],
    }


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings

    settings = Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4)
    built = bootstrap(settings)
    for document in (ONE_DAY, AT_ONCE, calling("ping", "pong"), calling("pong", "ping")):
        built.definitions.publish(TENANT, document)
    yield built
    built.close()


def set_due_at(database_url: str, bookmark_id: str, literal: str) -> None:
    """Store a due time as a row written before due times were range-checked would have."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE bookmarks SET due_at = %s::timestamptz WHERE id = %s", (literal, bookmark_id)
        )


def bookmark_row(database_url: str, bookmark_id: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, timer_error IS NOT NULL, timer_attempts FROM bookmarks WHERE id = %s",
            (bookmark_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def status(container: Any, instance_id: str) -> str:
    return str(container.instances.get(TENANT, UUID(instance_id))["status"])


@pytest.mark.parametrize(
    "literal",
    ["0001-01-01 00:00:00+14", "9999-12-31 23:00:00-05"],
    ids=["year-0-utc", "year-10000-utc"],
)
def test_a_row_that_cannot_be_read_back_is_set_aside_and_the_rows_behind_it_fire(
    container: Any, database_url: str, literal: str
) -> None:
    # Given a timer whose stored due time psycopg cannot read (the old year-1 `until`)
    poisoned, _ = container.instances.start(StartInstance(TENANT, "one-day"))
    bookmark_id = poisoned["bookmarks"][0]["id"]
    set_due_at(database_url, bookmark_id, literal)
    # and another instance's timer that is due now
    healthy, _ = container.instances.start(StartInstance(TENANT, "at-once"))

    # When the timer worker looks (the wake-up query first, as the worker does)
    assert container.timers.seconds_until_next() == 0.0
    fired = container.timers.fire_due(10)

    # Then the healthy timer fired, and the poisoned row is set aside, visible and counted
    assert fired == 1
    assert status(container, healthy["id"]) == "completed"
    assert bookmark_row(database_url, bookmark_id) == ("open", True, 1)
    assert container.timers.set_aside_count() == 1
    (shown,) = container.instances.get(TENANT, UUID(poisoned["id"]))["bookmarks"]
    assert "outside the supported range" in shown["timer_error"]
    assert shown["timer_attempts"] == 1 and shown["timer_failed_at"]
    # and the next ticks skip it
    assert container.timers.fire_due(10) == 0
    assert container.timers.seconds_until_next() is None

    # When an operator resumes the bookmark by hand (the documented retry)
    container.instances.resume(
        ResumeBookmark(TENANT, UUID(poisoned["id"]), bookmark_id, payload=None)
    )

    # Then it continues, and the set-aside mark goes with the bookmark's new state
    assert status(container, poisoned["id"]) == "completed"
    assert bookmark_row(database_url, bookmark_id) == ("consumed", False, 0)
    assert container.timers.set_aside_count() == 0


def test_a_timer_whose_firing_fails_is_set_aside_with_its_error(
    container: Any, database_url: str
) -> None:
    # Given a due timer row the instance does not know (a read model out of step with it)
    healthy, _ = container.instances.start(StartInstance(TENANT, "at-once"))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO bookmarks (id, tenant, instance_id, node_id, kind, status, due_at, "
            "created_at) VALUES ('ghost', %s, %s, 'pause', 'timer', 'open', "
            "now() - interval '1 hour', now())",
            (TENANT, healthy["id"]),
        )

    # When the worker fires the due timers, the ghost sorting first
    fired = container.timers.fire_due(10)

    # Then the row behind it fired, and the ghost is set aside with the error, once
    assert fired == 1
    assert status(container, healthy["id"]) == "completed"
    assert bookmark_row(database_url, "ghost") == ("open", True, 1)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT timer_error FROM bookmarks WHERE id = 'ghost'").fetchone()
    assert row is not None and row[0].startswith("BookmarkNotFoundError")
    assert container.timers.set_aside_total == 1
    assert container.timers.fire_due(10) == 0


def fire_until_quiet(container: Any, *, limit: int = 200) -> int:
    rounds = 0
    while container.timers.fire_due(10) and rounds < limit:
        rounds += 1
    return rounds


def tree_of(database_url: str, correlation_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM instances WHERE correlation_id = %s GROUP BY status",
            (correlation_id,),
        ).fetchall()
    return {status: count for status, count in rows}


def test_workflows_calling_each_other_through_a_timer_stop_at_the_depth_limit(
    container: Any, database_url: str
) -> None:
    # Given two definitions that start each other after a timer, one command per level
    root, _ = container.instances.start(StartInstance(TENANT, "ping", correlation_id="recursion"))

    # When every due timer fires until none is left
    rounds = fire_until_quiet(container)

    # Then the tree stopped growing at the limit and failed from the leaf to the root
    assert rounds == MAX_SUB_WORKFLOW_DEPTH + 1
    assert tree_of(database_url, "recursion") == {"failed": MAX_SUB_WORKFLOW_DEPTH + 1}
    error = container.instances.get(TENANT, UUID(root["id"]))["error"]["message"]
    assert "sub-workflow depth limit exceeded" in error
    assert f"at most {MAX_SUB_WORKFLOW_DEPTH}" in error
    assert container.timers.seconds_until_next() is None


def test_cancelling_the_root_of_a_deep_tree_cancels_every_instance_in_it(
    container: Any, database_url: str
) -> None:
    # Given a recursion 25 levels deep (more than the 20 settle rounds a command had)
    root, _ = container.instances.start(StartInstance(TENANT, "ping", correlation_id="deep"))
    for _ in range(25):
        assert container.timers.fire_due(1) == 1
    assert tree_of(database_url, "deep") == {"suspended": 26}

    # When the root is cancelled
    view, _ = container.instances.cancel(CancelInstance(TENANT, UUID(root["id"]), "stop"))

    # Then the whole tree is cancelled in that one command, and no timer is left
    assert view["status"] == "cancelled"
    assert tree_of(database_url, "deep") == {"cancelled": 26}
    assert container.timers.seconds_until_next() is None
    assert container.timers.fire_due(10) == 0


def test_a_chain_longer_than_the_old_step_limit_starts_and_runs_to_its_end(
    container: Any,
) -> None:
    # Issue 5 item 7: the per-command step limit (1,000 nodes) failed every start of a long
    # chain. 5,000 `set` nodes store ~15,000 events (~3 MB) in the one start command: within
    # the default WAYMARK_MAX_COMMAND_BYTES, and inserted without the pipeline that hung.
    length = 5_000
    nodes = [{"id": f"n{i}", "type": "set", "variables": {"last": str(i)}} for i in range(length)]
    routes = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(length - 1)]
    container.definitions.publish(
        TENANT,
        {
            "name": "long-chain",
            "nodes": [*nodes, {"id": "done", "type": "end", "output": {"last": "vars.last"}}],
            "routes": [*routes, {"from": f"n{length - 1}", "to": "done"}],
        },
    )
    view, _ = container.instances.start(StartInstance(TENANT, "long-chain"))
    assert (view["status"], view["output"]) == ("completed", {"last": length - 1})


def test_workflows_calling_each_other_in_one_command_stop_at_the_depth_limit(
    container: Any, database_url: str
) -> None:
    # Given two definitions that start each other without waiting in between
    for name, other in (("tic", "tac"), ("tac", "tic")):
        container.definitions.publish(
            TENANT,
            {
                "name": name,
                "nodes": [
                    {"id": "call", "type": "sub_workflow", "definition": other},
                    {"id": "done", "type": "end"},
                ],
                "routes": [{"from": "call", "to": "done"}],
            },
        )

    # When one starts, the whole recursion is settled in that command
    view, _ = container.instances.start(StartInstance(TENANT, "tic", correlation_id="one-command"))

    # Then it stopped at the depth limit and failed to the root
    assert view["status"] == "failed"
    assert "sub-workflow depth limit exceeded" in view["error"]["message"]
    assert tree_of(database_url, "one-command") == {"failed": MAX_SUB_WORKFLOW_DEPTH + 1}


def test_a_loop_through_a_child_that_ends_at_once_is_bounded_per_command(
    container: Any, database_url: str
) -> None:
    from application.session import MAX_CHILDREN_PER_COMMAND

    # Given a parent that calls a child (which ends at once) in a loop that never waits
    container.definitions.publish(
        TENANT,
        {"name": "nothing", "nodes": [{"id": "done", "type": "end"}], "routes": []},
    )
    container.definitions.publish(
        TENANT,
        {
            "name": "calls-forever",
            "nodes": [
                {"id": "call", "type": "sub_workflow", "definition": "nothing"},
                {"id": "again", "type": "gateway"},
                {"id": "done", "type": "end"},
            ],
            "routes": [
                {"from": "call", "to": "again"},
                {"from": "again", "to": "done", "condition": "false"},
                {"from": "again", "to": "call", "default": True},
            ],
        },
    )

    # When it starts, the command stops starting children at the limit
    view, _ = container.instances.start(
        StartInstance(TENANT, "calls-forever", correlation_id="loop")
    )

    # Then the parent failed, with the children it could start completed
    assert view["status"] == "failed"
    assert "sub-workflow limit exceeded" in view["error"]["message"]
    assert tree_of(database_url, "loop") == {"failed": 1, "completed": MAX_CHILDREN_PER_COMMAND}
