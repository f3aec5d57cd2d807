"""InstanceStore contract: the same cases against memory and PostgreSQL."""

from __future__ import annotations

from uuid import uuid4

import pytest

from application.ports import (
    ConcurrencyConflictError,
    DuplicateIdempotencyKeyError,
    PendingCommit,
)
from application.read_models import IdempotencyRecord, Projection, TaskFilter
from domain.instance import WorkflowInstance
from tests.contract.conftest import Ports
from tests.integration.test_postgres_support import (
    T0,
    Probe,
    bookmark_row,
    instance_row,
    task_row,
)


def _instance(tenant: str = "acme") -> WorkflowInstance:
    return WorkflowInstance(
        id=uuid4(),
        tenant=tenant,
        definition="flow",
        definition_version=2,
        input={"amount": 20000},
        correlation_id="po-7",
        idempotency_key=None,
        parent=None,
    )


def test_save_and_get_round_trip(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="first", payload={"amount": 12.5, "tags": ["a"]})
    probe.relabel("second", at=T0, ref=uuid4())
    ports.instances.save([probe], Projection(instances=[instance_row(probe)]))

    loaded = ports.instances.get(probe.id)
    assert loaded is not None
    assert (loaded.label, loaded.payload, loaded.version) == ("second", probe.payload, 2)
    assert ports.instances.get(uuid4()) is None
    # Tenant-checked: another tenant's instance is not found.
    assert ports.instances.get(probe.id, "acme") is not None
    assert ports.instances.get(probe.id, "globex") is None


def test_workflow_instance_events_round_trip(ports: Ports) -> None:
    instance = _instance()
    ports.instances.save(list(instance.collect_events()), Projection())  # events, not instances
    loaded = ports.instances.get(instance.id)
    assert loaded is not None
    assert (loaded.tenant, loaded.definition_version, loaded.input) == (
        "acme",
        2,
        {"amount": 20000},
    )


def test_get_many_reads_the_instances_that_exist_as_get_would(ports: Ports) -> None:
    first, second = _instance(), _instance("globex")
    ports.instances.save([first, second], Projection())
    missing = uuid4()

    loaded = ports.instances.get_many([first.id, missing, second.id, first.id])

    assert set(loaded) == {first.id, second.id}
    for instance in (first, second):
        alone = ports.instances.get(instance.id)
        assert alone is not None
        assert (loaded[instance.id].tenant, loaded[instance.id].version) == (
            alone.tenant,
            alone.version,
        )
    assert ports.instances.get_many([]) == {}


def test_by_bookmark_token_reads_the_bookmark_and_its_instance(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="l0")
    probe.relabel("l1", at=T0, ref=uuid4())
    bookmark = bookmark_row(probe.id, tenant="acme")
    other = Probe(tenant="globex", label="other")
    ports.instances.save(
        [probe, other],
        Projection(
            instances=[instance_row(probe), instance_row(other, tenant="globex")],
            bookmarks=[bookmark, bookmark_row(other.id, id="bm-other", tenant="globex")],
        ),
    )

    found = ports.instances.by_bookmark_token(bookmark.token or "")

    assert found is not None
    row, instance = found
    assert row == bookmark
    rebuilt = instance()
    assert rebuilt is not None
    assert (rebuilt.id, rebuilt.label, rebuilt.version) == (probe.id, "l1", 2)
    # The version read, when the store says it, is the rebuilt copy's (the cache's key).
    assert instance.id == probe.id and instance.version in (None, 2)
    assert ports.instances.by_bookmark_token("no-such-token") is None


def test_history_pages_by_version(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="l0")
    for n in range(1, 5):
        probe.relabel(f"l{n}", at=T0, ref=uuid4())
    ports.instances.save([probe], Projection())

    history = ports.instances.history(probe.id)
    assert [(h.version, h.type) for h in history] == [
        (1, "Created"),
        *((v, "Relabelled") for v in range(2, 6)),
    ]
    positions = [h.position for h in history]
    assert all(p is not None for p in positions) and positions == sorted(positions)  # type: ignore[type-var]
    assert history[1].data["label"] == "l1" and history[1].data["at"] == T0.isoformat()

    page = ports.instances.history(probe.id, after_version=2, limit=2)
    assert [h.version for h in page] == [3, 4]
    assert [h.version for h in ports.instances.history(probe.id, after_version=4)] == [5]
    assert ports.instances.history(uuid4()) == []


def test_a_stale_save_is_a_concurrency_conflict_naming_the_instance(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="p")
    ports.instances.save([probe], Projection(instances=[instance_row(probe)]))
    mine, theirs = ports.instances.get(probe.id), ports.instances.get(probe.id)
    mine.relabel("mine", at=T0, ref=uuid4())
    ports.instances.save([mine], Projection(instances=[instance_row(mine)]))

    theirs.relabel("theirs", at=T0, ref=uuid4())
    with pytest.raises(ConcurrencyConflictError) as raised:
        ports.instances.save(
            [theirs], Projection(instances=[instance_row(theirs)], tasks=[task_row(probe.id)])
        )

    assert raised.value.instance_ids == [probe.id]
    loaded = ports.instances.get(probe.id)
    assert (loaded.label, loaded.version) == ("mine", 2)
    # Nothing of the failed save is visible.
    assert ports.queries.instance("acme", probe.id).aggregate_version == 2
    assert ports.queries.list_tasks("acme", TaskFilter(), limit=10, cursor=None).items == []


def test_a_duplicate_idempotency_record_names_its_key_and_rolls_back(ports: Ports) -> None:
    first = Probe(tenant="acme", label="first")
    record = IdempotencyRecord("acme", "resume", "delivery-1", {"instance": "first"})
    ports.instances.save([first], Projection(instances=[instance_row(first)], idempotency=[record]))

    second = Probe(tenant="acme", label="second")
    duplicate = IdempotencyRecord("acme", "resume", "delivery-1", {"instance": "second"})
    other = IdempotencyRecord("acme", "resume", "delivery-2", {"instance": "second"})
    projection = Projection(
        instances=[instance_row(second)],
        tasks=[task_row(second.id)],
        idempotency=[other, duplicate],
    )
    pending = PendingCommit((), tuple(second.collect_events()), projection)
    with pytest.raises(DuplicateIdempotencyKeyError) as raised:
        ports.instances.save(list(pending.events), projection)

    error = raised.value
    assert (error.tenant, error.scope, error.key) == ("acme", "resume", "delivery-1")
    assert "delivery-1" in str(error)
    # A group committer can tell which of its commits caused it.
    assert pending.involves(error)
    unrelated = IdempotencyRecord("acme", "resume", "delivery-3", {})
    assert not PendingCommit((), (), Projection(idempotency=[unrelated])).involves(error)
    # Nothing of the failed save is visible; the first result stays.
    assert ports.instances.get(second.id) is None
    assert ports.queries.instance("acme", second.id) is None
    assert ports.queries.idempotent_result("acme", "resume", "delivery-1") == {"instance": "first"}
    assert ports.queries.idempotent_result("acme", "resume", "delivery-2") is None


def test_a_duplicate_start_key_names_the_key_and_the_instance(ports: Ports) -> None:
    first, second = _instance(), _instance()
    ports.instances.save([first], Projection(instances=[_row(first, "order-9")]))

    with pytest.raises(DuplicateIdempotencyKeyError) as raised:
        ports.instances.save([second], Projection(instances=[_row(second, "order-9")]))

    error = raised.value
    assert (error.tenant, error.key, error.scope) == ("acme", "order-9", None)
    assert error.instance_id == second.id
    assert PendingCommit((second,), (), Projection()).involves(error)
    assert not PendingCommit((first,), (), Projection()).involves(error)
    assert ports.instances.get(second.id) is None


def _row(instance: WorkflowInstance, key: str):  # an instance row carrying a start key
    return instance_row(instance, idempotency_key=key)


def test_one_key_twice_in_one_save_is_named_too(ports: Ports) -> None:
    # What a group commit of two deliveries with the same key would write.
    probe = Probe(tenant="acme", label="p")
    records = [IdempotencyRecord("acme", "event", "dup", {"n": n}) for n in (1, 2)]
    with pytest.raises(DuplicateIdempotencyKeyError) as raised:
        ports.instances.save([probe], Projection(idempotency=records))
    assert (raised.value.scope, raised.value.key) == ("event", "dup")
    assert ports.queries.idempotent_result("acme", "event", "dup") is None
    assert ports.instances.get(probe.id) is None
