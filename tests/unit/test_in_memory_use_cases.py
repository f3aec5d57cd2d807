"""The application services on the in-memory ports: use cases run with no database.

Also the commit step: listeners get the committed (typed) events, a different Committer
plugs in without touching the use cases, and a failed group of PendingCommits splits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from application.admission import StartAdmission
from application.commands import CompleteTask, StartInstance
from application.commit import ImmediateCommitter
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.ports import ConcurrencyConflictError, PendingCommit
from application.read_models import InstanceFilter, Projection, TaskFilter
from application.runner import CommandRunner
from application.tasks import TaskService
from domain.instance import WorkflowInstance
from infrastructure.clock import SystemClock
from infrastructure.memory import MemoryPorts
from infrastructure.schemas import JsonSchemaValidator

TENANT = "acme"

TWO_APPROVALS = {
    "name": "two-approvals",
    "nodes": [
        {"id": "manager", "type": "approval", "approver_role": "manager"},
        {"id": "finance", "type": "approval", "approver_role": "finance"},
        {"id": "no", "type": "end", "status": "failed"},
        {"id": "done", "type": "end", "output": {"amount": "input.amount"}},
    ],
    "routes": [
        {"from": "manager", "to": "finance", "outcome": "approved"},
        {"from": "manager", "to": "no", "outcome": "rejected"},
        {"from": "finance", "to": "done", "outcome": "approved"},
        {"from": "finance", "to": "no", "outcome": "rejected"},
    ],
}
CHILD = {
    "name": "double",
    "nodes": [
        {"id": "double", "type": "set", "variables": {"doubled": "input.n * 2"}},
        {"id": "done", "type": "end", "output": {"doubled": "vars.doubled"}},
    ],
    "routes": [{"from": "double", "to": "done"}],
}
PARENT = {
    "name": "calls-double",
    "nodes": [
        {
            "id": "call",
            "type": "sub_workflow",
            "definition": "double",
            "input": {"n": "input.n"},
            "result_var": "child",
        },
        {"id": "done", "type": "end", "output": {"got": "vars.child.doubled"}},
    ],
    "routes": [{"from": "call", "to": "done"}],
}


class RecordingCommitter(ImmediateCommitter):
    """The default committer, remembering what it was given."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.seen: list[PendingCommit] = []

    def commit(self, pending: PendingCommit) -> None:
        self.seen.append(pending)
        super().commit(pending)


@dataclass
class App:
    ports: MemoryPorts
    runner: CommandRunner
    committer: RecordingCommitter
    instances: InstanceService
    tasks: TaskService


@pytest.fixture
def app() -> App:
    ports = MemoryPorts.build()
    schemas = JsonSchemaValidator()
    cache = DefinitionCache(ports.definitions)
    admission = StartAdmission(ports.definitions, cache, schemas)
    committer = RecordingCommitter(ports.instances)
    runner = CommandRunner(ports.instances, cache, admission, SystemClock(), committer=committer)
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
    for document in (TWO_APPROVALS, CHILD, PARENT):
        definitions.publish(TENANT, document)
    return App(ports, runner, committer, instances, TaskService(runner, ports.queries, schemas))


def _open_task(app: App, role: str) -> str:
    page = app.tasks.list(TENANT, TaskFilter(role=role, status="open"))
    assert len(page.items) == 1, page.items
    return str(page.items[0]["id"])


def test_start_complete_two_tasks_completed_without_a_database(app: App) -> None:
    # Given a started two-approval instance
    view, created = app.instances.start(
        StartInstance(TENANT, "two-approvals", input={"amount": 120}, idempotency_key="po-1")
    )
    assert created and view["status"] == "suspended"  # waiting for people
    instance_id = UUID(view["id"])

    # When the manager and then finance approve
    for role in ("manager", "finance"):
        task = _open_task(app, role)
        app.tasks.complete(CompleteTask(TENANT, task, outcome="approved", user=f"{role}-1"))

    # Then the instance completed, and every read model says so
    done = app.instances.get(TENANT, instance_id)
    assert (done["status"], done["output"]) == ("completed", {"amount": 120})
    assert app.tasks.list(TENANT, TaskFilter(status="open")).items == []
    assert len(app.tasks.list(TENANT, TaskFilter(status="completed")).items) == 2
    listed = app.instances.list(TENANT, InstanceFilter(status="completed"))
    assert [item["id"] for item in listed.items] == [str(instance_id)]
    entries, _ = app.instances.history(TENANT, instance_id)
    types = [entry.type for entry in entries]
    assert types[0] == "Started" and types[-1] == "Completed"

    # And the same idempotency key answers with the same instance, creating nothing
    again, created = app.instances.start(
        StartInstance(TENANT, "two-approvals", input={"amount": 120}, idempotency_key="po-1")
    )
    assert not created and again["id"] == view["id"]


def test_a_child_workflow_settles_in_the_parents_commit(app: App) -> None:
    view, _ = app.instances.start(StartInstance(TENANT, "calls-double", input={"n": 21}))

    assert (view["status"], view["output"]) == ("completed", {"got": 42})
    # One command, one PendingCommit holding both instances' events and rows.
    pending = app.committer.seen[-1]
    assert len(pending.instances) == 2
    assert {row.definition for row in pending.projection.instances} == {"calls-double", "double"}
    assert {e.originator_id for e in pending.events} == pending.instance_ids


def test_listeners_receive_the_committed_events_typed_and_in_order(app: App) -> None:
    received: list[list[Any]] = []
    app.runner.on_commit.append(received.append)

    view, _ = app.instances.start(StartInstance(TENANT, "two-approvals", input={"amount": 1}))

    assert len(received) == 1
    events = received[0]
    assert all(isinstance(e, WorkflowInstance.Event) for e in events)
    assert isinstance(events[0], WorkflowInstance.Started)
    assert any(isinstance(e, WorkflowInstance.BookmarkCreated) for e in events)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert list(app.committer.seen[-1].events) == events
    # Prepared commits took the events: the aggregates' queues are empty.
    assert all(not i.pending_events for i in app.committer.seen[-1].instances)
    assert str(events[0].originator_id) == view["id"]


def test_a_failed_group_save_splits_into_the_commits_that_can_still_be_saved(app: App) -> None:
    # Given two prepared commits: one fresh, one decided on an instance that moved on since
    first, _ = app.instances.start(StartInstance(TENANT, "two-approvals", input={"amount": 1}))
    second, _ = app.instances.start(StartInstance(TENANT, "two-approvals", input={"amount": 2}))
    store = app.ports.instances
    fresh = store.get(UUID(first["id"]))
    stale = store.get(UUID(second["id"]))
    current = store.get(UUID(second["id"]))
    for instance in (fresh, stale, current):
        instance.set_variables("x", {"v": 1})
    store.save([current], Projection())
    ok = _pending(fresh)
    lost = _pending(stale)

    # When a group committer saves both in one transaction, the whole group fails
    with pytest.raises(ConcurrencyConflictError) as raised:
        store.save([*ok.events, *lost.events], Projection())
    error = raised.value

    # Then the error names the commit that caused it, and the other one saves on its own
    assert not ok.involves(error) and lost.involves(error)
    ImmediateCommitter(store).commit(ok)
    assert store.get(fresh.id).version == fresh.version
    assert store.get(stale.id).version == current.version


def _pending(instance: WorkflowInstance) -> PendingCommit:
    return PendingCommit((instance,), tuple(instance.collect_events()), Projection())  # type: ignore[arg-type]
