"""Version-migration jobs on the in-memory ports: batches, progress, refusals that change
nothing (application/modification.py)."""

from __future__ import annotations

import copy
import os
from typing import Any
from uuid import UUID

from application.admission import StartAdmission
from application.commands import CompleteTask, StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.jobs import Job
from application.modification import ModificationService
from application.read_models import TaskFilter
from application.runner import CommandRunner
from application.tasks import TaskService
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.memory.jobs import InMemoryJobStore
from infrastructure.schemas import JsonSchemaValidator

TENANT = "acme"
APPROVE = {"type": "approval", "approver_role": "m"}
V1 = {
    "name": "two-step",
    "nodes": [{"id": "a", **APPROVE}, {"id": "b", **APPROVE}, {"id": "done", "type": "end"}],
    "routes": [
        {"from": "a", "to": "b", "outcome": "approved"},
        {"from": "b", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "done", "outcome": "rejected"},
        {"from": "b", "to": "done", "outcome": "rejected"},
    ],
}
V2 = {
    "name": "two-step",
    "nodes": [{"id": "a", **APPROVE}, {"id": "done", "type": "end"}],
    "routes": [
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "done", "outcome": "rejected"},
    ],
}


class RecordingJobs(InMemoryJobStore):
    def __init__(self) -> None:
        super().__init__()
        self.progress: list[tuple[int, int]] = []

    def save_progress(self, job: Job) -> None:
        self.progress.append((job.done, job.refused))
        super().save_progress(job)


def test_a_job_migrates_in_batches_and_refused_instances_keep_their_events() -> None:
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, schemas)
    runner = CommandRunner(ports.instances, cache, admission, SystemClock())
    instances = InstanceService(
        runner, ports.instances, cache, ports.definitions, ports.queries, admission,
        KeyedIds(os.urandom(32)),
    )  # fmt: skip
    tasks = TaskService(runner, ports.queries, schemas)
    definitions = DefinitionService(ports.definitions, schemas)
    definitions.publish(TENANT, V1)
    ids = [UUID(instances.start(StartInstance(TENANT, "two-step"))[0]["id"]) for _ in range(5)]
    for moved_on in ids[3:]:  # two instances go on to `b`, which version 2 lacks
        [task] = [
            t for t in tasks.list(TENANT, TaskFilter(status="open")).items
            if t["instance_id"] == str(moved_on)
        ]  # fmt: skip
        tasks.complete(CompleteTask(TENANT, str(task["id"]), outcome="approved", user="u"))
    definitions.publish(TENANT, V2)
    jobs = RecordingJobs()
    service = ModificationService(runner, ports.instances, cache, ports.queries, jobs, batch_size=2)

    plan = service.plan_migration(TENANT, "two-step", 1, 2, {})
    assert (plan["can_migrate"], plan["cannot_migrate"]) == (3, 2)
    events_before = {i: _events(ports, i) for i in ids}

    job = service.start_migration(TENANT, "two-step", 1, 2, {}, by="ops", reason="drop b")
    assert (job.status, job.total) == ("running", 5)
    done = service.run_migration(job)

    assert (done.status, done.done, done.refused, done.failed) == ("succeeded", 3, 2, 0)
    # progress after each batch of two (2, 2, 1 instances), then the final state
    assert len(jobs.progress) == 4 and jobs.progress[-1] == (3, 2)
    assert sum(jobs.progress[2]) == 5 and sum(jobs.progress[0]) == 2
    assert service.job(TENANT, job.id).view()["remaining"] == 0
    refused = {e["instance_id"] for e in done.errors}
    for instance_id in ids:
        after = _events(ports, instance_id)
        if str(instance_id) in refused:
            assert after == events_before[instance_id]  # nothing changed
            assert any("b is missing" in r for e in done.errors for r in e["reasons"])
        else:
            assert after[len(events_before[instance_id]) :] == ["InstanceMigrated"]
            assert instances.get(TENANT, instance_id)["version"] == 2


def _events(ports: MemoryPorts, instance_id: UUID) -> list[Any]:
    return copy.deepcopy([e.type for e in ports.instances.history(instance_id, 0, 1000)])
