"""Admission on the definition cache, checked in the start's commit (issue 11, performance).

Two Containers on one PostgreSQL database play two API replicas. Replica B admits starts
from its DefinitionCache (no read of the definition on the usual path), so its cache is
stale the moment replica A disables a definition or publishes a new version; the start's
commit checks the admitted (tenant, name, version) in the same transaction and, when it no
longer holds, stores nothing and the start is admitted again from the store. The tests
marked `checked=False` switch that check off (a no-op in the recorder) and show that the
same scenario then starts what it must not: the tests detect a missing check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from application.commands import DeliverEvent, StartInstance
from application.commit import GroupCommitter
from application.errors import DefinitionDisabledError, DefinitionNotFoundError

pytestmark = pytest.mark.integration

TENANT = "acme"
DEADLINE_SECONDS = 20.0


def document(name: str, marker: str = "v1") -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [{"id": "done", "type": "end", "output": {"marker": f"'{marker}'"}}],
    }


def build(database_url: str) -> Any:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    return build_api(Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4))


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[Any, Any]]:
    a, b = build(database_url), build(database_url)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(params=[True, False], ids=["checked", "unchecked-negative-control"])
def checked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """True: the production commit check; False: the check switched off."""
    if not request.param:
        import infrastructure.postgres.recorder as recorder
        from infrastructure.postgres.admission_check import AdmissionCheck

        monkeypatch.setattr(
            recorder, "send_admission_check", lambda conn, admitted: AdmissionCheck()
        )
    return bool(request.param)


def instance_count(database_url: str, name: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM instances WHERE definition = %s", (name,))
        return int(row.fetchone()[0])  # type: ignore[index]


class CountingReads:
    """Wraps a definition store, counting `get` (the read admission used to make)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.gets = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.gets += 1
        return self.store.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_warm_start_reads_no_definition(replicas: tuple[Any, Any]) -> None:
    a, b = replicas
    a.definitions.publish(TENANT, document("plain"))
    b.instances.start(StartInstance(TENANT, "plain"))  # warms B's cache
    reads = CountingReads(b.core.cache.store)
    b.core.cache.store = reads
    for _ in range(3):
        view, _ = b.instances.start(StartInstance(TENANT, "plain"))
        assert view["status"] == "completed"
        view, _ = b.instances.start(StartInstance(TENANT, "plain", version=1))
        assert view["status"] == "completed"
    assert reads.gets == 0


def test_disabled_on_one_replica_refuses_starts_on_the_other_at_once(
    replicas: tuple[Any, Any], database_url: str, checked: bool
) -> None:
    a, b = replicas
    a.definitions.publish(TENANT, document("orders"))
    b.instances.start(StartInstance(TENANT, "orders"))  # B's cache: v1, enabled, newest
    b.instances.start(StartInstance(TENANT, "orders", version=1))
    before = instance_count(database_url, "orders")

    a.definitions.set_enabled(TENANT, "orders", False)

    if not checked:
        # The stale cache alone starts the disabled definition: what the check prevents.
        view, _ = b.instances.start(StartInstance(TENANT, "orders"))
        assert view["status"] == "completed"
        assert instance_count(database_url, "orders") == before + 1
        return
    with pytest.raises(DefinitionDisabledError):
        b.instances.start(StartInstance(TENANT, "orders"))
    with pytest.raises(DefinitionDisabledError):
        b.instances.start(StartInstance(TENANT, "orders", version=1))
    assert instance_count(database_url, "orders") == before
    # A disabled answer is never taken from the cache: enabled again on A, B starts it.
    a.definitions.set_enabled(TENANT, "orders", True)
    view, _ = b.instances.start(StartInstance(TENANT, "orders"))
    assert view["status"] == "completed"
    with pytest.raises(DefinitionNotFoundError):
        b.instances.start(StartInstance(TENANT, "orders", version=7))


def test_a_version_published_on_one_replica_is_started_by_the_other(
    replicas: tuple[Any, Any], checked: bool
) -> None:
    a, b = replicas
    a.definitions.publish(TENANT, document("billing", "v1"))
    first, _ = b.instances.start(StartInstance(TENANT, "billing"))
    assert (first["version"], first["output"]) == (1, {"marker": "v1"})

    a.definitions.publish(TENANT, document("billing", "v2"))

    view, _ = b.instances.start(StartInstance(TENANT, "billing"))
    if not checked:
        # Without the check B's cached "newest" is still v1.
        assert view["version"] == 1
        return
    assert (view["version"], view["output"]) == (2, {"marker": "v2"})
    # An explicit older version is still started: only a start without one takes the newest.
    old, _ = b.instances.start(StartInstance(TENANT, "billing", version=1))
    assert (old["version"], old["output"]) == (1, {"marker": "v1"})


def test_a_child_of_a_definition_disabled_elsewhere_fails_its_node(
    replicas: tuple[Any, Any],
) -> None:
    a, b = replicas
    a.definitions.publish(TENANT, document("kid"))
    a.definitions.publish(
        TENANT,
        {
            "name": "parent",
            "nodes": [
                {"id": "call", "type": "sub_workflow", "definition": "kid"},
                {"id": "bad", "type": "end", "output": {"why": "nodes.call.result.error"}},
                {"id": "done", "type": "end", "output": {"ok": "true"}},
            ],
            "routes": [
                {"from": "call", "to": "done"},
                {"from": "call", "to": "bad", "outcome": "error"},
            ],
        },
    )
    good, _ = b.instances.start(StartInstance(TENANT, "parent"))
    assert good["output"] == {"ok": True}  # B's cache now holds `kid` enabled

    a.definitions.set_enabled(TENANT, "kid", False)

    off, _ = b.instances.start(StartInstance(TENANT, "parent"))
    assert off["status"] == "completed"
    assert "disabled" in off["output"]["why"]


def test_an_event_trigger_disabled_during_its_delivery_starts_nothing(
    replicas: tuple[Any, Any], database_url: str, checked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    a.definitions.publish(
        TENANT, {**document("on-go"), "triggers": [{"type": "event", "event": "go"}]}
    )
    lookup = b.instances.delivery.lookup

    def lookup_then_disable(*args: Any) -> Any:
        found = lookup(*args)  # B's decision uses this answer...
        a.definitions.set_enabled(TENANT, "on-go", False)  # ...which A makes stale
        return found

    monkeypatch.setattr(b.instances.delivery, "lookup", lookup_then_disable)

    result, _ = b.instances.deliver_event(DeliverEvent(TENANT, "go", None, payload={}))

    if not checked:
        assert len(result["started"]) == 1 and instance_count(database_url, "on-go") == 1
        return
    # Refused at commit; decided again on a fresh lookup, which no longer finds it.
    assert result["started"] == [] and instance_count(database_url, "on-go") == 0


class GatedStore:
    """The real instance store; its first save waits for `gate`. Counts events per save."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.saves: list[int] = []
        self._first = True

    def save(self, events: Sequence[Any], projection: Any) -> None:
        self.saves.append(len(events))
        if self._first:
            self._first = False
            self.entered.set()
            assert self.gate.wait(DEADLINE_SECONDS)
        self.store.save(events, projection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_start_refused_inside_a_group_commit_fails_only_itself(
    replicas: tuple[Any, Any], database_url: str
) -> None:
    a, b = replicas
    a.definitions.publish(TENANT, document("steady"))
    a.definitions.publish(TENANT, document("doomed"))
    for name in ("steady", "doomed"):
        b.instances.start(StartInstance(TENANT, name))  # both cached enabled on B
    committer = b.core.runner.committer
    assert isinstance(committer, GroupCommitter)
    gated = GatedStore(committer.store)
    committer.store = gated
    a.definitions.set_enabled(TENANT, "doomed", False)
    names = ["steady", "steady", "doomed", "steady"]
    outcomes: list[Any] = [None] * len(names)

    def run(i: int) -> None:
        try:
            outcomes[i] = b.instances.start(StartInstance(TENANT, names[i], input={"n": i}))[0]
        except Exception as e:  # the outcome under test
            outcomes[i] = e

    # The first start is held in its save while the other three queue behind it: they are
    # saved as ONE group, whose check refuses the `doomed` member only.
    leader = threading.Thread(target=run, args=(0,))
    leader.start()
    assert gated.entered.wait(DEADLINE_SECONDS)
    followers = [threading.Thread(target=run, args=(i,)) for i in range(1, len(names))]
    for t in followers:
        t.start()
    wait_for(lambda: len(committer._queue) == 3, "the three starts to queue")
    gated.gate.set()
    for t in [leader, *followers]:
        t.join(DEADLINE_SECONDS)
        assert not t.is_alive()

    assert isinstance(outcomes[2], DefinitionDisabledError)
    for i in (0, 1, 3):
        assert outcomes[i]["status"] == "completed" and outcomes[i]["input"] == {"n": i}
    # The leader alone, the group of three (refused), `doomed` alone (refused again), the
    # two neighbours together; `doomed` admitted again from the store never commits.
    one = gated.saves[0]
    assert gated.saves == [one, 3 * one, one, 2 * one]
    assert instance_count(database_url, "doomed") == 1
    assert instance_count(database_url, "steady") == 4
