"""Publish-time checks of boundary events and event gateways, each problem at its path."""

from __future__ import annotations

from typing import Any

import pytest

from domain.validation import validate_document
from tests.unit.validation_support import found, with_node

LATE = {"id": "late", "type": "end", "status": "failed"}


def task_with(*boundary: Any, **fields: Any) -> dict[str, Any]:
    doc = with_node({"id": "t", "type": "user_task", "boundary": list(boundary), **fields})
    doc["nodes"].append(LATE)
    return doc


def test_a_valid_boundary_makes_its_target_reachable() -> None:
    # `late` is reached only through the boundary: no unreachable_node problem.
    assert found(task_with({"timer": "PT4H", "to": "late"})) == []
    assert found(task_with({"until": "input.deadline", "to": "late"})) == []
    assert found(task_with({"event": "e", "correlation": "input.id", "to": "late"})) == []
    assert found(task_with({"timer": "R3/PT1H", "interrupting": False, "to": "late"})) == []


def test_a_boundary_to_a_missing_node_is_reported_once() -> None:
    doc = task_with({"timer": "PT4H", "to": "late"})
    doc["nodes"].remove(LATE)
    assert found(doc) == [("unknown_boundary_target", "$.nodes[1].boundary[0].to")]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"to": "late"}, [("missing_field", "$.nodes[1].boundary[0]")]),
        ({"timer": "PT1H", "event": "e", "to": "late"},
         [("invalid_value", "$.nodes[1].boundary[0]")]),
        ({"timer": "PT1H"},
         [("missing_field", "$.nodes[1].boundary[0].to"), ("unreachable_node", "$.nodes[3]")]),
        ({"timer": "soon", "to": "late"}, [("invalid_duration", "$.nodes[1].boundary[0].timer")]),
        ({"timer": "R0/PT1H", "interrupting": False, "to": "late"},
         [("invalid_duration", "$.nodes[1].boundary[0].timer")]),
        ({"timer": "R2/PT1H", "to": "late"}, [("invalid_value", "$.nodes[1].boundary[0].timer")]),
        ({"timer": "P20Y", "to": "late"}, [("invalid_duration", "$.nodes[1].boundary[0].timer")]),
        ({"until": "1 +", "to": "late"}, [("invalid_expression", "$.nodes[1].boundary[0].until")]),
        ({"timer": "PT1H", "correlation": "x", "to": "late"},
         [("invalid_value", "$.nodes[1].boundary[0].correlation")]),
        ({"event": "e", "to": "late", "interrupting": "no"},
         [("invalid_type", "$.nodes[1].boundary[0].interrupting")]),
        ({"event": "e", "to": "late", "color": "red"},
         [("unknown_field", "$.nodes[1].boundary[0].color")]),
    ],
)  # fmt: skip
def test_boundary_fields_are_checked_at_their_path(spec: dict, expected: list) -> None:
    assert found(task_with(spec)) == expected


def test_boundary_to_must_name_a_node_that_is_not_a_join() -> None:
    assert found(task_with({"timer": "PT1H", "to": "nowhere"})) == [
        ("unknown_boundary_target", "$.nodes[1].boundary[0].to"),
        ("unreachable_node", "$.nodes[3]"),
    ]


def test_boundaries_are_only_allowed_on_waiting_nodes() -> None:
    doc = with_node({"id": "g", "type": "set", "variables": {}, "boundary": []})
    assert found(doc) == [("unknown_field", "$.nodes[1].boundary")]


def test_a_timeout_route_without_sla_is_refused_pointing_at_boundary_events() -> None:
    doc = with_node(
        {"id": "t", "type": "user_task"},
        {"from": "t", "to": "done"},
        {"from": "t", "to": "done", "outcome": "timeout"},
    )
    (problem,) = validate_document(doc)
    assert problem.path == "$.routes[2].outcome"
    assert "never" in problem.message and '"boundary"' in problem.message


def gateway_doc(*targets: dict[str, Any], routes: list[dict] | None = None) -> dict[str, Any]:
    nodes = [{"id": "g", "type": "event_gateway"}, *targets, {"id": "done", "type": "end"}]
    default_routes = [{"from": "g", "to": t["id"]} for t in targets]
    default_routes += [{"from": t["id"], "to": "done"} for t in targets]
    return {"name": "gw", "nodes": nodes, "routes": routes or default_routes}


WAIT = {"id": "w", "type": "wait", "event": "e"}
TIMER = {"id": "t", "type": "timer", "duration": "PT1H"}


def test_a_valid_event_gateway() -> None:
    assert found(gateway_doc(WAIT, TIMER)) == []


def test_event_gateway_routes_lead_to_waits_or_timers_without_conditions() -> None:
    s = {"id": "s", "type": "set", "variables": {}}
    assert found(gateway_doc(WAIT, s)) == [("invalid_value", "$.routes[1].to")]
    doc = gateway_doc(WAIT, TIMER)
    doc["routes"][0]["condition"] = "true"
    assert found(doc) == [("invalid_value", "$.routes[0]")]
    assert found(gateway_doc(WAIT)) == [("invalid_value", "$.nodes[0]")]


def test_an_event_gateway_target_may_not_have_boundaries_or_repeat() -> None:
    w = {**WAIT, "boundary": [{"timer": "PT1M", "to": "done"}]}
    assert found(gateway_doc(w, TIMER)) == [("invalid_value", "$.routes[0].to")]
    doc = gateway_doc(WAIT, TIMER)
    doc["routes"].append({"from": "g", "to": "w"})
    assert ("invalid_value", "$.routes[4].to") in found(doc)


def each_guarded(*boundary: Any) -> dict[str, Any]:
    return {
        "name": "each-guarded",
        "nodes": [
            {
                "id": "ask",
                "type": "approval",
                "approver_role": "r",
                "for_each": {"items": "input.people"},
                "boundary": list(boundary),
            },
            {"id": "late", "type": "end", "status": "failed"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "ask", "to": "done"}],
    }


def test_a_boundary_on_a_for_each_node_publishes_and_makes_its_target_reachable() -> None:
    # `late` is reached only through the boundary: no unreachable_node problem.
    assert validate_document(each_guarded({"timer": "PT1H", "to": "late"})) == []
    reminder = {"timer": "R/PT1H", "interrupting": False, "to": "late"}
    assert validate_document(each_guarded(reminder)) == []


def test_a_boundary_on_a_for_each_node_is_still_checked() -> None:
    problems = validate_document(each_guarded({"timer": "PT1H", "to": "nowhere"}))
    assert [(p.code, p.path) for p in problems if p.path.startswith("$.nodes[0]")] == [
        ("unknown_boundary_target", "$.nodes[0].boundary[0].to")
    ]
