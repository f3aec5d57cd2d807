"""A batch of due timers is stored in one transaction (WAYMARK_TIMER_COMMIT_GROUP,
application/grouped.py), and that changes nothing of what each firing means: a timer whose
instance changed under the group (another process resumed it between the decision and the
save) collides, is re-decided alone and found handled; the others are stored without it;
two timers of one instance are decided one after the other on one attempt (one commit).
Every instance's history holds each firing once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import ResumeBookmark, StartInstance
from application.ports import PendingCommit

pytestmark = pytest.mark.integration

TENANT = "acme"
AT_ONCE = {
    "name": "at-once",
    "nodes": [{"id": "pause", "type": "timer", "duration": "PT0S"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "pause", "to": "done"}],
}
TWO_TIMERS = {
    "name": "two-timers",
    "nodes": [
        {"id": "fork", "type": "parallel"},
        {"id": "a", "type": "timer", "duration": "PT0S"},
        {"id": "b", "type": "timer", "duration": "PT0S"},
        {"id": "all", "type": "join"},
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "fork", "to": "a"},
        {"from": "fork", "to": "b"},
        {"from": "a", "to": "all"},
        {"from": "b", "to": "all"},
        {"from": "all", "to": "done"},
    ],
}


def build(database_url: str, **settings: Any) -> Any:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings

    return bootstrap(
        Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4, **settings)
    )


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    built = build(database_url)
    built.definitions.publish(TENANT, AT_ONCE)
    built.definitions.publish(TENANT, TWO_TIMERS)
    yield built
    built.close()


@pytest.fixture
def commits(container: Any) -> list[int]:
    """The number of events each commit of the container's runner stored."""
    seen: list[int] = []
    container.core.runner.on_commit.append(lambda events: seen.append(len(events)))
    return seen


def start(container: Any, definition: str, n: int) -> list[dict[str, Any]]:
    return [container.instances.start(StartInstance(TENANT, definition))[0] for _ in range(n)]


def timer_firings(container: Any, instance_id: str) -> list[str]:
    entries, _ = container.instances.history(TENANT, UUID(instance_id))
    return [e.data["source"] for e in entries if e.type == "BookmarkResumed"]


def test_a_batch_of_due_timers_is_stored_in_one_transaction(
    container: Any, commits: list[int]
) -> None:
    views = start(container, "at-once", 30)
    commits.clear()

    assert container.timers.fire_due(100) == 30
    assert len(commits) == 1, f"{len(commits)} commits for one group of 30"
    for view in views:
        assert timer_firings(container, view["id"]) == ["timer"]
        assert container.instances.get(TENANT, UUID(view["id"]))["status"] == "completed"


def test_one_transaction_per_timer_when_the_group_is_1(database_url: str) -> None:
    # The comparison (and the behaviour before grouping): WAYMARK_TIMER_COMMIT_GROUP=1.
    single = build(database_url, timer_commit_group=1)
    try:
        single.definitions.publish(TENANT, AT_ONCE)
        start(single, "at-once", 5)
        seen: list[int] = []
        single.core.runner.on_commit.append(lambda events: seen.append(len(events)))
        assert single.timers.fire_due(100) == 5
        assert len(seen) == 5
    finally:
        single.close()


def test_a_timer_resumed_elsewhere_before_the_group_is_saved_is_left_out_and_fires_never(
    container: Any, database_url: str, commits: list[int]
) -> None:
    views = start(container, "at-once", 10)
    victim = views[3]
    other = build(database_url)  # another process, on a pool of its own
    runner = container.core.runner
    inner = runner.committer

    class ResumedMeanwhile:
        """Before the first group's save, the other process resumes one of its timers."""

        done = False

        def commit(self, pending: PendingCommit) -> None:
            inner.commit(pending)

        def commit_all(self, pendings: list[PendingCommit]) -> list[Exception | None]:
            if not self.done and len(pendings) > 1:
                self.done = True
                other.instances.resume(
                    ResumeBookmark(TENANT, UUID(victim["id"]), victim["bookmarks"][0]["id"])
                )
            return inner.commit_all(pendings)  # type: ignore[no-any-return]

    runner.committer = ResumedMeanwhile()
    try:
        commits.clear()
        fired = container.timers.fire_due(100)
    finally:
        runner.committer = inner
        other.close()

    assert fired == 9
    assert container.timers.already_handled_total == 1
    # The group collided once (nothing stored), then the nine were stored together.
    assert len(commits) == 1
    for view in views:
        expected = ["api"] if view is victim else ["timer"]
        assert timer_firings(container, view["id"]) == expected


def test_two_timers_of_one_instance_are_fired_on_one_attempt(
    container: Any, commits: list[int]
) -> None:
    views = start(container, "two-timers", 3)
    commits.clear()

    assert container.timers.fire_due(100) == 6
    for view in views:
        assert timer_firings(container, view["id"]) == ["timer", "timer"]
        assert container.instances.get(TENANT, UUID(view["id"]))["status"] == "completed"
    # Both timers of an instance decided one after the other on one attempt
    # (application/batch.py), the three instances in one group: one transaction.
    assert len(commits) == 1
