"""validate_document on whole documents (the SPEC example, every node type, six problems at
once) and the graph rules: routes, outcomes, reachability, gateways, parallel and join.
"""

import json

from domain.definition import Definition
from domain.validation import validate_document
from tests.spec_examples import PURCHASE_APPROVAL_JSON
from tests.unit.validation_support import assert_only, found, minimal, with_node

PURCHASE_APPROVAL = json.loads(PURCHASE_APPROVAL_JSON)


# --- whole valid documents ----------------------------------------------------------------


def test_purchase_approval_example_validates_clean():
    assert validate_document(PURCHASE_APPROVAL) == []


def test_purchase_approval_builds_a_definition_starting_at_manager_approval():
    definition = Definition.from_document(PURCHASE_APPROVAL)
    assert definition.start_node == "manager_approval"
    assert definition.name == "purchase-approval"
    assert len(definition.routes) == 7


def test_minimal_document_is_valid():
    assert validate_document(minimal()) == []


def test_every_node_type_with_all_its_fields_validates_clean():
    doc = {
        "name": "everything.v2",
        "description": "d",
        "category": "c",
        "sla_hours": 1.5,
        "version": 3,
        "input_schema": {"type": "object"},
        "metadata": {"owner": "team"},
        "output": {"total": "vars.total"},
        "triggers": [
            {"type": "event", "event": "x.created", "name": "on create"},
            {"type": "webhook"},
            {"type": "schedule", "cron": "*/5 * * * 1-5", "timezone": "UTC"},
            {"type": "schedule", "cron": "@daily"},
        ],
        "nodes": [
            {
                "id": "init",
                "type": "set",
                "start": True,
                "name": "Init",
                "description": "d",
                "variables": {"total": "input.amount * 2"},
            },
            {
                "id": "call",
                "type": "service_task",
                "result_var": "reply",
                "timeout": "PT10S",
                "action": {
                    "type": "http",
                    "url": "https://x/{{ vars.total }}",
                    "method": "PUT",
                    "headers": {"X-Id": "{{ instance.id }}"},
                    "body": {"a": ["{{ 1 }}"]},
                    "timeout": "PT5S",
                },
                "retry": {
                    "max_attempts": 100,
                    "initial_interval": "PT1S",
                    "backoff": 1,
                    "max_interval": "PT1M",
                },
            },
            {"id": "mail", "type": "service_task", "action": {"type": "fax", "anything": 1}},
            {"id": "fork", "type": "parallel"},
            {
                "id": "task",
                "type": "user_task",
                "form": {"type": "object"},
                "role": "clerk",
                "assignee": "{{ input.owner }}",
                "sla_hours": 4,
                "escalate_to_role": "boss",
                "urgency": "high",
                "outcomes": ["ok", "redo"],
            },
            {"id": "pause", "type": "timer", "duration": "PT1H"},
            {"id": "meet", "type": "join"},
            {
                "id": "hook",
                "type": "wait",
                "event": "paid",
                "correlation": "input.order_id",
                "timeout": "P1D",
                "result_var": "payment",
            },
            {
                "id": "child",
                "type": "sub_workflow",
                "definition": "child-flow",
                "version": 2,
                "input": {"amount": "vars.total"},
                "result_var": "child_out",
            },
            {"id": "later", "type": "timer", "until": "now"},
            {
                "id": "ok",
                "type": "approval",
                "assignee": "{{ input.boss }}",
                "urgency": "low",
                "form": {"type": "object"},
            },
            {"id": "pick", "type": "gateway"},
            {"id": "done", "type": "end", "output": {"paid": "vars.payment"}},
            {"id": "failed", "type": "end", "status": "failed", "error": "nope"},
        ],
        "routes": [
            {"from": "init", "to": "call", "name": "go"},
            {"from": "call", "to": "mail"},
            {"from": "call", "to": "failed", "outcome": "error"},
            {"from": "mail", "to": "fork"},
            {"from": "fork", "to": "task"},
            {"from": "fork", "to": "pause"},
            {"from": "task", "to": "meet", "outcome": "ok"},
            {"from": "task", "to": "failed", "outcome": "redo"},
            {"from": "pause", "to": "meet"},
            {"from": "meet", "to": "hook"},
            {"from": "hook", "to": "child"},
            {"from": "hook", "to": "failed", "outcome": "timeout"},
            {"from": "child", "to": "later"},
            {"from": "later", "to": "ok"},
            {"from": "ok", "to": "pick"},
            {"from": "pick", "to": "done", "condition": "vars.total > 10"},
            {"from": "pick", "to": "failed", "condition": "true"},
        ],
    }
    assert validate_document(doc) == []


# --- gateways, parallel and join ----------------------------------------------------------


def test_gateway_without_default():
    doc = with_node(
        {"id": "g", "type": "gateway"}, {"from": "g", "to": "done", "condition": "vars.x > 1"}
    )
    assert_only(doc, "gateway_without_default", "$.nodes[1]")


def test_gateway_with_literal_true_condition_is_exhaustive():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "done", "condition": "vars.x > 1"},
        {"from": "g", "to": "done", "condition": "true"},
    )
    assert validate_document(doc) == []


def test_gateway_route_needs_condition_or_default():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "done", "condition": "vars.x > 1"},
        {"from": "g", "to": "done", "default": True},
        {"from": "g", "to": "done"},
    )
    assert_only(doc, "invalid_value", "$.routes[3]")


def test_parallel_needs_two_outgoing_routes():
    doc = with_node({"id": "p", "type": "parallel"})
    assert_only(doc, "invalid_value", "$.nodes[1]")


def test_join_needs_two_incoming_routes():
    doc = with_node(
        {"id": "p", "type": "parallel"}, {"from": "p", "to": "j"}, {"from": "p", "to": "done"}
    )
    doc["nodes"].insert(2, {"id": "j", "type": "join"})
    doc["routes"].append({"from": "j", "to": "done"})
    assert_only(doc, "invalid_value", "$.nodes[2]")


def test_join_not_reached_from_a_parallel_node_is_a_mismatch():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "j", "condition": "vars.x > 1"},
        {"from": "g", "to": "j", "default": True},
    )
    doc["nodes"].insert(2, {"id": "j", "type": "join"})
    doc["routes"].append({"from": "j", "to": "done"})
    assert_only(doc, "join_mismatch", "$.nodes[2]")


def test_parallel_routes_take_no_condition_or_outcome() -> None:
    document = {
        "name": "fork",
        "nodes": [
            {"id": "fork", "type": "parallel"},
            {"id": "a", "type": "set", "variables": {"x": "1"}},
            {"id": "b", "type": "set", "variables": {"y": "2"}},
            {"id": "join", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "fork", "to": "a", "condition": "input.go"},
            {"from": "fork", "to": "b"},
            {"from": "a", "to": "join"},
            {"from": "b", "to": "join"},
            {"from": "join", "to": "done"},
        ],
    }
    problems = validate_document(document)
    assert [(p.path, p.code) for p in problems] == [("$.routes[0]", "invalid_value")]


# --- route outcomes -----------------------------------------------------------------------


def test_approval_route_outcome_must_be_known():
    doc = with_node(
        {"id": "a", "type": "approval", "approver_role": "r"},
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "done", "outcome": "rejected"},
        {"from": "a", "to": "done", "outcome": "maybe"},
    )
    assert_only(doc, "invalid_value", "$.routes[3].outcome")


def test_approval_needs_routes_for_approved_and_rejected():
    doc = with_node(
        {"id": "a", "type": "approval", "approver_role": "r"},
        {"from": "a", "to": "done", "outcome": "approved"},
    )
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("missing_field", "$.nodes[1]")]
    assert "'rejected'" in problems[0].message


def test_user_task_route_outcome_must_be_declared():
    doc = with_node(
        {"id": "u", "type": "user_task", "outcomes": ["ok"]},
        {"from": "u", "to": "done", "outcome": "ok"},
        {"from": "u", "to": "done", "outcome": "nope"},
    )
    assert_only(doc, "invalid_value", "$.routes[2].outcome")


def test_user_task_without_declared_outcomes_only_completes():
    doc = with_node(
        {"id": "u", "type": "user_task"},
        {"from": "u", "to": "done", "outcome": "completed"},
        {"from": "u", "to": "done", "outcome": "approved"},
    )
    assert_only(doc, "invalid_value", "$.routes[2].outcome")


def test_wait_with_timeout_needs_a_timeout_route() -> None:
    document = {
        "name": "waiter",
        "nodes": [
            {"id": "w", "type": "wait", "event": "e", "timeout": "PT1H"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "w", "to": "done"}],
    }
    problems = validate_document(document)
    assert [(p.path, p.code) for p in problems] == [("$.nodes[0].timeout", "missing_field")]


# --- routes and reachability --------------------------------------------------------------


def test_route_requires_from_and_to():
    doc = minimal()
    doc["routes"].append({"name": "nowhere"})
    assert found(doc) == [
        ("missing_field", "$.routes[1].from"),
        ("missing_field", "$.routes[1].to"),
    ]


def test_route_unknown_field():
    doc = minimal()
    doc["routes"][0]["when"] = "always"
    assert_only(doc, "unknown_field", "$.routes[0].when")


def test_route_to_unknown_node():
    doc = minimal()
    doc["routes"].append({"from": "start", "to": "ghost"})
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("unknown_route_target", "$.routes[1].to")]
    assert "'ghost'" in problems[0].message


def test_route_from_unknown_node():
    doc = minimal()
    doc["routes"].append({"from": "ghost", "to": "done"})
    assert_only(doc, "unknown_route_source", "$.routes[1].from")


def test_route_from_end_node():
    doc = minimal()
    doc["routes"].append({"from": "done", "to": "start"})
    assert_only(doc, "invalid_value", "$.routes[1].from")


def test_default_route_cannot_have_condition():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "done", "default": True, "condition": "vars.x"},
    )
    assert_only(doc, "invalid_value", "$.routes[1].default")


def test_only_one_default_route_per_node():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "done", "default": True},
        {"from": "g", "to": "done", "default": True},
    )
    assert_only(doc, "invalid_value", "$.routes[2].default")


def test_node_needs_an_outgoing_route():
    doc = minimal()
    doc["nodes"].insert(1, {"id": "stuck", "type": "set", "variables": {}})
    doc["routes"].append({"from": "start", "to": "stuck"})
    assert_only(doc, "no_outgoing_route", "$.nodes[1]")


def test_unreachable_node():
    doc = minimal()
    doc["nodes"].append({"id": "island", "type": "set", "variables": {}})
    doc["routes"].append({"from": "island", "to": "done"})
    assert_only(doc, "unreachable_node", "$.nodes[2]")


def test_cycle_without_exit_has_no_path_to_end():
    doc = with_node(
        {"id": "a", "type": "set", "variables": {}},
        {"from": "a", "to": "b"},
        {"from": "b", "to": "a"},
    )
    doc["nodes"].insert(2, {"id": "b", "type": "set", "variables": {}})
    doc["routes"].append({"from": "start", "to": "done"})  # keep start able to finish
    assert found(doc) == [("no_path_to_end", "$.nodes[1]"), ("no_path_to_end", "$.nodes[2]")]


def test_at_least_one_end_node():
    doc = {
        "name": "x",
        "nodes": [{"id": "a", "type": "set", "variables": {}}],
        "routes": [{"from": "a", "to": "a"}],
    }
    assert_only(doc, "missing_field", "$.nodes")


def test_graph_checks_skip_routes_with_missing_endpoints():
    """A route to nowhere is reported once; it does not make its source a dead end."""
    doc = minimal()
    doc["routes"] = [{"from": "start", "to": "ghost"}]
    doc["nodes"].append({"id": "later", "type": "end"})
    doc["routes"].append({"from": "phantom", "to": "done"})
    # `start` is not a dead end / cannot-finish node, and `done` (the target of a route from
    # an unknown source) is not reported unreachable; `later` really is unreachable.
    assert found(doc) == [
        ("unreachable_node", "$.nodes[2]"),
        ("unknown_route_target", "$.routes[0].to"),
        ("unknown_route_source", "$.routes[1].from"),
    ]


# --- all at once --------------------------------------------------------------------------


def test_six_different_problems_are_all_reported_with_their_paths():
    doc = {
        "name": "broken",
        "nodes": [
            {"id": "start", "type": "set", "variables": {"x": "1 +"}},  # unparsable
            {"id": "route", "type": "gateway"},  # no default, conditions not exhaustive
            {"id": "mystery", "type": "teleport"},  # unknown type
            {"id": "orphan", "type": "set", "variables": {}},  # unreachable
            {"id": "spin", "type": "wait", "event": "tick"},  # cycle with no way out
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "start", "to": "route"},
            {"from": "route", "to": "mystery", "condition": "vars.x > 1"},
            {"from": "route", "to": "spin", "condition": "vars.x > 2"},
            {"from": "mystery", "to": "done"},
            {"from": "mystery", "to": "ghost"},  # missing node
            {"from": "spin", "to": "spin"},
            {"from": "orphan", "to": "done"},
        ],
    }
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [
        ("invalid_expression", "$.nodes[0].variables.x"),
        ("gateway_without_default", "$.nodes[1]"),
        ("unknown_node_type", "$.nodes[2].type"),
        ("unreachable_node", "$.nodes[3]"),
        ("no_path_to_end", "$.nodes[4]"),
        ("unknown_route_target", "$.routes[4].to"),
    ]
    messages = {p.code: p.message for p in problems}
    assert "'route'" in messages["gateway_without_default"]
    assert "'teleport'" in messages["unknown_node_type"]
    assert "'orphan'" in messages["unreachable_node"]
    assert "'spin'" in messages["no_path_to_end"]
    assert "'ghost'" in messages["unknown_route_target"]
