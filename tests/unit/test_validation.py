import copy
import json

import pytest

from domain.definition import Definition
from domain.validation import Problem, validate_document
from tests.spec_examples import PURCHASE_APPROVAL_JSON

PURCHASE_APPROVAL = json.loads(PURCHASE_APPROVAL_JSON)


def minimal() -> dict:
    """start (set) -> done (end): the smallest valid document."""
    return {
        "name": "demo",
        "nodes": [
            {"id": "start", "type": "set", "variables": {"x": "1"}},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "start", "to": "done"}],
    }


def with_node(node: dict, *routes: dict, after: str = "start") -> dict:
    """`minimal()` with `node` spliced in between `after` and `done` (unless routes given)."""
    doc = minimal()
    doc["nodes"].insert(1, node)
    doc["routes"] = [{"from": after, "to": node["id"]}]
    doc["routes"] += list(routes) or [{"from": node["id"], "to": "done"}]
    return doc


def found(doc) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in validate_document(doc)]


def assert_only(doc, code: str, path: str) -> None:
    assert found(doc) == [(code, path)]


# --- clean documents ----------------------------------------------------------------------


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
            {"id": "mail", "type": "service_task", "action": {"type": "email", "anything": 1}},
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


# --- one test per rule --------------------------------------------------------------------


def test_document_must_be_an_object():
    problems = validate_document([1, 2])
    assert [(p.code, p.path) for p in problems] == [("invalid_type", "$")]
    assert "expected object, got array" in problems[0].message


def test_name_is_required():
    doc = minimal()
    del doc["name"]
    assert_only(doc, "missing_field", "$.name")


@pytest.mark.parametrize("name", ["Demo", "-demo", "with space", "a" * 101, "x\n"])
def test_name_must_be_a_lowercase_slug(name):
    doc = minimal()
    doc["name"] = name
    assert_only(doc, "invalid_value", "$.name")


def test_unknown_top_level_field():
    doc = minimal()
    doc["colour"] = "blue"
    assert_only(doc, "unknown_field", "$.colour")


def test_wrong_json_type_says_expected_and_got():
    doc = minimal()
    doc["description"] = 5
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("invalid_type", "$.description")]
    assert "expected string, got number" in problems[0].message


@pytest.mark.parametrize("value", [0, -1, "2", True])
def test_sla_hours_must_be_a_positive_number(value):
    doc = minimal()
    doc["sla_hours"] = value
    code = (
        "invalid_value"
        if isinstance(value, int) and not isinstance(value, bool)
        else ("invalid_type")
    )
    assert_only(doc, code, "$.sla_hours")


def test_nodes_are_required():
    doc = minimal()
    del doc["nodes"]
    del doc["routes"]
    assert_only(doc, "missing_field", "$.nodes")


def test_nodes_must_not_be_empty():
    doc = minimal()
    doc["nodes"] = []
    doc["routes"] = []
    assert_only(doc, "invalid_value", "$.nodes")


def test_routes_may_be_omitted():
    doc = {"name": "x", "nodes": [{"id": "done", "type": "end"}]}
    assert validate_document(doc) == []


def test_routes_must_be_an_array():
    doc = minimal()
    doc["routes"] = {"from": "start"}
    assert_only(doc, "invalid_type", "$.routes")


def test_node_must_be_an_object():
    doc = minimal()
    doc["nodes"].append("oops")
    assert_only(doc, "invalid_type", "$.nodes[2]")


@pytest.mark.parametrize("node_id", ["1st", "has space", "x" * 65, ""])
def test_node_id_pattern(node_id):
    doc = minimal()
    doc["nodes"][1]["id"] = node_id
    doc["routes"][0]["to"] = node_id
    assert_only(doc, "invalid_value", "$.nodes[1].id")


def test_node_id_and_type_are_required():
    doc = minimal()
    doc["nodes"].append({"name": "nameless"})
    assert found(doc) == [("missing_field", "$.nodes[2].id"), ("missing_field", "$.nodes[2].type")]


def test_unknown_node_type():
    doc = with_node({"id": "t", "type": "teleport", "whatever": 1})
    assert_only(doc, "unknown_node_type", "$.nodes[1].type")


def test_unknown_node_field():
    doc = minimal()
    doc["nodes"][0]["colour"] = "red"
    assert_only(doc, "unknown_field", "$.nodes[0].colour")


def test_field_of_another_node_type_is_unknown():
    doc = minimal()
    doc["nodes"][1]["approver_role"] = "boss"
    assert_only(doc, "unknown_field", "$.nodes[1].approver_role")


def test_duplicate_node_id_reported_on_the_second():
    doc = minimal()
    doc["nodes"].append({"id": "start", "type": "end"})
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("duplicate_node_id", "$.nodes[2].id")]
    assert "'start'" in problems[0].message


def test_only_one_start_node():
    doc = with_node({"id": "mid", "type": "set", "variables": {}, "start": True})
    doc["nodes"][0]["start"] = True
    assert_only(doc, "invalid_value", "$.nodes[1].start")


def test_start_flag_picks_the_start_node():
    doc = minimal()
    doc["nodes"].insert(0, {"id": "later", "type": "set", "variables": {}})
    doc["nodes"][1]["start"] = True
    doc["routes"].append({"from": "later", "to": "done"})
    assert_only(doc, "unreachable_node", "$.nodes[0]")
    assert Definition.from_document(doc).start_node == "start"


def test_service_task_requires_action():
    assert_only(
        with_node({"id": "s", "type": "service_task"}), "missing_field", "$.nodes[1].action"
    )


def test_action_requires_type():
    doc = with_node({"id": "s", "type": "service_task", "action": {"url": "x"}})
    assert_only(doc, "missing_field", "$.nodes[1].action.type")


def test_http_action_requires_url():
    doc = with_node({"id": "s", "type": "service_task", "action": {"type": "http"}})
    assert_only(doc, "missing_field", "$.nodes[1].action.url")


def test_http_action_method():
    doc = with_node(
        {
            "id": "s",
            "type": "service_task",
            "action": {"type": "http", "url": "u", "method": "FETCH"},
        }
    )
    assert_only(doc, "invalid_value", "$.nodes[1].action.method")


def test_http_action_rejects_unknown_fields_but_other_actions_do_not():
    doc = with_node(
        {"id": "s", "type": "service_task", "action": {"type": "http", "url": "u", "verb": "GET"}}
    )
    assert_only(doc, "unknown_field", "$.nodes[1].action.verb")
    doc["nodes"][1]["action"]["type"] = "slack"
    assert validate_document(doc) == []


def test_http_action_timeout_is_a_duration():
    doc = with_node(
        {
            "id": "s",
            "type": "service_task",
            "action": {"type": "http", "url": "u", "timeout": "30s"},
        }
    )
    assert_only(doc, "invalid_duration", "$.nodes[1].action.timeout")


@pytest.mark.parametrize(
    ("retry", "path", "code"),
    [
        ({"max_attempts": 0}, "max_attempts", "invalid_value"),
        ({"max_attempts": 101}, "max_attempts", "invalid_value"),
        ({"max_attempts": 2.5}, "max_attempts", "invalid_type"),
        ({"backoff": 0.5}, "backoff", "invalid_value"),
        ({"initial_interval": "1s"}, "initial_interval", "invalid_duration"),
        ({"max_interval": 30}, "max_interval", "invalid_type"),
        ({"jitter": True}, "jitter", "unknown_field"),
    ],
)
def test_retry_policy_fields(retry, path, code):
    doc = with_node({"id": "s", "type": "service_task", "action": {"type": "noop"}, "retry": retry})
    assert_only(doc, code, f"$.nodes[1].retry.{path}")


def test_invalid_duration():
    doc = with_node(
        {"id": "s", "type": "service_task", "action": {"type": "noop"}, "timeout": "30 seconds"}
    )
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("invalid_duration", "$.nodes[1].timeout")]
    assert "'30 seconds'" in problems[0].message


def test_result_var_must_be_an_identifier():
    doc = with_node(
        {"id": "s", "type": "service_task", "action": {"type": "noop"}, "result_var": "my-var"}
    )
    assert_only(doc, "invalid_value", "$.nodes[1].result_var")


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


def test_approval_needs_role_or_assignee():
    doc = with_node({"id": "a", "type": "approval", "sla_hours": 2})
    assert_only(doc, "missing_field", "$.nodes[1]")


def test_approval_urgency():
    doc = with_node({"id": "a", "type": "approval", "approver_role": "r", "urgency": "asap"})
    assert_only(doc, "invalid_value", "$.nodes[1].urgency")


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


def test_user_task_form_must_be_an_object_schema():
    doc = with_node({"id": "u", "type": "user_task", "form": {"type": "string"}})
    assert_only(doc, "invalid_value", "$.nodes[1].form.type")
    doc["nodes"][1]["form"] = ["not", "an", "object"]
    assert_only(doc, "invalid_type", "$.nodes[1].form")


def test_user_task_outcomes_must_be_strings():
    doc = with_node({"id": "u", "type": "user_task", "outcomes": ["ok", 2]})
    assert_only(doc, "invalid_type", "$.nodes[1].outcomes[1]")


def test_timer_needs_duration_or_until():
    assert_only(with_node({"id": "t", "type": "timer"}), "missing_field", "$.nodes[1]")


def test_timer_cannot_have_both_duration_and_until():
    doc = with_node({"id": "t", "type": "timer", "duration": "PT1H", "until": "now"})
    assert_only(doc, "invalid_value", "$.nodes[1]")


def test_timer_duration_must_be_iso8601():
    doc = with_node({"id": "t", "type": "timer", "duration": "1 hour"})
    assert_only(doc, "invalid_duration", "$.nodes[1].duration")


def test_wait_correlation_is_an_expression():
    doc = with_node({"id": "w", "type": "wait", "event": "paid", "correlation": "input.("})
    assert_only(doc, "invalid_expression", "$.nodes[1].correlation")


def test_sub_workflow_requires_definition_and_positive_version():
    doc = with_node({"id": "c", "type": "sub_workflow", "version": 0})
    assert found(doc) == [
        ("invalid_value", "$.nodes[1].version"),
        ("missing_field", "$.nodes[1].definition"),
    ]


def test_sub_workflow_input_expressions():
    doc = with_node(
        {"id": "c", "type": "sub_workflow", "definition": "child", "input": {"a": "1 +"}}
    )
    assert_only(doc, "invalid_expression", "$.nodes[1].input.a")


def test_set_requires_variables():
    doc = minimal()
    del doc["nodes"][0]["variables"]
    assert_only(doc, "missing_field", "$.nodes[0].variables")


def test_set_variable_names_are_identifiers():
    doc = minimal()
    doc["nodes"][0]["variables"] = {"bad-name": "1"}
    assert_only(doc, "invalid_value", '$.nodes[0].variables["bad-name"]')


def test_set_variable_expression_path():
    doc = minimal()
    doc["nodes"][0]["variables"] = {"ok": "1", "total": "input.amount *"}
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [
        ("invalid_expression", "$.nodes[0].variables.total")
    ]
    assert "'input.amount *'" in problems[0].message


def test_end_status_and_output():
    doc = minimal()
    doc["nodes"][1].update(status="aborted", output={"x": "import os"})
    assert found(doc) == [
        ("invalid_value", "$.nodes[1].status"),
        ("invalid_expression", "$.nodes[1].output.x"),
    ]


def test_top_level_output_expressions():
    doc = minimal()
    doc["output"] = {"ok": "vars.x", "bad": "vars.x +", "typed": 3}
    assert found(doc) == [
        ("invalid_expression", "$.output.bad"),
        ("invalid_type", "$.output.typed"),
    ]


def test_action_template_expressions_at_their_exact_path():
    doc = with_node(
        {
            "id": "s",
            "type": "service_task",
            "action": {
                "type": "http",
                "url": "https://x/{{ input.( }}",
                "headers": {"X-A": "{{ ok }}", "X-B": "{{ broken"},
                "body": {"items": ["fine", "{{ 1 + }}"]},
            },
        }
    )
    assert found(doc) == [
        ("invalid_expression", "$.nodes[1].action.url"),
        ("invalid_expression", '$.nodes[1].action.headers["X-B"]'),
        ("invalid_expression", "$.nodes[1].action.body.items[1]"),
    ]


def test_templates_checked_in_any_action_type():
    doc = with_node(
        {
            "id": "s",
            "type": "service_task",
            "action": {"type": "email", "subject": "Hi {{ input.( }}"},
        }
    )
    assert_only(doc, "invalid_expression", "$.nodes[1].action.subject")


def test_assignee_template():
    doc = with_node({"id": "a", "type": "approval", "assignee": "{{ input.owner"})
    assert_only(doc, "invalid_expression", "$.nodes[1].assignee")


def test_route_condition_expression():
    doc = with_node(
        {"id": "g", "type": "gateway"},
        {"from": "g", "to": "done", "condition": "vars.x >"},
        {"from": "g", "to": "done", "default": True},
    )
    assert_only(doc, "invalid_expression", "$.routes[1].condition")


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


@pytest.mark.parametrize(
    ("trigger", "code", "path"),
    [
        ("nope", "invalid_type", "$.triggers[0]"),
        ({"event": "x"}, "missing_field", "$.triggers[0].type"),
        ({"type": "email"}, "invalid_value", "$.triggers[0].type"),
        ({"type": "event"}, "missing_field", "$.triggers[0].event"),
        ({"type": "schedule"}, "missing_field", "$.triggers[0].cron"),
        ({"type": "schedule", "cron": "every day"}, "invalid_value", "$.triggers[0].cron"),
        ({"type": "schedule", "cron": "* * * *"}, "invalid_value", "$.triggers[0].cron"),
        ({"type": "webhook", "secret": "s"}, "unknown_field", "$.triggers[0].secret"),
    ],
)
def test_triggers(trigger, code, path):
    doc = minimal()
    doc["triggers"] = [trigger]
    assert_only(doc, code, path)


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


def test_problems_serialise_and_the_input_is_not_modified():
    doc = minimal()
    doc["bogus"] = 1
    before = copy.deepcopy(doc)
    problems = validate_document(doc)
    assert doc == before
    assert isinstance(problems[0], Problem)
    assert problems[0].as_dict() == {
        "path": "$.bogus",
        "code": "unknown_field",
        "message": problems[0].message,
    }
    json.dumps([p.as_dict() for p in problems])


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        3,
        "x",
        {"nodes": "x"},
        {"nodes": [None, 1]},
        {
            "name": "x",
            "nodes": [{"id": 1, "type": []}],
            "routes": [None, {"from": 1, "to": [], "default": 1, "outcome": {}, "condition": []}],
        },
    ],
)
def test_garbage_is_reported_not_raised(garbage):
    problems = validate_document(garbage)
    assert problems
    assert all(p.path.startswith("$") for p in problems)


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
