"""Who may claim, complete and delegate a task, admin overrides, and separation of duties
(`domain.engine.task_access`), on the engine alone (no I/O)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from domain import engine, origin
from domain.definition import Definition
from domain.engine.task_access import (
    Actor,
    SeparationOfDutiesError,
    TaskClaimedByAnotherError,
    TaskNotPermittedError,
)
from domain.errors import TaskAlreadyClaimedError
from domain.instance import WorkflowInstance
from domain.validation import validate_document
from tests.unit.engine_support import FakeEnv, complete_bookmark, definition, replay_stored

ANN = Actor("ann", "user", frozenset({"operator", "manager"}))
MALLORY = Actor("mallory", "user", frozenset({"operator", "manager"}))
BOB = Actor("bob", "user", frozenset({"operator", "director"}))
EVE = Actor("eve", "user", frozenset({"operator"}))  # no business role
ADMIN = Actor("root", "user", frozenset({"admin"}))
END = {"id": "done", "type": "end"}
NO = {"id": "no", "type": "end", "status": "failed", "error": "rejected"}


def four_eyes(**second: Any) -> Definition:
    nodes = [
        {"id": "manager_approval", "type": "approval", "approver_role": "manager"},
        {"id": "cfo_approval", "type": "approval", "approver_role": "manager", **second},
        END,
    ]
    routes = [
        {"from": "manager_approval", "to": "cfo_approval", "outcome": "approved"},
        {"from": "cfo_approval", "to": "done", "outcome": "approved"},
        {"from": "manager_approval", "to": "no", "outcome": "rejected"},
        {"from": "cfo_approval", "to": "no", "outcome": "rejected"},
    ]
    return definition([*nodes, NO], routes)


def one_task(**node: Any) -> Definition:
    nodes = [{"id": "a", "type": "approval", **node}, END, NO]
    routes = [
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "no", "outcome": "rejected"},
    ]
    return definition(nodes, routes)


def started(d: Definition, fake: FakeEnv, by: str | None = "starter") -> WorkflowInstance:
    instance = WorkflowInstance(
        id=uuid4(),
        tenant="t1",
        definition=d.name,
        definition_version=d.version,
        input={},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
        started_by=origin.by_api("key-svc", user=by),
    )
    engine.start(instance, d, fake.env())
    return instance


def open_task(instance: WorkflowInstance) -> str:
    (task,) = [b for b in instance.bookmarks.values() if b.is_open]
    return task.id


def complete(instance: WorkflowInstance, d: Definition, actor: Actor, fake: FakeEnv) -> None:
    engine.complete_task(
        instance,
        d,
        open_task(instance),
        outcome="approved",
        data=None,
        comment=None,
        completed_by=actor.id,
        env=fake.env(),
        actor=actor,
    )


def last_event(instance: WorkflowInstance, name: str) -> Any:
    return [e for e in instance.pending_events if type(e).__name__ == name][-1]


def test_ann_claims_and_mallory_cannot_complete_nor_claim() -> None:
    d, fake = one_task(approver_role="manager"), FakeEnv()
    instance = started(d, fake)
    task = open_task(instance)
    engine.claim_task(instance, task, "ann", d, actor=ANN)
    with pytest.raises(TaskClaimedByAnotherError):
        complete(instance, d, MALLORY, fake)
    with pytest.raises(TaskAlreadyClaimedError):
        engine.claim_task(instance, task, "mallory", d, actor=MALLORY)
    complete(instance, d, ANN, fake)
    event = last_event(instance, "TaskCompleted")
    assert event.completed_by == "ann"
    assert event.actor == {"kind": "user", "id": "ann"}
    assert replay_stored(instance).bookmarks[task].completed_by == "ann"


def test_only_the_assignee_or_a_candidate_role_may_act() -> None:
    d, fake = one_task(approver_role="manager"), FakeEnv()
    instance = started(d, fake)
    with pytest.raises(TaskNotPermittedError):
        engine.claim_task(instance, open_task(instance), "eve", d, actor=EVE)
    with pytest.raises(TaskNotPermittedError):
        complete(instance, d, EVE, fake)
    d2 = one_task(assignee="eve")
    assigned = started(d2, fake)
    with pytest.raises(TaskNotPermittedError):
        complete(assigned, d2, ANN, fake)  # a manager, but the task is eve's
    complete(assigned, d2, EVE, fake)


def test_claiming_for_someone_else_is_for_admins_only() -> None:
    d, fake = one_task(approver_role="manager"), FakeEnv()
    instance = started(d, fake)
    with pytest.raises(TaskNotPermittedError):
        engine.claim_task(instance, open_task(instance), "mallory", d, actor=ANN)
    engine.claim_task(instance, open_task(instance), "ann", d, actor=ADMIN)
    assert last_event(instance, "TaskClaimed").actor == {
        "kind": "user",
        "id": "root",
        "override": "admin",
    }


def test_an_admin_override_is_recorded_as_such() -> None:
    d, fake = one_task(approver_role="manager"), FakeEnv()
    instance = started(d, fake)
    engine.claim_task(instance, open_task(instance), "ann", d, actor=ANN)
    complete(instance, d, ADMIN, fake)
    event = last_event(instance, "TaskCompleted")
    assert event.actor == {"kind": "user", "id": "root", "override": "admin"}
    assert event.completed_by == "root"


def test_a_candidate_acting_normally_is_no_override_even_when_admin() -> None:
    d, fake = one_task(approver_role="admin"), FakeEnv()
    instance = started(d, fake)
    complete(instance, d, ADMIN, fake)
    assert "override" not in last_event(instance, "TaskCompleted").actor


def test_after_escalation_the_escalation_role_may_act() -> None:
    d = one_task(approver_role="manager", sla_hours=1, escalate_to_role="director")
    fake = FakeEnv()
    instance = started(d, fake)
    with pytest.raises(TaskNotPermittedError):
        complete(instance, d, BOB, fake)  # not yet escalated
    fake.advance(hours=2)
    assert engine.escalate(instance, d, open_task(instance), fake.env()) == "escalated"
    complete(instance, d, BOB, fake)


def test_delegation_is_recorded_and_checked() -> None:
    d, fake = one_task(approver_role="manager"), FakeEnv()
    instance = started(d, fake)
    task = open_task(instance)
    with pytest.raises(TaskNotPermittedError):
        engine.delegate_task(instance, task, "eve", "eve", actor=EVE)
    engine.delegate_task(instance, task, "eve", "ann", actor=ANN)
    event = last_event(instance, "TaskDelegated")
    assert (event.assignee, event.delegated_by, event.actor) == (
        "eve",
        "ann",
        {"kind": "user", "id": "ann"},
    )
    complete(instance, d, EVE, fake)  # the new assignee


def test_separation_of_duties_refuses_the_earlier_approver() -> None:
    d, fake = four_eyes(distinct_from=["manager_approval"]), FakeEnv()
    instance = started(d, fake)
    complete(instance, d, ANN, fake)  # manager_approval
    with pytest.raises(SeparationOfDutiesError) as refused:
        complete(instance, d, ANN, fake)
    assert refused.value.code == "separation-of-duties"
    with pytest.raises(SeparationOfDutiesError):
        engine.claim_task(instance, open_task(instance), "ann", d, actor=ANN)
    with pytest.raises(SeparationOfDutiesError):  # no override for admins
        engine.claim_task(instance, open_task(instance), "ann", d, actor=ADMIN)
    complete(instance, d, MALLORY, fake)
    assert instance.status == "completed"


def test_without_distinct_from_the_same_person_may_approve_twice() -> None:
    # The negative control of the previous test.
    d, fake = four_eyes(), FakeEnv()
    instance = started(d, fake)
    complete(instance, d, ANN, fake)
    complete(instance, d, ANN, fake)
    assert instance.status == "completed"


@pytest.mark.parametrize(
    "field", [{"distinct_from": ["$starter"]}, {"distinct_from_starter": True}]
)
def test_separation_of_duties_refuses_the_starter(field: dict[str, Any]) -> None:
    d, fake = one_task(approver_role="manager", **field), FakeEnv()
    instance = started(d, fake, by="ann")
    with pytest.raises(SeparationOfDutiesError, match="starter"):
        complete(instance, d, ANN, fake)
    complete(instance, d, MALLORY, fake)


def test_a_trusted_path_without_actor_still_keeps_separation_of_duties() -> None:
    d, fake = four_eyes(distinct_from=["manager_approval"]), FakeEnv()
    instance = started(d, fake)
    complete(instance, d, ANN, fake)
    with pytest.raises(SeparationOfDutiesError):
        complete_bookmark(instance, d, open_task(instance), fake, outcome="approved", by="ann")


def _problems(**second: Any) -> list[tuple[str, str]]:
    document = {
        "name": "four-eyes",
        "nodes": [
            {"id": "manager_approval", "type": "approval", "approver_role": "manager"},
            {"id": "cfo_approval", "type": "approval", "approver_role": "cfo", **second},
            {"id": "note", "type": "timer", "duration": "PT1M"},
            END,
            NO,
        ],
        "routes": [
            {"from": "manager_approval", "to": "cfo_approval", "outcome": "approved"},
            {"from": "cfo_approval", "to": "note", "outcome": "approved"},
            {"from": "manager_approval", "to": "no", "outcome": "rejected"},
            {"from": "cfo_approval", "to": "no", "outcome": "rejected"},
            {"from": "note", "to": "done"},
        ],
    }
    return [(p.path, p.code) for p in validate_document(document)]


def test_distinct_from_is_validated_at_publish_with_json_paths() -> None:
    assert _problems(distinct_from=["manager_approval", "$starter"]) == []
    assert _problems(distinct_from=["nope"]) == [("$.nodes[1].distinct_from[0]", "unknown_node")]
    assert _problems(distinct_from=["$starter", "cfo_approval"]) == [
        ("$.nodes[1].distinct_from[1]", "invalid_reference")
    ]
    assert _problems(distinct_from=["note"]) == [
        ("$.nodes[1].distinct_from[0]", "invalid_reference")
    ]
    assert _problems(distinct_from="manager_approval")[0][0] == "$.nodes[1].distinct_from"
    assert _problems(distinct_from_starter="yes")[0][0] == "$.nodes[1].distinct_from_starter"
