"""The per-process instance cache (WAYMARK_INSTANCE_CACHE_SIZE) against the real PostgreSQL:
a command on an instance this process committed reads nothing from the store; a copy made
stale by another process's commit never decides anything that stands (a write on it loses
the version check and is re-decided, a decision to write nothing on it is re-taken on fresh
state); a command that fails after changing its copy leaves the cache as it was."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import CancelInstance, ResumeBookmark, StartInstance
from application.errors import CommandConflictError
from application.instance_cache import InstanceCache
from domain import engine

pytestmark = pytest.mark.integration

TENANT = "acme"
WAIT = {
    "name": "wait-once",
    "nodes": [{"id": "w", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "w", "to": "done"}],
}


def build(database_url: str, cache: int = 1000) -> Any:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    return build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            db_pool_size=4,
            instance_cache_size=cache,
        )
    )


class CountingStore:
    """The instance store with its reads counted."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reads = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self.store.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[Any, Any]]:
    first, second = build(database_url), build(database_url)
    first.definitions.publish(TENANT, WAIT)
    yield first, second
    first.close()
    second.close()


def start(app: Any) -> tuple[UUID, str]:
    view, _ = app.instances.start(StartInstance(TENANT, "wait-once"))
    return UUID(view["id"]), view["bookmarks"][0]["id"]


def counted(app: Any) -> CountingStore:
    store = CountingStore(app.core.runner.store)
    app.core.runner.store = store
    return store


def test_the_cache_is_on_by_default_and_can_be_switched_off(database_url: str) -> None:
    on, off = build(database_url), build(database_url, cache=0)
    try:
        assert isinstance(on.core.runner.cache, InstanceCache)
        assert off.core.runner.cache is None
        # The library's fast-forwarding cache is not used on top (it read on every load).
        assert on.core.store.app.repository.cache is None
    finally:
        on.close()
        off.close()


def test_a_command_on_an_instance_this_process_committed_reads_nothing(
    two: tuple[Any, Any],
) -> None:
    first, _ = two
    instance_id, bookmark = start(first)
    store = counted(first)

    first.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark, payload={"ok": 1}))

    assert store.reads == 0
    assert first.core.store.get(instance_id).status == "completed"
    # Ended instances are not kept: commands write nothing on them.
    assert first.core.runner.cache.take(instance_id) is None


def test_without_the_cache_the_same_command_reads_the_store(database_url: str) -> None:
    # Negative control for the test above: the count does see a read when one happens.
    app = build(database_url, cache=0)
    try:
        app.definitions.publish(TENANT, WAIT)
        instance_id, bookmark = start(app)
        store = counted(app)
        app.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark, payload={"ok": 1}))
        assert store.reads == 1
    finally:
        app.close()


def test_a_write_on_a_stale_copy_loses_the_version_check_and_is_re_decided(
    two: tuple[Any, Any],
) -> None:
    first, second = two
    instance_id, bookmark = start(first)
    cache = first.core.runner.cache
    cached = cache.take(instance_id)  # a take removes the entry: put it back after looking
    assert cached is not None and cached.status == "suspended"
    cache.put([cached])
    # Another process cancels it: `first`'s copy is now behind the store.
    second.instances.cancel(CancelInstance(TENANT, instance_id, reason="elsewhere"))
    stale = cache.take(instance_id)
    assert stale is not None and stale.version < second.core.store.get(instance_id).version
    cache.put([stale])
    # On (a copy of) the stale copy the resume would go through (the negative control).
    control = pickle.loads(pickle.dumps(stale))  # noqa: S301 - bytes made just above
    attempt = first.core.runner.new_attempt()
    engine.resume(
        control,
        attempt.definition_of(control),
        bookmark,
        payload={"ok": 1},
        source="api",
        env=attempt.env,
    )
    assert control.pending_events
    store = counted(first)

    with pytest.raises(Exception) as refused:
        first.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark, payload={"ok": 1}))
    # Refused on the fresh state (the bookmark was cancelled), not a conflict reported.
    assert not isinstance(refused.value, CommandConflictError)

    assert store.reads == 1  # re-decided on the state read from the store
    assert first.core.store.get(instance_id).status == "cancelled"
    # The stale copy is dropped (the cancelled instance is not cached again).
    assert first.core.runner.cache.take(instance_id) is None


def test_a_decision_to_write_nothing_on_a_cached_copy_is_re_taken_on_fresh_state(
    two: tuple[Any, Any],
) -> None:
    first, second = two
    instance_id, bookmark = start(first)
    second.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark, payload={"ok": 1}))
    # `first` still holds its copy from before the resume (the negative control: the
    # cached copy alone would answer "suspended").
    stale = first.core.runner.cache.take(instance_id)
    assert stale is not None and stale.status == "suspended"
    first.core.runner.cache.put([stale])  # a take removes the entry: put it back
    seen: list[str] = []

    def look(session: Any) -> str:
        status = session.load(instance_id).status
        seen.append(status)
        return str(status)

    assert first.core.runner.run(look, instance_id) == "completed"
    assert seen == ["suspended", "completed"]  # the cached answer was not trusted
    assert first.core.runner.cache.take(instance_id) is None


def test_a_failed_command_leaves_the_cache_and_the_store_unchanged(two: tuple[Any, Any]) -> None:
    first, _ = two
    instance_id, _bookmark = start(first)
    runs: list[str] = []

    def cancel_then_fail(session: Any) -> None:
        instance = session.load(instance_id)
        engine.cancel(instance, "changed, then the command fails", session.env)
        assert instance.status == "cancelled"
        runs.append("cached" if instance_id in session.cached else "read")
        raise RuntimeError("the command fails after changing its copy")

    with pytest.raises(RuntimeError):
        first.core.runner.run(cancel_then_fail, instance_id)

    # A failure on a cached copy is taken again on the store's state (it may have been
    # the copy's fault), and the entry is dropped rather than trusted again.
    assert runs == ["cached", "read"]
    assert first.core.runner.cache.take(instance_id) is None
    stored = first.core.store.get(instance_id)
    assert stored.status == "suspended" and not stored.pending_events
