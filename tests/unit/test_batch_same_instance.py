"""`run_batch` (application/batch.py) with several commands on ONE instance (the results of a
`for_each`'s items, recorded by the task worker together): decided on one attempt, one
commit for all of them; a stale result keeps its own outcome; a command that raises gets
its exception while the others of its instance are still recorded (run alone)."""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from application.admission import StartAdmission
from application.batch import run_batch
from application.commands import StartInstance
from application.commit import ImmediateCommitter
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.ports import ActionResult, PendingCommit
from application.read_models import ActivityRow
from application.runner import CommandRunner
from application.session import CommandAttempt
from application.tasks import ActivityService
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.schemas import JsonSchemaValidator
from tests.unit.engine_support import scheduled_row

TENANT = "acme"
FAN_OUT = {
    "name": "fan-out",
    "nodes": [
        {
            "id": "each",
            "type": "service_task",
            "action": {"type": "noop", "n": "{{ item }}"},
            "result_var": "out",
            "for_each": {"items": "input.items"},
        },
        {"id": "done", "type": "end", "output": {"out": "vars.out"}},
    ],
    "routes": [{"from": "each", "to": "done"}],
}


class CountingCommitter(ImmediateCommitter):
    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.commits: list[int] = []  # events per stored commit

    def commit(self, pending: PendingCommit) -> None:
        super().commit(pending)
        self.commits.append(len(pending.events))


class App:
    def __init__(self) -> None:
        self.ports = MemoryPorts.build()
        schemas = JsonSchemaValidator()
        cache = DefinitionCache(self.ports.definitions)
        admission = StartAdmission(self.ports.definitions, cache, schemas)
        self.committer = CountingCommitter(self.ports.instances)
        self.runner = CommandRunner(
            self.ports.instances, cache, admission, SystemClock(), committer=self.committer
        )
        self.instances = InstanceService(
            self.runner,
            self.ports.instances,
            cache,
            self.ports.definitions,
            self.ports.queries,
            admission,
            KeyedIds(os.urandom(32)),
        )
        self.activities = ActivityService(self.runner)
        DefinitionService(self.ports.definitions, schemas).publish(TENANT, FAN_OUT)

    def fan_out(self, count: int) -> tuple[UUID, list[ActivityRow]]:
        view, _ = self.instances.start(
            StartInstance(TENANT, "fan-out", input={"items": list(range(count))})
        )
        instance = self.ports.instances.get(UUID(view["id"]), TENANT)
        assert instance is not None
        rows = [
            scheduled_row(TENANT, instance, a)
            for a in sorted(instance.scheduled_activities(), key=lambda a: a.item_index or 0)
        ]
        return instance.id, rows


def test_the_results_of_one_instance_are_decided_together_and_stored_in_one_commit() -> None:
    app = App()
    instance_id, rows = app.fan_out(5)
    app.committer.commits.clear()
    results = [(row, ActionResult(ok=True, output={"i": k})) for k, row in enumerate(rows)]
    stale = (rows[0], ActionResult(ok=True, output={"i": "again"}))  # recorded just before
    outcomes = app.activities.record_many([*results, stale])
    assert outcomes == [True, True, True, True, True, False]
    assert len(app.committer.commits) == 1  # one load, one commit for the five results
    done = app.instances.get(TENANT, instance_id)
    assert done["status"] == "completed"
    assert done["output"]["out"] == [{"i": k} for k in range(5)]


def test_a_command_that_raises_keeps_its_error_and_the_others_are_recorded_alone() -> None:
    app = App()
    instance_id, rows = app.fan_out(2)
    first, second = (
        app.activities._command(row, ActionResult(ok=True, output=k)) for k, row in enumerate(rows)
    )

    def broken(session: CommandAttempt) -> bool:
        session.load(instance_id)
        raise RuntimeError("a bug in this command")

    app.committer.commits.clear()
    outcomes = run_batch(
        app.runner, [(first, instance_id), (broken, instance_id), (second, instance_id)]
    )
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], RuntimeError)
    assert len(app.committer.commits) == 2  # the group was dropped: each alone
    assert app.instances.get(TENANT, instance_id)["output"]["out"] == [0, 1]
