"""Publish-time checks of `for_each`, `compensation`, `compensate` and `cancelled` routes,
each problem with its JSON path."""

from __future__ import annotations

from typing import Any

from domain.validation import validate_document


def problems(nodes: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, str]:
    document = {"name": "x", "nodes": nodes, "routes": routes}
    return {p.path: p.code for p in validate_document(document)}


END = {"id": "done", "type": "end"}


def test_a_valid_for_each_on_each_node_type_publishes():
    spec = {"items": "input.xs", "as": "x", "mode": "sequential", "completion": "completed > 1"}
    for node in (
        {"type": "service_task", "action": {"type": "noop"}},
        {"type": "user_task", "role": "r"},
        {"type": "approval", "approver_role": "r"},
        {"type": "sub_workflow", "definition": "child"},
    ):
        assert (
            problems([{"id": "n", **node, "for_each": spec}, END], [{"from": "n", "to": "done"}])
            == {}
        )


def test_for_each_field_problems_name_their_paths():
    node = {
        "id": "n",
        "type": "approval",
        "approver_role": "r",
        "for_each": {"as": "index", "mode": "all", "completion": "1 +", "extra": 1},
    }
    assert problems([node, END], [{"from": "n", "to": "done"}]) == {
        "$.nodes[0].for_each.items": "missing_field",
        "$.nodes[0].for_each.as": "invalid_value",
        "$.nodes[0].for_each.mode": "invalid_value",
        "$.nodes[0].for_each.completion": "invalid_expression",
        "$.nodes[0].for_each.extra": "unknown_field",
    }


def test_for_each_only_on_the_four_node_types():
    node = {"id": "n", "type": "wait", "event": "e", "for_each": {"items": "[1]"}}
    assert problems([node, END], [{"from": "n", "to": "done"}]) == {
        "$.nodes[0].for_each": "unknown_field"
    }


def test_a_for_each_node_needs_a_route_without_outcome_and_names_only_error():
    node = {"id": "n", "type": "approval", "approver_role": "r", "for_each": {"items": "[1]"}}
    found = problems(
        [node, END, {"id": "no", "type": "end"}],
        [
            {"from": "n", "to": "done", "outcome": "approved"},
            {"from": "n", "to": "no", "outcome": "error"},
        ],
    )
    assert found == {"$.nodes[0]": "no_outgoing_route", "$.routes[0].outcome": "invalid_value"}


def test_compensation_is_an_action_and_compensate_a_boolean():
    nodes = [
        {"id": "s", "type": "service_task", "action": {"type": "noop"}, "compensation": {"url": 1}},
        {"id": "undo", "type": "compensate"},
        {"id": "done", "type": "end", "compensate": "yes"},
    ]
    found = problems(nodes, [{"from": "s", "to": "undo"}, {"from": "undo", "to": "done"}])
    assert found == {
        "$.nodes[0].compensation.type": "missing_field",
        "$.nodes[2].compensate": "invalid_type",
    }


def test_a_compensate_node_needs_an_outgoing_route():
    nodes = [{"id": "undo", "type": "compensate"}]
    assert problems(nodes, [])["$.nodes[0]"] == "no_outgoing_route"


def test_task_routes_may_name_cancelled_and_other_nodes_restrict_as_before():
    task = {"id": "t", "type": "user_task", "role": "r"}
    other = {"id": "gone", "type": "end"}
    assert (
        problems(
            [task, END, other],
            [{"from": "t", "to": "done"}, {"from": "t", "to": "gone", "outcome": "cancelled"}],
        )
        == {}
    )
