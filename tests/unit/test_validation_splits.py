"""Publish-time rules of inclusive gateways, N-of-M joins and branch ends, each problem with
its JSON path (domain/validation/splits.py)."""

from __future__ import annotations

from typing import Any

from tests.unit.validation_support import assert_only, found


def doc(nodes: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "demo", "nodes": nodes, "routes": routes}


def inclusive(join: dict[str, Any] | None = None) -> dict[str, Any]:
    return doc(
        [
            {"id": "choose", "type": "inclusive"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            {"id": "b", "type": "set", "variables": {"b": "1"}},
            join or {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        [
            {"from": "choose", "to": "a", "condition": "input.a"},
            {"from": "choose", "to": "b", "default": True},
            {"from": "a", "to": "meet"},
            {"from": "b", "to": "meet"},
            {"from": "meet", "to": "done"},
        ],
    )


def test_an_inclusive_gateway_closed_by_a_join_is_valid():
    assert found(inclusive()) == []


def test_an_inclusive_split_not_closed_by_a_join_is_refused():
    d = inclusive()
    d["nodes"][3] = {"id": "meet", "type": "set", "variables": {"m": "1"}}
    assert_only(d, "join_mismatch", "$.nodes[0]")


def test_an_inclusive_route_needs_a_condition_or_default():
    d = inclusive()
    del d["routes"][0]["condition"]
    assert ("invalid_value", "$.routes[0]") in found(d)


def test_an_inclusive_route_has_no_outcome():
    d = inclusive()
    d["routes"][0]["outcome"] = "approved"
    assert_only(d, "invalid_value", "$.routes[0].outcome")


def test_an_inclusive_gateway_needs_a_default_or_an_exhaustive_condition():
    d = inclusive()
    d["routes"][1] = {"from": "choose", "to": "b", "condition": "input.b"}
    assert_only(d, "gateway_without_default", "$.nodes[0]")


def test_a_join_closing_an_inclusive_split_is_reached_only_from_its_branches():
    d = inclusive()
    d["nodes"].insert(0, {"id": "entry", "type": "gateway"})
    d["routes"] += [
        {"from": "entry", "to": "choose", "default": True},
        {"from": "entry", "to": "meet", "condition": "input.skip"},
    ]
    assert_only(d, "join_mismatch", "$.routes[6]")


def test_identical_duplicate_routes_out_of_a_parallel_are_refused():
    d = doc(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            {"id": "b", "type": "set", "variables": {"b": "1"}},
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        [
            {"from": "fork", "to": "a"},
            {"from": "fork", "to": "b"},
            {"from": "fork", "to": "a"},
            {"from": "a", "to": "meet"},
            {"from": "b", "to": "meet"},
            {"from": "meet", "to": "done"},
        ],
    )
    assert_only(d, "duplicate_route", "$.routes[2]")


def bypass(join: dict[str, Any]) -> dict[str, Any]:
    return doc(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            {"id": "check", "type": "gateway"},
            {"id": "skip", "type": "end", "terminate": False},
            join,
            {"id": "done", "type": "end"},
        ],
        [
            {"from": "fork", "to": "a"},
            {"from": "fork", "to": "check"},
            {"from": "a", "to": "meet"},
            {"from": "check", "to": "meet", "condition": "input.go"},
            {"from": "check", "to": "skip", "default": True},
            {"from": "meet", "to": "done"},
        ],
    )


def test_a_branch_that_ends_before_its_join_is_refused():
    assert_only(bypass({"id": "meet", "type": "join"}), "join_bypassed", "$.routes[1]")


def test_a_branch_may_end_before_a_join_with_wait_for():
    assert found(bypass({"id": "meet", "type": "join", "wait_for": 1})) == []


def test_wait_for_is_at_most_the_branches_a_join_can_receive():
    d = inclusive({"id": "meet", "type": "join", "wait_for": 3})
    assert_only(d, "invalid_value", "$.nodes[3].wait_for")
    assert found(inclusive({"id": "meet", "type": "join", "wait_for": 0})) == [
        ("invalid_value", "$.nodes[3].wait_for")
    ]


def test_cancel_remaining_needs_wait_for():
    d = inclusive({"id": "meet", "type": "join", "cancel_remaining": True})
    assert_only(d, "invalid_value", "$.nodes[3].cancel_remaining")


def test_a_branch_end_cannot_fail_or_give_output():
    d = doc(
        [
            {"id": "start", "type": "set", "variables": {"x": "1"}},
            {"id": "done", "type": "end", "terminate": False, "status": "failed", "output": {}},
        ],
        [{"from": "start", "to": "done"}],
    )
    assert found(d) == [
        ("invalid_value", "$.nodes[1].status"),
        ("invalid_value", "$.nodes[1].output"),
    ]


def test_timer_duration_is_a_literal_or_an_expression():
    def timer(duration: Any) -> dict[str, Any]:
        return doc(
            [{"id": "t", "type": "timer", "duration": duration}, {"id": "done", "type": "end"}],
            [{"from": "t", "to": "done"}],
        )

    assert found(timer("PT5M")) == []
    assert found(timer("input.hours * 3600")) == []
    assert_only(timer("P1X"), "invalid_duration", "$.nodes[0].duration")
    assert_only(timer("input.("), "invalid_duration", "$.nodes[0].duration")
    assert_only(timer(5), "invalid_type", "$.nodes[0].duration")
