"""The per-process instance cache (WAYMARK_INSTANCE_CACHE_SIZE) against the real PostgreSQL:
a cached instance still sees what other processes committed, and a command that fails
after changing its copy leaves the cache as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import ResumeBookmark, StartInstance
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


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[Any, Any]]:
    first, second = build(database_url), build(database_url)
    first.definitions.publish(TENANT, WAIT)
    yield first, second
    first.close()
    second.close()


def test_the_cache_is_on_by_default_and_can_be_switched_off(database_url: str) -> None:
    on, off = build(database_url), build(database_url, cache=0)
    try:
        assert on.core.store.app.repository.cache is not None
        assert off.core.store.app.repository.cache is None
    finally:
        on.close()
        off.close()


def test_a_cached_instance_sees_another_process_commit(two: tuple[Any, Any]) -> None:
    first, second = two
    view, _ = first.instances.start(StartInstance(TENANT, "wait-once"))
    instance_id = UUID(view["id"])
    assert first.core.store.get(instance_id).status == "suspended"  # cached in `first`
    bookmark = view["bookmarks"][0]["id"]

    second.instances.resume(ResumeBookmark(TENANT, instance_id, bookmark, payload={"ok": 1}))

    # `first` fast-forwards its cached copy with the events `second` stored.
    assert first.core.store.get(instance_id).status == "completed"


def test_a_failed_command_leaves_the_cached_instance_unchanged(two: tuple[Any, Any]) -> None:
    first, _ = two
    view, _ = first.instances.start(StartInstance(TENANT, "wait-once"))
    instance_id = UUID(view["id"])
    first.core.store.get(instance_id)  # cached

    def cancel_then_fail(session: Any) -> None:
        instance = session.load(instance_id)
        engine.cancel(instance, "changed, then the command fails", session.env)
        assert instance.status == "cancelled"
        raise RuntimeError("the command fails after changing its copy")

    with pytest.raises(RuntimeError):
        first.core.runner.run(cancel_then_fail, instance_id)

    again = first.core.store.get(instance_id)
    assert again.status == "suspended" and not again.pending_events


def test_the_cached_copy_is_made_under_the_instance_lock(
    two: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library copied the cached instance after releasing the lock another thread
    # fast-forwards that same object under: `dictionary changed size during iteration`
    # under load (infrastructure/postgres/repository.py).
    from infrastructure.postgres import repository

    first, second = two
    view, _ = first.instances.start(StartInstance(TENANT, "wait-once"))
    instance_id = UUID(view["id"])
    repo = first.core.store.app.repository
    assert isinstance(repo, repository.CopyingRepository)
    lock = repo._copy_locks[instance_id.int % len(repo._copy_locks)]
    held: list[bool] = []
    original = repository.clone

    def watched(aggregate: Any) -> Any:
        held.append(lock.locked())
        return original(aggregate)

    cached = first.core.store.get(instance_id)
    second.instances.resume(
        ResumeBookmark(TENANT, instance_id, view["bookmarks"][0]["id"], payload={"ok": 1})
    )
    monkeypatch.setattr(repository, "clone", watched)
    forwarded = first.core.store.get(instance_id)  # fast-forwarded, then copied
    assert held == [True]
    assert cached.status == "suspended" and forwarded.status == "completed"
    assert forwarded is not first.core.store.get(instance_id)  # every get: a private copy
