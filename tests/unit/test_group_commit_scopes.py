"""Under which tenant scope the group committer saves a group (row-level security).

The leader saves in its own thread, for other callers too: it must not save them under its
own scope (another tenant's rows would be refused, or pass unchecked in the system scope).
A group of one scope is saved under it; a group of several tenants under the system scope,
and only of commits whose every row is their own scope's tenant; a commit with rows of
another tenant than its scope's is saved alone under its own scope, for the database to
refuse.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from application import tenant_scope
from application.commit import GroupCommitter
from application.ports import PendingCommit
from application.read_models import Projection

pytestmark = pytest.mark.timeout(30)


class ScopeRecordingStore:
    """Records each save's events with the scope current while it ran; the first waits."""

    def __init__(self) -> None:
        self.saves: list[tuple[str, frozenset[str]]] = []
        self.release = threading.Event()
        self.first = True

    def save(self, events: tuple[Any, ...], projection: Projection) -> None:
        if self.first:
            self.first = False
            assert self.release.wait(10)
        self.saves.append((tenant_scope.current(), frozenset(events)))


def pending(label: str, rows_of: str) -> PendingCommit:
    instance: Any = SimpleNamespace(id=uuid.uuid4(), tenant=rows_of)
    row: Any = SimpleNamespace(tenant=rows_of)
    return PendingCommit(instances=(instance,), events=(label,), projection=Projection([row]))


def _commit_in(scope: str | None, commit: PendingCommit, committer: GroupCommitter) -> Any:
    def run() -> None:
        with tenant_scope.acting_for(scope):
            committer.commit(commit)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_each_group_is_saved_under_its_members_scope_not_the_leaders() -> None:
    store = ScopeRecordingStore()
    committer = GroupCommitter(store)  # type: ignore[arg-type]
    threads = [_commit_in("acme", pending("a0", "acme"), committer)]
    while store.first:
        time.sleep(0.001)  # a0's leader is inside its save: the others queue behind it
    threads.append(_commit_in("globex", pending("g1", "globex"), committer))
    threads.append(_commit_in("acme", pending("bad", "globex"), committer))
    threads.append(_commit_in("acme", pending("a3", "acme"), committer))
    while len(committer._queue) < 3:
        time.sleep(0.001)
    store.release.set()
    for thread in threads:
        thread.join(10)
    assert store.saves[0] == ("acme", frozenset({"a0"}))
    # g1's caller led the next group (in globex's scope): the group of two tenants ran in
    # the system scope, without the commit whose rows are not its scope's tenant ...
    assert ("*", frozenset({"g1", "a3"})) in store.saves
    # ... which was saved alone under its own scope, where the policies check its rows.
    assert ("acme", frozenset({"bad"})) in store.saves
    assert len(store.saves) == 3


def test_a_group_of_one_tenant_runs_under_that_tenant() -> None:
    store = ScopeRecordingStore()
    store.first = False
    committer = GroupCommitter(store)  # type: ignore[arg-type]
    with tenant_scope.acting_for("acme"):
        committer.commit_all([pending("x", "acme"), pending("y", "acme")])
    committer.commit_all([pending("w1", "acme"), pending("w2", "globex")])  # a worker
    assert store.saves == [("acme", frozenset({"x", "y"})), ("*", frozenset({"w1", "w2"}))]
