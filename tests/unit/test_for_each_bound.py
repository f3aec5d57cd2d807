"""The item bound of `for_each` (WAYMARK_FOR_EACH_MAX_ITEMS) through the application's use
cases (in-memory ports): a command a caller waits for is refused with
`ForEachTooLargeError` (node and JSON path, nothing stored); the same list reached by a
worker's command (a service task's result) fails the node with a clear error instead."""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

import pytest

from application.admission import StartAdmission
from application.commands import CompleteTask, StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.ports import ActionResult
from application.read_models import InstanceFilter, TaskFilter
from application.runner import CommandRunner
from application.tasks import ActivityService, TaskService
from domain.env import ForEachLimits
from domain.errors import ForEachTooLargeError
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.schemas import JsonSchemaValidator
from tests.unit.engine_support import scheduled_row

TENANT = "acme"
LIMIT = 3
EACH = {
    "id": "each",
    "type": "user_task",
    "role": "clerk",
    "assignee": "{{ item }}",
    "for_each": {"items": "vars.people"},
}
# `people` comes from the input (a start), a task's data (a completion) or a service
# task's result (a worker); then the for_each.
FROM_INPUT = {
    "name": "from-input",
    "nodes": [
        {"id": "take", "type": "set", "variables": {"people": "input.people"}},
        EACH,
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "take", "to": "each"}, {"from": "each", "to": "done"}],
}
FROM_TASK = {
    "name": "from-task",
    "nodes": [
        {"id": "ask", "type": "user_task", "role": "clerk", "result_var": "asked"},
        {"id": "take", "type": "set", "variables": {"people": "vars.asked.data.people"}},
        EACH,
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "ask", "to": "take"},
        {"from": "take", "to": "each"},
        {"from": "each", "to": "done"},
    ],
}
FROM_SERVICE = {
    "name": "from-service",
    "nodes": [
        {"id": "fetch", "type": "service_task", "action": {"type": "noop"}, "result_var": "got"},
        {"id": "take", "type": "set", "variables": {"people": "vars.got.people"}},
        EACH,
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "fetch", "to": "take"},
        {"from": "take", "to": "each"},
        {"from": "each", "to": "done"},
    ],
}


class App:
    def __init__(self) -> None:
        self.ports = MemoryPorts.build()
        schemas = JsonSchemaValidator()
        cache = DefinitionCache(self.ports.definitions)
        admission = StartAdmission(self.ports.definitions, cache, schemas)
        limits = ForEachLimits(max_items=LIMIT)
        self.runner = CommandRunner(
            self.ports.instances, cache, admission, SystemClock(), for_each=limits
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
        self.tasks = TaskService(self.runner, self.ports.queries, schemas)
        self.activities = ActivityService(self.runner)
        definitions = DefinitionService(self.ports.definitions, schemas)
        for document in (FROM_INPUT, FROM_TASK, FROM_SERVICE):
            definitions.publish(TENANT, document)

    def start(self, name: str, **input: Any) -> dict[str, Any]:  # noqa: A002
        view, _ = self.instances.start(StartInstance(TENANT, name, input=input))
        return view

    def count(self) -> int:
        return len(self.instances.list(TENANT, InstanceFilter(), limit=100).items)

    def open_tasks(self) -> list[dict[str, Any]]:
        return self.tasks.list(TENANT, TaskFilter(status="open")).items


def test_a_start_over_the_bound_is_refused_with_the_node_and_path_and_stores_nothing() -> None:
    app = App()
    with pytest.raises(ForEachTooLargeError) as refused:
        app.start("from-input", people=["a", "b", "c", "d"])
    error = refused.value
    assert (error.node_id, error.path, error.items, error.limit) == (
        "each",
        "$.nodes[1].for_each.items",
        4,
        LIMIT,
    )
    assert "WAYMARK_FOR_EACH_MAX_ITEMS" in str(error)
    assert app.count() == 0
    assert app.open_tasks() == []
    # Negative control: at the bound, the same start runs.
    view = app.start("from-input", people=["a", "b", "c"])
    assert view["status"] == "suspended"
    assert len(app.open_tasks()) == LIMIT


def test_a_task_completion_reaching_an_oversized_for_each_is_refused_and_the_task_stays_open():
    app = App()
    view = app.start("from-task")
    (task,) = app.open_tasks()
    before = app.instances.get(TENANT, UUID(view["id"]))
    too_many = CompleteTask(TENANT, str(task["id"]), outcome=None, data={"people": list("abcd")})
    with pytest.raises(ForEachTooLargeError):
        app.tasks.complete(too_many)
    after = app.instances.get(TENANT, UUID(view["id"]))
    assert after["version"] == before["version"]  # nothing of the command was stored
    assert [t["id"] for t in app.open_tasks()] == [task["id"]]
    fits = CompleteTask(TENANT, str(task["id"]), outcome=None, data={"people": list("ab")})
    app.tasks.complete(fits)
    assert sorted(t["assignee"] for t in app.open_tasks()) == ["a", "b"]


def test_a_service_result_reaching_an_oversized_for_each_fails_the_node_clearly() -> None:
    app = App()
    view = app.start("from-service")
    instance = app.ports.instances.get(UUID(view["id"]), TENANT)
    assert instance is not None
    (activity,) = instance.scheduled_activities()
    row = scheduled_row(TENANT, instance, activity)
    recorded = app.activities.record(row, ActionResult(ok=True, output={"people": list("abcd")}))
    assert recorded is True
    failed = app.instances.get(TENANT, instance.id)
    assert failed["status"] == "failed"
    assert failed["error"]["node_id"] == "each"
    assert "4 items, more than the limit of 3" in failed["error"]["message"]
    assert "WAYMARK_FOR_EACH_MAX_ITEMS" in failed["error"]["message"]
