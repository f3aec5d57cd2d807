"""GroupCommitter's hand-over of the lead, under many threads (no database: a list store).

The PostgreSQL behaviour (one transaction, splitting, order) is tested in
tests/integration/test_group_commit.py; this checks that no caller is lost or woken with
someone else's outcome when many commit at once."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from application.commit import GroupCommitter
from application.ports import PendingCommit
from application.read_models import Projection

pytestmark = pytest.mark.timeout(60)


class ListStore:
    """Appends the events of each save; a save holding a "poison" event raises."""

    def __init__(self) -> None:
        self.saves: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def save(self, events: tuple[Any, ...], projection: Projection) -> None:
        time.sleep(0.001)  # a COMMIT takes time: callers queue meanwhile
        if any(str(e).startswith("poison") for e in events):
            raise ValueError("poisoned")
        with self._lock:
            self.saves.append(tuple(events))


def pending(label: str) -> PendingCommit:
    instance: Any = SimpleNamespace(id=uuid.uuid4())
    return PendingCommit(instances=(instance,), events=(label,), projection=Projection())


def test_many_threads_each_get_their_own_outcome() -> None:
    store = ListStore()
    committer = GroupCommitter(store, max_group=16)  # type: ignore[arg-type]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(24)

    def run(k: int) -> None:
        barrier.wait()
        for i in range(25):
            label = f"poison-{k}-{i}" if i % 7 == 3 else f"ok-{k}-{i}"
            try:
                committer.commit(pending(label))
            except ValueError:
                outcomes[label] = "failed"
            else:
                outcomes[label] = "stored"

    threads = [threading.Thread(target=run, args=(k,)) for k in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
        assert not t.is_alive(), "a caller was never woken"
    stored = {e for save in store.saves for e in save}
    assert len(outcomes) == 24 * 25
    for label, outcome in outcomes.items():
        assert outcome == ("failed" if label.startswith("poison") else "stored"), label
        assert (label in stored) == (outcome == "stored")
    assert sum(len(s) for s in store.saves) == len(stored)  # each stored once
    assert max(len(s) for s in store.saves) > 1  # some saves were shared


def test_commit_all_of_one_caller_shares_one_save() -> None:
    store = ListStore()
    committer = GroupCommitter(store)  # type: ignore[arg-type]
    errors = committer.commit_all([pending("a"), pending("poison"), pending("b")])
    assert [type(e) for e in errors] == [type(None), ValueError, type(None)]
    assert sorted(e for s in store.saves for e in s) == ["a", "b"]
