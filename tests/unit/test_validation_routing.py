"""Publish-time rules of interleaved parallel splits (WCP-17) and milestones (WCP-18), each
problem with its JSON path (domain/validation/routing.py)."""

from __future__ import annotations

from typing import Any

from tests.unit.validation_support import assert_only, found


def doc(nodes: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "demo", "nodes": nodes, "routes": routes}


def interleaved(**fork: Any) -> dict[str, Any]:
    return doc(
        [
            {"id": "fork", "type": "parallel", "interleaved": True, **fork},
            {"id": "a", "type": "wait", "event": "a"},
            {"id": "b", "type": "wait", "event": "b"},
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        [
            {"from": "fork", "to": "a"},
            {"from": "fork", "to": "b"},
            {"from": "a", "to": "meet"},
            {"from": "b", "to": "meet"},
            {"from": "meet", "to": "done"},
        ],
    )


def test_an_interleaved_parallel_with_or_without_an_order_is_valid():
    assert found(interleaved()) == []
    assert found(interleaved(order="input.order")) == []


def test_the_fields_are_typed():
    assert_only(interleaved(interleaved="yes"), "invalid_type", "$.nodes[0].interleaved")
    assert_only(interleaved(order="input.("), "invalid_expression", "$.nodes[0].order")


def test_an_order_without_interleaved_is_refused():
    d = interleaved(order="input.order")
    del d["nodes"][0]["interleaved"]
    assert_only(d, "invalid_value", "$.nodes[0].order")


def test_an_interleaved_parallel_not_closed_by_a_join_is_refused():
    d = interleaved()
    d["nodes"][3] = {"id": "meet", "type": "set", "variables": {"x": "1"}}
    assert ("join_mismatch", "$.nodes[0]") in found(d)


def test_its_join_cannot_continue_after_fewer_branches():
    d = interleaved()
    d["nodes"][3]["wait_for"] = 1
    assert_only(d, "invalid_value", "$.nodes[3].wait_for")


def test_an_arrival_at_its_join_from_outside_the_branches_is_refused():
    d = interleaved()
    d["nodes"].insert(0, {"id": "pre", "type": "parallel"})
    d["routes"] += [{"from": "pre", "to": "fork"}, {"from": "pre", "to": "meet"}]
    assert ("join_mismatch", "$.routes[6]") in found(d)


def test_two_routes_to_the_same_first_node_are_refused():
    d = interleaved()
    d["routes"].insert(2, {"from": "fork", "to": "a", "name": "again"})
    assert ("duplicate_route", "$.routes[2]") in found(d)


def test_a_branch_leading_back_into_the_split_before_the_join_is_refused():
    d = interleaved()
    d["nodes"][1] = {"id": "a", "type": "user_task", "role": "r", "outcomes": ["ok", "redo"]}
    d["routes"][2] = {"from": "a", "to": "meet", "outcome": "ok"}
    d["routes"].append({"from": "a", "to": "fork", "outcome": "redo"})
    assert ("invalid_value", "$.routes[5]") in found(d)


def milestone(dependent: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    return doc(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "m", "type": "wait", "event": "m"},
            dependent,
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
            *extra,
        ],
        [
            {"from": "fork", "to": "m"},
            {"from": "fork", "to": dependent["id"]},
            {"from": "m", "to": "meet"},
            {"from": dependent["id"], "to": "meet"},
            {"from": "meet", "to": "done"},
        ],
    )


def test_a_milestone_on_a_task_an_approval_or_a_wait_is_valid():
    assert found(milestone({"id": "d", "type": "user_task", "role": "r", "milestone": "m"})) == []
    assert found(milestone({"id": "d", "type": "wait", "event": "e", "milestone": "m"})) == []
    approval = {"id": "d", "type": "approval", "approver_role": "r", "milestone": "m"}
    assert found(milestone(approval)) == []


def test_a_milestone_on_another_node_type_is_an_unknown_field():
    d = milestone({"id": "d", "type": "set", "variables": {"x": "1"}, "milestone": "m"})
    assert_only(d, "unknown_field", "$.nodes[2].milestone")


def test_the_milestone_must_name_another_node_that_waits():
    d = milestone({"id": "d", "type": "wait", "event": "e", "milestone": "nope"})
    assert_only(d, "unknown_node", "$.nodes[2].milestone")
    d = milestone({"id": "d", "type": "wait", "event": "e", "milestone": "d"})
    assert_only(d, "invalid_reference", "$.nodes[2].milestone")
    d = milestone({"id": "d", "type": "wait", "event": "e", "milestone": "fork"})
    assert_only(d, "invalid_reference", "$.nodes[2].milestone")
    d = milestone({"id": "d", "type": "wait", "event": "e", "milestone": 3})
    assert_only(d, "invalid_type", "$.nodes[2].milestone")


def test_a_dependent_needs_a_way_out_when_it_is_withdrawn():
    approval = {"id": "d", "type": "approval", "approver_role": "r", "milestone": "m"}
    d = milestone(approval)
    d["routes"][3] = {"from": "d", "to": "meet", "outcome": "approved"}
    d["routes"].append({"from": "d", "to": "meet", "outcome": "rejected"})
    assert ("no_outgoing_route", "$.nodes[2]") in found(d)
    d["routes"].append({"from": "d", "to": "meet", "outcome": "cancelled"})
    assert ("no_outgoing_route", "$.nodes[2]") not in found(d)


def test_a_dependent_with_for_each_is_refused():
    task = {
        "id": "d",
        "type": "user_task",
        "role": "r",
        "milestone": "m",
        "for_each": {"items": "input.xs", "as": "item", "mode": "parallel"},
    }
    assert ("invalid_value", "$.nodes[2].milestone") in found(milestone(task))


def test_a_split_inside_a_branch_must_be_closed_before_the_interleaved_join():
    d = interleaved()
    d["nodes"][1] = {"id": "a", "type": "parallel"}
    d["nodes"] += [
        {"id": "x", "type": "wait", "event": "x"},
        {"id": "y", "type": "wait", "event": "y"},
    ]
    d["routes"][2] = {"from": "a", "to": "x"}
    d["routes"] += [
        {"from": "a", "to": "y"},
        {"from": "x", "to": "meet"},
        {"from": "y", "to": "meet"},
    ]
    assert ("invalid_value", "$.nodes[1]") in found(d)
    # negative control: closed inside the branch by a join of its own, it is fine
    d["nodes"].append({"id": "xy", "type": "join"})
    d["routes"][-2:] = [{"from": "x", "to": "xy"}, {"from": "y", "to": "xy"}]
    d["routes"].append({"from": "xy", "to": "meet"})
    assert found(d) == []


def test_a_non_interrupting_boundary_leading_into_the_branches_is_refused():
    d = interleaved()
    # a reminder of branch a that starts branch b's first node while a still waits
    d["nodes"][1]["boundary"] = [{"timer": "PT1H", "interrupting": False, "to": "b"}]
    assert_only(d, "invalid_value", "$.nodes[1].boundary[0].interrupting")
    # interrupting, it would run branch b twice (now, and again as the next branch)
    d["nodes"][1]["boundary"] = [{"timer": "PT1H", "interrupting": True, "to": "b"}]
    assert_only(d, "invalid_value", "$.nodes[1].boundary[0].to")


def test_an_interrupting_boundary_within_its_own_branch_is_valid():
    d = interleaved()
    d["nodes"].insert(3, {"id": "escalate", "type": "wait", "event": "esc"})
    d["nodes"][1]["boundary"] = [{"timer": "PT1H", "to": "escalate"}]
    d["routes"].append({"from": "escalate", "to": "meet"})
    assert found(d) == []  # an escalation path of branch a into the join
