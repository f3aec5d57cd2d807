"""Semantics of every node type, driven in memory through the domain engine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import engine
from domain.errors import (
    BookmarkNotFoundError,
    BookmarkNotOpenError,
    InstanceNotActiveError,
    InvalidOutcomeError,
    TaskAlreadyClaimedError,
    WrongBookmarkKindError,
)
from tests.unit.engine_support import (
    T0,
    FakeEnv,
    complete_bookmark,
    definition,
    event_names,
    only_open,
    replay,
    start,
    state,
)

END = {"id": "done", "type": "end"}


def approval_flow():
    return definition(
        [
            {"id": "manager", "type": "approval", "approver_role": "manager", "sla_hours": 24},
            {"id": "check", "type": "gateway"},
            {"id": "cfo", "type": "approval", "approver_role": "cfo"},
            {"id": "rejected", "type": "end", "status": "failed", "error": "rejected"},
            {"id": "done", "type": "end", "output": {"approved": "true", "amount": "input.amount"}},
        ],
        [
            {"from": "manager", "to": "check", "outcome": "approved"},
            {"from": "manager", "to": "rejected", "outcome": "rejected"},
            {"from": "check", "to": "cfo", "condition": "input.amount > 10000"},
            {"from": "check", "to": "done", "default": True},
            {"from": "cfo", "to": "done", "outcome": "approved"},
            {"from": "cfo", "to": "rejected", "outcome": "rejected"},
        ],
    )


def complete(instance, d, fake, outcome, data=None):
    task = only_open(instance, "task")
    complete_bookmark(instance, d, task.id, fake, outcome=outcome, data=data, by="u1")
    return task


def test_approval_creates_task_with_role_and_sla():
    fake = FakeEnv()
    instance = start(approval_flow(), fake, {"amount": 15000})
    task = only_open(instance, "task")
    assert (task.node_id, task.role, task.task_kind) == ("manager", "manager", "approval")
    assert task.due_at == T0 + timedelta(hours=24)
    assert instance.status == "suspended"


def test_gateway_takes_first_true_condition_then_default():
    d, fake = approval_flow(), FakeEnv()
    big = start(d, fake, {"amount": 15000})
    complete(big, d, fake, "approved")
    assert only_open(big, "task").node_id == "cfo"
    small = start(d, fake, {"amount": 50})
    complete(small, d, fake, "approved")
    assert small.status == "completed"
    assert small.output == {"approved": True, "amount": 50}


def test_rejection_ends_failed_with_error_message():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake, {"amount": 1})
    complete(instance, d, fake, "rejected")
    assert instance.status == "failed"
    assert instance.error["message"] == "rejected"


def test_approval_refuses_unknown_outcome_and_keeps_task_open():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake, {"amount": 1})
    with pytest.raises(InvalidOutcomeError):
        complete(instance, d, fake, "maybe")
    assert only_open(instance, "task").node_id == "manager"


def test_consumed_bookmark_cannot_be_resumed_again():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake, {"amount": 1})
    task = complete(instance, d, fake, "approved")
    with pytest.raises(BookmarkNotOpenError) as error:
        complete_bookmark(instance, d, task.id, fake, outcome="approved", by=None)
    assert error.value.bookmark.status == "consumed"


def test_unknown_bookmark_is_reported():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake)
    with pytest.raises(BookmarkNotFoundError):
        engine.resume(instance, d, "nope", payload={}, source="t", env=fake.env())


def test_gateway_without_match_fails_the_instance_with_the_error_recorded():
    d = definition(
        [
            {"id": "g", "type": "gateway"},
            {"id": "a", "type": "end"},
            {"id": "b", "type": "end"},
        ],
        [
            {"from": "g", "to": "a", "condition": "input.x == 1"},
            {"from": "g", "to": "b", "condition": "true"},
        ],
    )
    ok = start(d, input={"x": 1})
    assert ok.status == "completed"
    broken = start(d, input={})  # input.x is missing: the condition cannot be evaluated
    assert broken.status == "failed"
    assert broken.error["node_id"] == "g"
    assert "has no field 'x'" in broken.error["message"]


def test_set_assigns_variables_from_expressions():
    d = definition(
        [
            {"id": "s", "type": "set", "variables": {"total": "input.a * 2", "tag": "'x'"}},
            {"id": "done", "type": "end", "output": {"total": "vars.total"}},
        ],
        [{"from": "s", "to": "done"}],
    )
    instance = start(d, input={"a": 21})
    assert instance.variables == {"total": 42, "tag": "x"}
    assert instance.output == {"total": 42}


def parallel_flow():
    return definition(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "left", "type": "approval", "assignee": "{{ input.who }}"},
            {"id": "right", "type": "set", "variables": {"r": "1"}},
            {"id": "join", "type": "join"},
            END,
        ],
        [
            {"from": "fork", "to": "left"},
            {"from": "fork", "to": "right"},
            {"from": "left", "to": "join"},
            {"from": "right", "to": "join"},
            {"from": "join", "to": "done"},
        ],
    )


def test_parallel_join_waits_for_every_branch():
    d, fake = parallel_flow(), FakeEnv()
    instance = start(d, fake, {"who": "ann"})
    assert instance.join_arrivals == {"join": [3]}  # the `right` branch arrived
    task = only_open(instance, "task")
    assert task.assignee == "ann"
    assert instance.status == "suspended"
    complete(instance, d, fake, "approved")
    assert instance.status == "completed"
    assert event_names(instance).count("JoinCompleted") == 1


def test_user_task_outcomes_and_result_var():
    d, fake = (
        definition(
            [
                {
                    "id": "form",
                    "type": "user_task",
                    "role": "clerk",
                    "result_var": "review",
                    "outcomes": ["accept", "reject"],
                    "form": {"type": "object"},
                },
                {"id": "no", "type": "end", "status": "failed"},
                END,
            ],
            [
                {"from": "form", "to": "done", "outcome": "accept"},
                {"from": "form", "to": "no", "outcome": "reject"},
            ],
        ),
        FakeEnv(),
    )
    instance = start(d, fake)
    assert only_open(instance).form == {"type": "object"}
    with pytest.raises(InvalidOutcomeError):
        complete(instance, d, fake, "approved")
    complete(instance, d, fake, "accept", {"note": "fine"})
    assert instance.status == "completed"
    assert instance.variables["review"]["data"] == {"note": "fine"}


def wait_flow(**wait):
    return definition(
        [
            {
                "id": "w",
                "type": "wait",
                "event": "payment.settled",
                "result_var": "payment",
                **wait,
            },
            {"id": "late", "type": "end", "status": "failed"},
            END,
        ],
        [
            {"from": "w", "to": "done"},
            {"from": "w", "to": "late", "outcome": "timeout"},
        ],
    )


def test_wait_resumes_with_payload_and_correlation():
    d, fake = wait_flow(correlation="input.order", timeout="PT1H"), FakeEnv()
    instance = start(d, fake, {"order": 7})
    bookmark = only_open(instance, "wait")
    assert (bookmark.event_type, bookmark.correlation) == ("payment.settled", "7")
    assert bookmark.token.startswith("tok-")
    assert bookmark.due_at == T0 + timedelta(hours=1)
    engine.resume(instance, d, bookmark.id, payload={"paid": 1}, source="t", env=fake.env())
    assert instance.status == "completed"
    assert instance.variables["payment"] == {"paid": 1}


def test_wait_timeout_follows_the_timeout_route():
    d, fake = wait_flow(timeout="PT1H"), FakeEnv()
    instance = start(d, fake)
    fake.advance(hours=1)
    engine.fire_timer(instance, d, only_open(instance).id, fake.env())
    assert instance.status == "failed"
    assert instance.ended_at == T0 + timedelta(hours=1)


def test_timer_waits_for_duration_or_until():
    d, fake = (
        definition(
            [{"id": "t", "type": "timer", "duration": "PT30M"}, END], [{"from": "t", "to": "done"}]
        ),
        FakeEnv(),
    )
    instance = start(d, fake)
    assert only_open(instance, "timer").due_at == T0 + timedelta(minutes=30)
    with pytest.raises(WrongBookmarkKindError):
        engine.claim_task(instance, only_open(instance).id, "u")
    engine.fire_timer(instance, d, only_open(instance).id, fake.env())
    assert instance.status == "completed"
    until = definition(
        [{"id": "t", "type": "timer", "until": "input.at"}, END], [{"from": "t", "to": "done"}]
    )
    later = start(until, fake, {"at": "2027-01-01T00:00:00+00:00"})
    assert only_open(later).due_at.year == 2027


def test_sub_workflow_opens_child_bookmark_and_resumes_with_output():
    d, fake = (
        definition(
            [
                {
                    "id": "child",
                    "type": "sub_workflow",
                    "definition": "kyc",
                    "input": {"who": "input.name"},
                    "result_var": "kyc",
                },
                {"id": "bad", "type": "end", "status": "failed"},
                END,
            ],
            [{"from": "child", "to": "done"}, {"from": "child", "to": "bad", "outcome": "error"}],
        ),
        FakeEnv(),
    )
    instance = start(d, fake, {"name": "ann"})
    bookmark = only_open(instance, "child")
    assert (bookmark.child_definition, bookmark.child_input) == ("kyc", {"who": "ann"})
    engine.child_finished(
        instance,
        d,
        bookmark.id,
        status="completed",
        output={"ok": 1},
        error=None,
        env=fake.env(),
    )
    assert instance.status == "completed" and instance.variables["kyc"] == {"ok": 1}
    failing = start(d, fake, {"name": "bob"})
    engine.child_finished(
        failing,
        d,
        only_open(failing).id,
        status="failed",
        output=None,
        error={"message": "boom"},
        env=fake.env(),
    )
    assert failing.status == "failed"
    assert failing.error["node_id"] == "bad"  # it followed the error route to `bad`


def test_cancel_closes_open_work_and_blocks_further_commands():
    d, fake = parallel_flow(), FakeEnv()
    instance = start(d, fake, {"who": "ann"})
    engine.cancel(instance, "not needed", fake.env())
    assert instance.status == "cancelled" and instance.open_bookmarks() == []
    with pytest.raises(InstanceNotActiveError):
        engine.cancel(instance, "again", fake.env())


def test_loop_without_wait_hits_the_step_limit():
    d = definition(
        [
            {"id": "inc", "type": "set", "variables": {"i": "get(vars, 'i', 0) + 1"}},
            {"id": "g", "type": "gateway"},
            END,
        ],
        [
            {"from": "inc", "to": "g"},
            {"from": "g", "to": "done", "condition": "vars.i > 100000"},
            {"from": "g", "to": "inc", "default": True},
        ],
    )
    instance = start(d)
    assert instance.status == "failed"
    assert "step limit" in instance.error["message"]


def test_replaying_events_rebuilds_the_same_state():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake, {"amount": 15000})
    complete(instance, d, fake, "approved")
    complete(instance, d, fake, "approved")
    assert state(replay(instance)) == state(instance)


def test_a_claimed_task_cannot_be_claimed_by_someone_else():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake, {"amount": 1})
    task = only_open(instance, "task")
    engine.claim_task(instance, task.id, "ann")
    engine.claim_task(instance, task.id, "ann")  # a retried claim is harmless
    with pytest.raises(TaskAlreadyClaimedError):
        engine.claim_task(instance, task.id, "bob")
    engine.delegate_task(instance, task.id, "bob", by="ann")
    engine.claim_task(instance, task.id, "bob")
    assert instance.bookmarks[task.id].claimed_by == "bob"
    assert event_names(instance).count("TaskClaimed") == 2


def test_top_level_output_applies_when_the_end_node_has_none():
    d = definition(
        [
            {"id": "g", "type": "gateway"},
            {"id": "plain", "type": "end"},
            {"id": "own", "type": "end", "output": {"mine": "1"}},
        ],
        [
            {"from": "g", "to": "own", "condition": "input.own"},
            {"from": "g", "to": "plain", "default": True},
        ],
        output={"total": "input.n * 2"},
    )
    assert start(d, input={"own": False, "n": 4}).output == {"total": 8}
    assert start(d, input={"own": True, "n": 4}).output == {"mine": 1}
