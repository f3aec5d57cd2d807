"""validate_document: document structure, node fields, JSON types, expressions, durations."""

import copy
import json

import pytest

from domain.definition import Definition
from domain.validation import Problem, validate_document
from tests.unit.validation_support import assert_only, found, minimal, with_node

# --- document structure -------------------------------------------------------------------


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
        (
            {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Nowhere"},
            "invalid_value",
            "$.triggers[0].timezone",
        ),
        (
            {"type": "schedule", "cron": "0 9 * * *", "timezone": 1},
            "invalid_type",
            "$.triggers[0].timezone",
        ),
        ({"type": "webhook", "secret": "s"}, "unknown_field", "$.triggers[0].secret"),
    ],
)
def test_triggers(trigger, code, path):
    doc = minimal()
    doc["triggers"] = [trigger]
    assert_only(doc, code, path)


# --- nodes and their fields ---------------------------------------------------------------


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
    doc["nodes"][1]["action"]["type"] = "fax"  # a plug-in type: its fields are its own
    assert validate_document(doc) == []


def test_result_var_must_be_an_identifier():
    doc = with_node(
        {"id": "s", "type": "service_task", "action": {"type": "noop"}, "result_var": "my-var"}
    )
    assert_only(doc, "invalid_value", "$.nodes[1].result_var")


def test_approval_needs_role_or_assignee():
    doc = with_node({"id": "a", "type": "approval", "sla_hours": 2})
    assert_only(doc, "missing_field", "$.nodes[1]")


def test_approval_urgency():
    doc = with_node({"id": "a", "type": "approval", "approver_role": "r", "urgency": "asap"})
    assert_only(doc, "invalid_value", "$.nodes[1].urgency")


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


def test_sub_workflow_requires_definition_and_positive_version():
    doc = with_node({"id": "c", "type": "sub_workflow", "version": 0})
    assert found(doc) == [
        ("invalid_value", "$.nodes[1].version"),
        ("missing_field", "$.nodes[1].definition"),
    ]


def test_set_requires_variables():
    doc = minimal()
    del doc["nodes"][0]["variables"]
    assert_only(doc, "missing_field", "$.nodes[0].variables")


def test_set_variable_names_are_identifiers():
    doc = minimal()
    doc["nodes"][0]["variables"] = {"bad-name": "1"}
    assert_only(doc, "invalid_value", '$.nodes[0].variables["bad-name"]')


def test_end_status_and_output():
    doc = minimal()
    doc["nodes"][1].update(status="aborted", output={"x": "import os"})
    assert found(doc) == [
        ("invalid_value", "$.nodes[1].status"),
        ("invalid_expression", "$.nodes[1].output.x"),
    ]


# --- durations ----------------------------------------------------------------------------


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


def test_timer_duration_must_be_iso8601():
    doc = with_node({"id": "t", "type": "timer", "duration": "1 hour"})
    assert_only(doc, "invalid_duration", "$.nodes[1].duration")


# --- expressions and templates ------------------------------------------------------------


def test_wait_correlation_is_an_expression():
    doc = with_node({"id": "w", "type": "wait", "event": "paid", "correlation": "input.("})
    assert_only(doc, "invalid_expression", "$.nodes[1].correlation")


def test_sub_workflow_input_expressions():
    doc = with_node(
        {"id": "c", "type": "sub_workflow", "definition": "child", "input": {"a": "1 +"}}
    )
    assert_only(doc, "invalid_expression", "$.nodes[1].input.a")


def test_set_variable_expression_path():
    doc = minimal()
    doc["nodes"][0]["variables"] = {"ok": "1", "total": "input.amount *"}
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [
        ("invalid_expression", "$.nodes[0].variables.total")
    ]
    assert "'input.amount *'" in problems[0].message


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
            "action": {"type": "fax", "subject": "Hi {{ input.( }}"},
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


# --- problems themselves ------------------------------------------------------------------


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
