"""The recovery use cases on the in-memory ports: incidents listed (filters, cursor),
retried, skipped, and instances rebuilt as they were (time travel)."""

from __future__ import annotations

import os
from uuid import UUID

import pytest

from application.admission import StartAdmission
from application.commands import RetryNode, SkipNode, StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.read_models import IncidentFilter
from application.recovery import RecoveryService
from application.runner import CommandRunner
from domain.errors import NotRecoverableError
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.memory.incidents import MemoryIncidentQueries
from infrastructure.schemas import JsonSchemaValidator

TENANT = "acme"
DIVIDE = {
    "name": "divide",
    "on_failure": "incident",
    "nodes": [
        {"id": "q", "type": "set", "variables": {"q": "10 / input.d"}},
        {"id": "done", "type": "end", "output": {"d": "input.d"}},
    ],
    "routes": [{"from": "q", "to": "done"}],
}


@pytest.fixture
def services() -> tuple[InstanceService, RecoveryService]:
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, schemas)
    runner = CommandRunner(ports.instances, cache, admission, SystemClock())
    instances = InstanceService(
        runner, ports.instances, cache, ports.definitions, ports.queries, admission,
        KeyedIds(os.urandom(32)),
    )  # fmt: skip
    DefinitionService(ports.definitions, schemas).publish(TENANT, DIVIDE)
    recovery = RecoveryService(
        runner, ports.instances, MemoryIncidentQueries(ports.tables), ports.queries
    )
    return instances, recovery


def test_incidents_are_listed_paged_and_resolved(
    services: tuple[InstanceService, RecoveryService],
) -> None:
    instances, recovery = services
    ids = [
        UUID(instances.start(StartInstance(TENANT, "divide", input={"d": 0}))[0]["id"])
        for _ in range(3)
    ]
    assert all(instances.get(TENANT, i)["status"] == "incident" for i in ids)
    first = recovery.list_incidents(TENANT, limit=2)
    second = recovery.list_incidents(TENANT, limit=2, cursor=first.next_cursor)
    listed = [i["instance_id"] for i in first.items + second.items]
    assert listed == [str(i) for i in ids] and second.next_cursor is None
    assert recovery.list_incidents("other", IncidentFilter()).items == []
    assert recovery.list_incidents(TENANT, IncidentFilter(node_id="done")).items == []

    retried, _ = recovery.retry(
        RetryNode(TENANT, ids[0], variables={"by": "ops"}, actor="ops", reason="bad input")
    )
    assert retried["status"] == "incident"  # input.d is still 0: held again
    skipped, _ = recovery.skip(SkipNode(TENANT, ids[1], actor="ops", reason="by hand"))
    assert skipped["status"] == "completed" and skipped["recovery"]["action"] == "skipped"
    resolved = recovery.list_incidents(TENANT, IncidentFilter(status="skipped")).items
    assert [(i["instance_id"], i["resolved_by"], i["reason"]) for i in resolved] == [
        (str(ids[1]), "ops", "by hand")
    ]
    with pytest.raises(NotRecoverableError):
        recovery.retry(RetryNode(TENANT, ids[1]))


def test_time_travel_rebuilds_each_earlier_version(
    services: tuple[InstanceService, RecoveryService],
) -> None:
    instances, recovery = services
    instance_id = UUID(instances.start(StartInstance(TENANT, "divide", input={"d": 0}))[0]["id"])
    held = instances.get(TENANT, instance_id)
    recovery.skip(SkipNode(TENANT, instance_id, actor="ops"))
    done = instances.get(TENANT, instance_id)
    assert done["aggregate_version"] > held["aggregate_version"]
    for seen in (held, done):
        past = recovery.instance_at(TENANT, instance_id, version=seen["aggregate_version"])
        assert {k: past[k] for k in seen if k in past} == {
            k: v for k, v in seen.items() if k in past
        }
    assert recovery.instance_at(TENANT, instance_id, version=1)["status"] == "running"
