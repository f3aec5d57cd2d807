"""The command path against the real PostgreSQL: concurrency, idempotency, read-model
consistency, parent/child in one transaction. Real threads, no mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from application.callbacks import sign
from application.commands import (
    ClaimTask,
    CompleteTask,
    DeliverCallback,
    DeliverEvent,
    ResumeBookmark,
    StartInstance,
)
from application.errors import CommandConflictError, SignatureError
from application.ports import InstanceRead
from application.read_models import InstanceFilter
from bench.definitions import approval_flow
from domain.errors import BookmarkNotOpenError

pytestmark = pytest.mark.integration

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


def test_concurrent_completions_of_one_task_apply_exactly_once(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    task_id = view["bookmarks"][0]["id"]

    results = race(
        6,
        lambda i: container.tasks.complete(
            CompleteTask(
                TENANT, task_id, outcome="approved", data=None, comment=f"t{i}", user=f"u{i}"
            )
        ),
    )

    winners = [r for r in results if isinstance(r, tuple)]  # (view, replayed)
    losers = [r for r in results if not isinstance(r, tuple)]
    assert len(winners) == 1, results
    assert all(isinstance(e, BookmarkNotOpenError | CommandConflictError) for e in losers)
    assert event_types(container, view["id"]).count("TaskCompleted") == 1
    assert container.instances.get(TENANT, UUID(view["id"]))["status"] == "completed"


def test_concurrent_keyed_starts_create_one_instance(container: Any) -> None:
    results = race(
        6,
        lambda i: container.instances.start(
            StartInstance(TENANT, "one-approval", idempotency_key="same")
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({view["id"] for view, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    page = container.instances.list(TENANT, InstanceFilter(definition="one-approval"), limit=50)
    assert len(page.items) == 1


def test_bookmark_is_found_by_token_right_after_the_start_returns(container: Any) -> None:
    for order in range(5):
        view, _ = container.instances.start(
            StartInstance(TENANT, "one-wait", input={"order": order})
        )
        token = view["bookmarks"][0]["token"]
        body = b'{"amount": 3}'
        result, replayed = container.callbacks.callback(
            DeliverCallback(
                token, body, sign(SECRET, body, int(time.time()), f"/v1/callbacks/{token}"), None
            )
        )
        assert (result["status"], replayed) == ("completed", False)
        assert container.instances.get(TENANT, UUID(view["id"]))["output"] == {
            "paid": {"amount": 3}
        }


def signed_callback(token: str, body: bytes = b'{"amount": 3}') -> DeliverCallback:
    path = f"/v1/callbacks/{token}"
    return DeliverCallback(token, body, sign(SECRET, body, int(time.time()), path), None)


def test_concurrent_callbacks_for_one_token_resume_once(container: Any) -> None:
    """Each callback reads the bookmark and the instance before it holds the instance's
    lock (one statement, `by_bookmark_token`): the copies of the losers are stale, and
    their writes are refused by the version check, then re-decided on a fresh read."""
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 1}))
    token = view["bookmarks"][0]["token"]

    results = race(6, lambda i: container.callbacks.callback(signed_callback(token)))

    winners = [r for r in results if isinstance(r, tuple)]
    assert len(winners) == 1, results
    assert all(
        isinstance(r, BookmarkNotOpenError | CommandConflictError)
        for r in results
        if not isinstance(r, tuple)
    )
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1


def test_a_stale_loaded_copy_is_not_decided_on(container: Any) -> None:
    """`resume(loaded=...)` with a copy read before another command committed: the
    resume is refused as for a fresh read, never applied twice."""
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 2}))
    instance_id, bookmark_id = UUID(view["id"]), view["bookmarks"][0]["id"]
    found = container.core.store.by_bookmark_token(view["bookmarks"][0]["token"])
    assert found is not None
    stale = found[1]
    container.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark_id, {"n": 1}))

    with pytest.raises(BookmarkNotOpenError):
        container.instances.resume(
            ResumeBookmark(TENANT, instance_id, bookmark_id, {"n": 2}), loaded=stale
        )
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1
    assert container.instances.get(TENANT, instance_id)["output"] == {"paid": {"n": 1}}


class CountingReads:
    """The store, counting `by_bookmark_token` reads and the rebuilds asked of them."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reads = 0
        self.rebuilds = 0

    def by_bookmark_token(self, token: str) -> Any:
        self.reads += 1
        found = self.store.by_bookmark_token(token)
        if found is None:
            return None
        bookmark, read = found

        def rebuild() -> Any:
            self.rebuilds += 1
            return read()

        return bookmark, InstanceRead(read.id, read.version, rebuild)


def test_a_callback_decides_on_the_cached_copy_at_the_version_it_read(
    container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start committed here left the instance in this process's cache at the version
    the callback then reads with its bookmark: the callback resumes that copy and does not
    rebuild the events it read. (The token index is off here, so that the callback reads.)"""
    reads = CountingReads(container.core.store)
    monkeypatch.setattr(container.callbacks, "store", reads)
    monkeypatch.setattr(container.callbacks, "cache", None)
    cache = container.core.runner.cache
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 3}))
    hits = cache.hits

    result, _ = container.callbacks.callback(signed_callback(view["bookmarks"][0]["token"]))

    assert result["status"] == "completed"
    assert (cache.hits, reads.rebuilds) == (hits + 1, 0)
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1


def test_a_cached_copy_at_another_version_than_read_is_not_decided_on(
    container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control of the one above: the cache holds an OLDER copy than the store
    (as when another process committed since); the callback rebuilds what it read and
    resumes that, once."""
    reads = CountingReads(container.core.store)
    monkeypatch.setattr(container.callbacks, "store", reads)
    monkeypatch.setattr(container.callbacks, "cache", None)
    cache = container.core.runner.cache
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 4}))
    instance_id = UUID(view["id"])
    current = cache.take(instance_id)
    assert current is not None
    cache.put([container.core.store.get(instance_id, TENANT, version=current.version - 1)])
    hits, misses = cache.hits, cache.misses

    result, _ = container.callbacks.callback(signed_callback(view["bookmarks"][0]["token"]))

    assert result["status"] == "completed"
    assert (cache.hits, cache.misses, reads.rebuilds) == (hits, misses + 1, 1)
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1
    assert container.instances.get(TENANT, instance_id)["output"] == {"paid": {"amount": 3}}


def test_a_callback_for_a_token_this_process_committed_reads_nothing(
    container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start's commit told the cache the wait's token: the callback verifies the
    signature with the tenant's secret and resumes the cached copy, with no read."""
    reads = CountingReads(container.core.store)
    monkeypatch.setattr(container.callbacks, "store", reads)
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 5}))
    token = view["bookmarks"][0]["token"]
    assert container.core.runner.cache.bookmark(token) is not None

    result, _ = container.callbacks.callback(signed_callback(token))

    assert result["status"] == "completed"
    assert reads.reads == 0
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1
    # The instance ended: its token is known no more (a second callback reads, and is
    # refused as before).
    assert container.core.runner.cache.bookmark(token) is None
    with pytest.raises(BookmarkNotOpenError):
        container.callbacks.callback(signed_callback(token))
    assert reads.reads == 1


def test_a_wrong_signature_for_a_known_token_costs_the_read_a_made_up_token_costs(
    container: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller without the secret cannot tell a token known to this process by a faster
    refusal: the refusal comes after the same read, with the same message, as one for a
    token that does not exist; nothing is resumed."""
    reads = CountingReads(container.core.store)
    monkeypatch.setattr(container.callbacks, "store", reads)
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 6}))
    token = view["bookmarks"][0]["token"]
    forged = DeliverCallback(token, b"{}", f"t={int(time.time())},v1={'0' * 64}", None)
    made_up = DeliverCallback("no-such-token", b"{}", forged.signature, None)

    messages = []
    for cmd in (forged, made_up):
        with pytest.raises(SignatureError) as refused:
            container.callbacks.callback(cmd)
        messages.append(str(refused.value))

    assert messages[0] == messages[1] == "the signature does not match"
    assert reads.reads == 2
    assert event_types(container, view["id"]).count("BookmarkResumed") == 0


def test_a_token_known_here_but_resumed_by_another_process_resumes_once(
    container: Any, database_url: str
) -> None:
    """Another process (its own container and cache) resumed the bookmark since this one
    committed it: this process's callback decides on its stale copy, the version check
    refuses the write, and the decision taken again on the store refuses the resume."""
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 7}))
    token = view["bookmarks"][0]["token"]
    other = build_engine(
        Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=2)
    )
    try:
        other.instances.resume(
            ResumeBookmark(TENANT, UUID(view["id"]), view["bookmarks"][0]["id"], {"n": 1})
        )
    finally:
        other.close()
    assert container.core.runner.cache.bookmark(token) is not None  # stale, as said

    with pytest.raises(BookmarkNotOpenError):
        container.callbacks.callback(signed_callback(token))
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1
    assert container.instances.get(TENANT, UUID(view["id"]))["output"] == {"paid": {"n": 1}}


def test_task_queue_reflects_each_command_immediately(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    task_id = view["bookmarks"][0]["id"]
    assert container.tasks.get(TENANT, task_id)["status"] == "open"
    container.tasks.claim(ClaimTask(TENANT, task_id, "ann"))
    assert container.tasks.get(TENANT, task_id)["claimed_by"] == "ann"
    container.tasks.complete(
        CompleteTask(TENANT, task_id, outcome="rejected", data=None, comment=None, user="ann")
    )
    task = container.tasks.get(TENANT, task_id)
    assert (task["status"], task["outcome"]) == ("completed", "rejected")
    row = container.instances.list(
        TENANT, InstanceFilter(definition="one-approval", status="failed")
    ).items
    assert [r["id"] for r in row] == [view["id"]]


def test_concurrent_event_deliveries_with_one_key_resume_once(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": "o-9"}))

    results = race(
        5,
        lambda i: container.instances.deliver_event(
            DeliverEvent(
                TENANT, "paid", correlation="o-9", payload={"n": i}, idempotency_key="delivery-1"
            )
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    bodies = [body for body, _ in results]
    assert all(body == bodies[0] for body in bodies)
    assert [replayed for _, replayed in results].count(False) == 1
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1


def test_child_instance_starts_in_the_parents_transaction(container: Any) -> None:
    container.definitions.publish(
        TENANT,
        {
            "name": "parent-flow",
            "nodes": [
                {"id": "kid", "type": "sub_workflow", "definition": "one-approval"},
                {"id": "done", "type": "end", "output": {"kid": "nodes.kid.result"}},
            ],
            "routes": [{"from": "kid", "to": "done"}],
        },
    )
    parent, _ = container.instances.start(StartInstance(TENANT, "parent-flow"))
    child_id = parent["bookmarks"][0]["child_id"]
    child = container.instances.get(TENANT, UUID(child_id))
    assert child["parent"]["instance_id"] == parent["id"]
    container.tasks.complete(
        CompleteTask(
            TENANT,
            child["bookmarks"][0]["id"],
            outcome="approved",
            data=None,
            comment=None,
            user="u",
        )
    )
    # The child's end resumed the parent in the same command.
    assert container.instances.get(TENANT, UUID(parent["id"]))["status"] == "completed"


def test_due_timers_fire_once_and_wait_timeouts_take_their_route(container: Any) -> None:
    container.definitions.publish(
        TENANT,
        {
            "name": "timers",
            "nodes": [
                {"id": "pause", "type": "timer", "duration": "PT0S"},
                {"id": "wait", "type": "wait", "event": "never", "timeout": "PT0S"},
                {"id": "late", "type": "end", "output": {"late": "true"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [
                {"from": "pause", "to": "wait"},
                {"from": "wait", "to": "done"},
                {"from": "wait", "to": "late", "outcome": "timeout"},
            ],
        },
    )
    view, _ = container.instances.start(StartInstance(TENANT, "timers"))
    assert view["bookmarks"][0]["kind"] == "timer"

    # Two workers racing over the same due timers: each timer fires exactly once.
    fired = race(2, lambda i: container.timers.fire_due(10))
    assert sum(fired) >= 1
    assert container.timers.fire_due(10) in (0, 1)  # the wait timeout, if not fired yet
    container.timers.fire_due(10)

    final = container.instances.get(TENANT, UUID(view["id"]))
    assert (final["status"], final["output"]) == ("completed", {"late": True})
    assert event_types(container, view["id"]).count("BookmarkResumed") == 2
    assert container.timers.seconds_until_next() is None


def test_a_reused_idempotency_key_for_another_request_is_refused(container: Any) -> None:
    from application.errors import IdempotencyKeyReusedError

    first, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 1}))
    second, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 2}))
    container.instances.resume(
        ResumeBookmark(
            TENANT, UUID(first["id"]), first["bookmarks"][0]["id"], {"a": 1}, idempotency_key="r1"
        )
    )
    # The same key on another bookmark is a client bug, not a repeated delivery.
    with pytest.raises(IdempotencyKeyReusedError):
        container.instances.resume(
            ResumeBookmark(
                TENANT,
                UUID(second["id"]),
                second["bookmarks"][0]["id"],
                {"a": 1},
                idempotency_key="r1",
            )
        )
    assert container.instances.get(TENANT, UUID(second["id"]))["status"] == "suspended"
    container.instances.start(
        StartInstance(TENANT, "one-wait", input={"order": 3}, idempotency_key="s1")
    )
    with pytest.raises(IdempotencyKeyReusedError):
        container.instances.start(StartInstance(TENANT, "one-approval", idempotency_key="s1"))
    again, created = container.instances.start(
        StartInstance(TENANT, "one-wait", input={"order": 4}, idempotency_key="s1")
    )
    assert (again["input"], created) == ({"order": 3}, False)  # the first start wins


def test_history_pages_follow_the_cursor(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    container.tasks.complete(
        CompleteTask(
            TENANT,
            view["bookmarks"][0]["id"],
            outcome="approved",
            data=None,
            comment=None,
            user="u",
        )
    )
    everything, cursor = container.instances.history(TENANT, UUID(view["id"]))
    assert cursor is None
    seen, cursor = [], None
    while True:
        page, cursor = container.instances.history(TENANT, UUID(view["id"]), limit=2, cursor=cursor)
        seen.extend(page)
        if cursor is None:
            break
    assert (
        [e.version for e in seen]
        == [e.version for e in everything]
        == list(range(1, len(everything) + 1))
    )


def test_a_killed_task_workers_activity_is_rerun_once_with_the_same_key(container: Any) -> None:
    from datetime import timedelta

    from application.ports import ActionResult

    container.definitions.publish(
        TENANT,
        {
            "name": "one-call",
            "nodes": [
                {"id": "call", "type": "service_task", "action": {"type": "noop"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "call", "to": "done"}],
        },
    )
    view, _ = container.instances.start(StartInstance(TENANT, "one-call"))
    now = container.clock.now()

    # Given worker A leased the activity and died before recording anything
    (leased,) = container.activity_queue.claim("worker-a", 10, 30, now)
    assert container.activity_queue.claim("worker-b", 10, 30, now) == []  # still leased

    # When the lease runs out, worker B gets the same attempt with the same idempotency key
    (again,) = container.activity_queue.claim("worker-b", 10, 30, now + timedelta(seconds=31))
    assert (again.id, again.attempt, again.idempotency_key) == (
        leased.id,
        leased.attempt,
        f"{view['id']}:call:1",
    )
    assert container.activities.record(again, ActionResult(ok=True, output={"n": 1}))

    # Then a late result from A (it was only slow, not dead) is stale and changes nothing
    assert not container.activities.record(leased, ActionResult(ok=True, output={"n": 2}))
    final = container.instances.get(TENANT, UUID(view["id"]))
    assert final["status"] == "completed"
    assert event_types(container, view["id"]).count("ActivityCompleted") == 1


def test_children_and_event_triggers_pass_the_same_admission_as_direct_starts(
    container: Any,
) -> None:
    strict = {
        "name": "strict-child",
        "input_schema": {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer"}},
        },
        "nodes": [{"id": "done", "type": "end", "output": {"n": "input.n"}}],
        "triggers": [{"type": "event", "event": "go"}],
    }
    container.definitions.publish(TENANT, strict)
    container.definitions.publish(
        TENANT,
        {
            "name": "caller",
            "nodes": [
                {
                    "id": "kid",
                    "type": "sub_workflow",
                    "definition": "strict-child",
                    "input": {"n": "input.n"},
                },
                {"id": "bad", "type": "end", "output": {"why": "nodes.kid.result.error"}},
                {"id": "done", "type": "end", "output": {"kid": "nodes.kid.result"}},
            ],
            "routes": [
                {"from": "kid", "to": "done"},
                {"from": "kid", "to": "bad", "outcome": "error"},
            ],
        },
    )

    good, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": 3}))
    assert good["status"] == "completed" and good["output"] == {"kid": {"n": 3}}
    # A child input that violates the child's input_schema fails the node: error route.
    bad, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": "three"}))
    assert bad["status"] == "completed"
    assert "input is invalid" in bad["output"]["why"]
    # A disabled child definition is refused the same way.
    container.definitions.set_enabled(TENANT, "strict-child", False)
    off, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": 3}))
    assert "disabled" in off["output"]["why"]
    container.definitions.set_enabled(TENANT, "strict-child", True)

    # An event trigger whose payload violates the schema starts nothing and says why.
    result, _ = container.instances.deliver_event(
        DeliverEvent(TENANT, "go", correlation=None, payload={"n": "x"})
    )
    assert result["started"] == []
    assert result["rejected"][0]["definition"] == "strict-child"
    accepted, _ = container.instances.deliver_event(
        DeliverEvent(TENANT, "go", correlation=None, payload={"n": 1})
    )
    assert len(accepted["started"]) == 1 and accepted["rejected"] == []
