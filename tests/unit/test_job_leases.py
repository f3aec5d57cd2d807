"""Job leases on the in-memory ports: a job whose process dies mid-batch is claimed by
another process once its lease ends and resumed from its stored position, each instance
handled exactly once (application/jobs.py, application/job_recovery.py)."""

from __future__ import annotations

import os
import time
from typing import Any
from uuid import UUID

import pytest

from application.admission import StartAdmission
from application.commands import StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.job_recovery import JobRecovery
from application.jobs import RUNNING, Job, JobLeaseLostError
from application.modification import MIGRATION_JOB, ModificationService
from application.runner import CommandRunner
from domain.definition import Definition
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.memory.jobs import InMemoryJobStore
from infrastructure.schemas import JsonSchemaValidator
from tests.unit.test_migration_jobs import TENANT, V1, V2

LEASE = 0.2


class ProcessDied(BaseException):
    """Like SIGKILL: nothing after it runs, no handler stores anything."""


class DyingModification(ModificationService):
    """Dies just before migrating its `dies_at`-th instance."""

    dies_at = 7
    handled = 0

    def _migrate_one(self, job: Any, instance_id: UUID, old: Definition, new: Definition) -> None:
        self.handled += 1
        if self.handled == self.dies_at:
            raise ProcessDied()
        super()._migrate_one(job, instance_id, old, new)


def test_a_job_whose_process_died_is_resumed_elsewhere_each_instance_once() -> None:
    # Given 10 instances to migrate in batches of 4, by a process that dies mid-batch 2
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, schemas)
    clock = SystemClock()
    runner = CommandRunner(ports.instances, cache, admission, clock)
    instances = InstanceService(
        runner, ports.instances, cache, ports.definitions, ports.queries, admission,
        KeyedIds(os.urandom(32)),
    )  # fmt: skip
    definitions = DefinitionService(ports.definitions, schemas)
    definitions.publish(TENANT, V1)
    ids = [UUID(instances.start(StartInstance(TENANT, "two-step"))[0]["id"]) for _ in range(10)]
    definitions.publish(TENANT, V2)
    dead_store = InMemoryJobStore(lease_seconds=LEASE, owner="process-1")
    dying = DyingModification(runner, ports.instances, cache, ports.queries, dead_store)
    dying.batch_size = 4
    job = dying.start_migration(TENANT, "two-step", 1, 2, {}, by="ops", reason="r")
    with pytest.raises(ProcessDied):
        dying.run_migration(job)
    stored = dead_store.get(TENANT, job.id)
    assert stored is not None
    # Stored after batch 1 only; instances 5 and 6 were migrated but are not counted yet
    assert (stored.status, stored.position, stored.done) == ("running", 4, 4)
    assert sum(migrated(ports, i) for i in ids) == 6

    # When another process sweeps: nothing while the lease lives (negative control) ...
    other_store = dead_store.sharing("process-2")
    other = ModificationService(
        runner, ports.instances, cache, ports.queries, other_store, batch_size=4
    )
    recovery = JobRecovery(other_store, {MIGRATION_JOB: other.run_migration}, clock.now)
    assert recovery.sweep() is None
    # ... and once it has ended, the job is claimed and resumed from position 4
    time.sleep(LEASE * 1.5)
    resumed = recovery.sweep()

    # Then every instance was migrated exactly once and counted exactly once
    assert resumed is not None and resumed.id == job.id
    assert (resumed.status, resumed.done, resumed.refused, resumed.failed) == (
        "succeeded",
        10,
        0,
        0,
    )
    assert resumed.resumes == 1 and resumed.view()["remaining"] == 0
    assert [migrated(ports, i) for i in ids] == [1] * 10
    # The dead process, were it only paused, may no longer store anything for the job
    with pytest.raises(JobLeaseLostError):
        dead_store.save_progress(stored)
    assert recovery.sweep() is None  # an ended job is not claimed again


def test_a_job_abandoned_too_often_is_failed_not_resumed() -> None:
    store = InMemoryJobStore(lease_seconds=0.01, owner="p")
    ran: list[Job] = []

    def run(job: Job) -> Job:  # a job that never gets to store its end
        ran.append(job)
        return job

    recovery = JobRecovery(store, {"k": run}, SystemClock().now, max_resumes=1)
    now = SystemClock().now()
    job = Job(UUID(int=1), TENANT, "k", RUNNING, {}, now, now)
    store.create(job)
    time.sleep(0.02)
    first = recovery.sweep()
    assert first is not None and ran == [first]  # resumed once
    time.sleep(0.02)
    second = recovery.sweep()
    assert second is not None and second.status == "failed" and len(ran) == 1
    assert "abandoned by its process 2 times" in second.errors[-1]["error"]


def migrated(ports: MemoryPorts, instance_id: UUID) -> int:
    types = [e.type for e in ports.instances.history(instance_id, 0, 1000)]
    return types.count("InstanceMigrated")
