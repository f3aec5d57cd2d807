"""Signed callbacks on the command path against the real PostgreSQL: concurrent callbacks
for one token, stale copies, and the instance cache's two shortcuts (the copy at the
version read; a token this process committed, with no read at all). Real threads, no
mocks."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import pytest

from application.commands import DeliverCallback, ResumeBookmark, StartInstance
from application.errors import CommandConflictError, SignatureError
from application.ports import InstanceRead
from domain.errors import BookmarkNotOpenError
from tests.command_support import TENANT, container, event_types, race, signed_callback

__all__ = ["container"]  # the fixture (tests/command_support.py)

pytestmark = pytest.mark.integration


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
