"""The command path's instance cache on the in-memory ports: two runners over one store
stand for two processes, only the first caching. A stale copy never decides anything that
stands, through `CommandRunner.run` and through `run_batch` (the task worker's path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.admission import StartAdmission
from application.batch import run_batch
from application.definitions import DefinitionCache, DefinitionService
from application.instance_cache import InstanceCache
from application.read_models import BookmarkRow
from application.runner import CommandRunner
from application.session import CommandAttempt
from domain import engine
from domain.instance import WorkflowInstance
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.schemas import JsonSchemaValidator

TENANT = "acme"
WAIT = {
    "name": "wait-once",
    "nodes": [{"id": "w", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "w", "to": "done"}],
}


class CountingStore:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.reads = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self.store.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass
class Two:
    cached: CommandRunner  # this process: caches what it commits
    other: CommandRunner  # another process on the same store
    store: CountingStore  # the reads of `cached`


@pytest.fixture
def two() -> Two:
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    definitions = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, definitions, schemas)
    DefinitionService(ports.definitions, schemas).publish(TENANT, WAIT)
    store = CountingStore(ports.instances)
    cached = CommandRunner(store, definitions, admission, SystemClock(), cache=InstanceCache(10))
    other = CommandRunner(ports.instances, definitions, admission, SystemClock())
    return Two(cached, other, store)


def start(runner: CommandRunner) -> UUID:
    instance_id = uuid4()

    def command(session: CommandAttempt) -> None:
        definition = session.admission.admit(TENANT, "wait-once", None, {})
        session.start(
            instance_id=instance_id,
            tenant=TENANT,
            definition=definition,
            input={},
            correlation_id=None,
            idempotency_key=None,
        )

    runner.run(command)
    return instance_id


def resume(instance_id: UUID) -> Any:
    bookmark: list[str] = []

    def command(session: CommandAttempt) -> str:
        instance = session.load(instance_id)
        if not bookmark:  # the wait's bookmark, as the first decision saw it
            bookmark.append(instance.open_bookmarks()[0].id)
        engine.resume(
            instance,
            session.definition_of(instance),
            bookmark[0],
            payload={},
            source="test",
            env=session.env,
        )
        return str(instance.status)

    return command


def cancel(instance_id: UUID) -> Any:
    def command(session: CommandAttempt) -> str:
        instance = session.load(instance_id)
        engine.cancel(instance, "elsewhere", session.env)
        return str(instance.status)

    return command


def status(instance_id: UUID, seen: list[str]) -> Any:
    def command(session: CommandAttempt) -> str:
        seen.append(str(session.load(instance_id).status))
        return seen[-1]

    return command


def test_a_committed_instance_is_taken_from_the_cache_without_a_read(two: Two) -> None:
    instance_id = start(two.cached)
    assert two.cached.run(resume(instance_id), instance_id) == "completed"
    assert two.store.reads == 0


def test_a_stale_write_is_rejected_by_the_version_check_and_re_decided(two: Two) -> None:
    instance_id = start(two.cached)
    two.other.run(cancel(instance_id), instance_id)  # the copy of `cached` is now stale
    with pytest.raises(Exception, match="open|bookmark|ended|cancelled"):
        two.cached.run(resume(instance_id), instance_id)
    # One conflict on the stale copy, then the store's state decided (and refused).
    assert two.store.reads >= 1
    assert two.cached.cache is not None and two.cached.cache.take(instance_id) is None


def test_a_stale_decision_to_write_nothing_is_re_taken(two: Two) -> None:
    instance_id = start(two.cached)
    two.other.run(resume(instance_id), instance_id)
    seen: list[str] = []
    assert two.cached.run(status(instance_id, seen), instance_id) == "completed"
    assert seen == ["suspended", "completed"]  # the cached "suspended" was not trusted


def test_without_the_check_the_stale_answer_would_stand(two: Two) -> None:
    # Negative control: an attempt that reads the cache and is not checked sees the past.
    instance_id = start(two.cached)
    two.other.run(resume(instance_id), instance_id)
    session = two.cached.new_attempt()
    assert session.load(instance_id).status == "suspended"
    assert not session.trusted(session.prepare())


def test_run_batch_re_decides_stale_copies_alone(two: Two) -> None:
    first, second, third = start(two.cached), start(two.cached), start(two.cached)
    two.other.run(cancel(first), first)  # stale in the cache: a write on it conflicts
    two.other.run(resume(second), second)  # stale too: a read-only answer would be wrong
    seen: list[str] = []
    in_order: list[str] = []
    outcomes = run_batch(
        two.cached,
        [
            (resume(first), first),
            (status(second, seen), second),
            (status(third, in_order), third),
            (resume(third), third),
        ],
    )
    assert isinstance(outcomes[0], Exception)  # re-decided alone on the cancelled state
    # The read-only command's cached answer is not trusted: taken again, alone, on the
    # store's state.
    assert outcomes[1] == "completed" and seen == ["suspended", "completed"]
    # Commands of one target share one attempt, decided in batch order: the status before
    # the resume sees the instance suspended, and the group commits once.
    assert outcomes[2] == "suspended" and in_order == ["suspended"]
    assert outcomes[3] == "completed"
    assert two.cached.cache is not None and two.cached.cache.take(first) is None


def test_a_take_hands_the_instance_out_once_and_the_cache_keeps_the_newest(two: Two) -> None:
    instance_id = start(two.cached)
    cache = two.cached.cache
    assert cache is not None
    taken = cache.take(instance_id)
    # Removed by the take: no other command can get (and change) the same object.
    assert taken is not None and cache.take(instance_id) is None
    engine.cancel(taken, "changed by its owner", two.cached.new_attempt().env)
    # An instance with pending (uncommitted) events is never cached; nor an ended one.
    cache.put([taken])
    assert cache.take(instance_id) is None
    taken.collect_events()
    cache.put([taken])
    assert cache.take(instance_id) is None
    # An older version never replaces a newer one.
    kept = two.cached.store.get(instance_id)
    assert kept is not None
    newer = _at_version(kept, kept.version + 1)
    cache.put([newer])
    cache.put([kept])
    assert cache.take(instance_id).version == kept.version + 1  # type: ignore[union-attr]


def test_the_answer_is_taken_before_the_cache_can_hand_the_instance_out(two: Two) -> None:
    # A command's caller reads the committed aggregate for its answer (`finish`, e.g. the
    # start's view); only after that may the cache give the aggregate to another command.
    cache = two.cached.cache
    assert cache is not None
    instance_id = uuid4()
    seen: list[Any] = []

    def command(session: CommandAttempt) -> Any:
        definition = session.admission.admit(TENANT, "wait-once", None, {})
        return session.start(
            instance_id=instance_id,
            tenant=TENANT,
            definition=definition,
            input={},
            correlation_id=None,
            idempotency_key=None,
        )

    def finish(instance: Any) -> Any:
        seen.append(cache.take(instance_id))  # not in the cache while the answer is taken
        return str(instance.status)

    assert two.cached.run(command, instance_id, finish=finish) == "suspended"
    assert seen == [None]
    assert cache.take(instance_id) is not None  # kept once the answer was taken


def test_the_cache_is_bounded() -> None:
    cache = InstanceCache(size=2)
    kept = [_fake() for _ in range(3)]
    cache.put(kept)
    assert len(cache) == 2 and cache.take(kept[0].id) is None


def test_the_cache_is_bounded_by_its_instances_events_too() -> None:
    """Large instances (many events) are held fewer: the least recently used go first until
    the events held fit; the count stays exact through replace, take, drop and eviction."""
    cache = InstanceCache(size=100, max_events=10)
    small, large, other = _fake(), _fake(), _fake()
    large.version = 8
    cache.put([small, large])
    assert cache.events == 9 and len(cache) == 2
    other.version = 3
    cache.put([other])  # 12 > 10: the least recently used (small) goes, then 11: large too
    assert cache.take(small.id) is None and cache.take(large.id) is None
    assert cache.events == 3 and len(cache) == 1
    cache.put([_at_version(other, 5)])  # the same instance, newer: replaced, not added
    assert cache.events == 5
    assert cache.take(other.id) is not None and cache.events == 0
    too_large = _fake()
    too_large.version = 11
    cache.put([too_large])  # alone over the bound: not kept
    assert len(cache) == 0 and cache.events == 0
    cache.put([small])
    cache.drop([small.id])
    assert cache.events == 0


def _at_version(instance: WorkflowInstance, version: int) -> Any:
    fake = _fake()
    fake.id = instance.id
    fake.version = version
    return fake


class _fake:  # noqa: N801 - the few attributes the cache reads
    def __init__(self) -> None:
        self.id = uuid4()
        self.version = 1
        self.pending_events: list[Any] = []
        self.is_ended = False


def _bookmark(instance: Any, token: str, status: str = "open") -> BookmarkRow:
    return BookmarkRow(
        id=f"bm-{token}",
        tenant="acme",
        instance_id=instance.id,
        node_id="wait",
        kind="wait",
        status=status,
        token=token,
        event_type=None,
        correlation=None,
        due_at=None,
        created_at=datetime.now(UTC),
        resolved_at=None,
    )


def test_the_tokens_of_open_bookmarks_put_with_an_instance_are_known() -> None:
    cache = InstanceCache()
    instance = _fake()
    cache.put([instance], [_bookmark(instance, "t1"), _bookmark(instance, "t0", "consumed")])
    assert cache.bookmark("t1") == ("acme", instance.id, "bm-t1")
    assert cache.bookmark("t0") is None
    # A later commit that consumed it forgets it.
    later = _at_version(instance, 2)
    cache.put([later], [_bookmark(instance, "t1", "consumed")])
    assert cache.bookmark("t1") is None


def test_a_token_is_forgotten_with_its_instance() -> None:
    cache = InstanceCache(size=1)
    first, second, third = _fake(), _fake(), _fake()
    cache.put([first], [_bookmark(first, "a")])
    cache.put([second], [_bookmark(second, "b")])  # evicts the first
    assert cache.bookmark("a") is None and cache.bookmark("b") is not None
    cache.drop([second.id])
    assert cache.bookmark("b") is None
    cache.put([third], [_bookmark(third, "c")])
    third.is_ended = True
    cache.put([third])
    assert cache.bookmark("c") is None


def test_an_older_commit_put_late_does_not_bring_a_token_back() -> None:
    cache = InstanceCache()
    instance = _fake()
    newer = _at_version(instance, 3)
    cache.put([newer], [_bookmark(instance, "t", "consumed")])
    cache.put([_at_version(instance, 2)], [_bookmark(instance, "t")])  # refused: older
    assert cache.bookmark("t") is None
    # A taken instance's tokens stay known (its command is in flight) ...
    cache.put([_at_version(instance, 4)], [_bookmark(instance, "u")])
    assert cache.take(instance.id) is not None
    assert cache.bookmark("u") is not None


def test_the_tokens_of_instances_that_never_come_back_are_bounded() -> None:
    cache = InstanceCache(size=2)
    for n in range(10):
        instance = _fake()
        cache.put([instance], [_bookmark(instance, f"t{n}")])
        cache.take(instance.id)  # a command took it, then failed: never put back
    assert len(cache._tokens) <= 2 * cache.size + 1
