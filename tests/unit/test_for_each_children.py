"""A `for_each` sub_workflow through the application session (in-memory ports): one child
instance per item; when `completion` holds, the children still running are cancelled."""

from __future__ import annotations

import os
from uuid import UUID

from application.admission import StartAdmission
from application.commands import CompleteTask, StartInstance
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.read_models import TaskFilter
from application.runner import CommandRunner
from application.tasks import TaskService
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.schemas import JsonSchemaValidator

TENANT = "acme"
CHILD = {
    "name": "quote",
    "nodes": [
        {"id": "ask", "type": "user_task", "role": "supplier", "assignee": "{{ input.who }}"},
        {"id": "done", "type": "end", "output": {"who": "input.who"}},
    ],
    "routes": [{"from": "ask", "to": "done"}],
}
PARENT = {
    "name": "first-quote-wins",
    "nodes": [
        {
            "id": "quotes",
            "type": "sub_workflow",
            "definition": "quote",
            "input": {"who": "supplier"},
            "result_var": "quotes",
            "for_each": {
                "items": "input.suppliers",
                "as": "supplier",
                "completion": "completed >= 1",
            },
        },
        {"id": "done", "type": "end", "output": {"quotes": "vars.quotes"}},
    ],
    "routes": [{"from": "quotes", "to": "done"}],
}


def test_one_child_per_item_and_the_rest_cancelled_when_completion_holds() -> None:
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, schemas)
    runner = CommandRunner(ports.instances, cache, admission, SystemClock())
    instances = InstanceService(
        runner,
        ports.instances,
        cache,
        ports.definitions,
        ports.queries,
        admission,
        KeyedIds(os.urandom(32)),
    )
    definitions = DefinitionService(ports.definitions, schemas)
    for document in (CHILD, PARENT):
        definitions.publish(TENANT, document)
    tasks = TaskService(runner, ports.queries, schemas)

    view, _ = instances.start(
        StartInstance(TENANT, "first-quote-wins", input={"suppliers": ["s1", "s2", "s3"]})
    )
    open_tasks = tasks.list(TENANT, TaskFilter(status="open")).items
    assert sorted(t["assignee"] for t in open_tasks) == ["s1", "s2", "s3"]
    children = [b["child_id"] for b in view["bookmarks"]]
    assert len(children) == 3

    s2 = next(t for t in open_tasks if t["assignee"] == "s2")
    tasks.complete(CompleteTask(TENANT, str(s2["id"]), outcome=None, user="s2"))

    parent = instances.get(TENANT, UUID(view["id"]))
    assert parent["status"] == "completed"
    assert parent["output"] == {"quotes": [None, {"who": "s2"}, None]}
    statuses = sorted(instances.get(TENANT, UUID(c))["status"] for c in children)
    assert statuses == ["cancelled", "cancelled", "completed"]
    assert tasks.list(TENANT, TaskFilter(status="open")).items == []
