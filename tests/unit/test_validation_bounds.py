"""validate_document bounds what PostgreSQL and the clock can hold: durations, backoff,
attempts, sla_hours, versions; and no NUL, lone surrogate or non-finite number anywhere."""

import pytest

from domain.validation import validate_document
from tests.unit.validation_support import assert_only, found, minimal, with_node

NOOP = {"type": "noop"}


def service(**fields):
    return with_node({"id": "s", "type": "service_task", "action": NOOP, **fields})


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (with_node({"id": "t", "type": "timer", "duration": "P3000000D"}), "$.nodes[1].duration"),
        (with_node({"id": "t", "type": "timer", "duration": "P11Y"}), "$.nodes[1].duration"),
        (service(timeout="P2D"), "$.nodes[1].timeout"),
        (
            service(action={**NOOP, "type": "http", "url": "http://x", "timeout": "P2D"}),
            "$.nodes[1].action.timeout",
        ),
        (service(retry={"initial_interval": "P3000000D"}), "$.nodes[1].retry.initial_interval"),
        (service(retry={"max_interval": "PT25H"}), "$.nodes[1].retry.max_interval"),
    ],
)
def test_durations_have_a_maximum(doc, path):
    problems = [p for p in validate_document(doc) if p.path == path]
    assert [p.code for p in problems] == ["invalid_duration"]
    assert "longer than the maximum" in problems[0].message


def test_durations_up_to_the_maximum_are_fine():
    assert found(with_node({"id": "t", "type": "timer", "duration": "P3650D"})) == []
    assert found(service(timeout="P1D", retry={"initial_interval": "P1D", "backoff": 10})) == []


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"backoff": 1e308}, "backoff"),
        ({"backoff": 10.5}, "backoff"),
        ({"backoff": float("inf")}, "backoff"),
        ({"max_attempts": 101}, "max_attempts"),
    ],
)
def test_backoff_and_attempts_are_bounded(retry, field):
    problems = validate_document(service(retry=retry))
    assert {(p.code, p.path) for p in problems if "retry" in p.path} == {
        ("invalid_value", f"$.nodes[1].retry.{field}")
    }


@pytest.mark.parametrize("value", [1e300, 87_601, float("nan")])
def test_sla_hours_are_bounded_at_the_top_and_on_tasks(value):
    doc = minimal()
    doc["sla_hours"] = value
    assert ("invalid_value", "$.sla_hours") in found(doc)
    task = with_node({"id": "a", "type": "approval", "approver_role": "r", "sla_hours": value})
    assert ("invalid_value", "$.nodes[1].sla_hours") in found(task)


def test_a_child_version_fits_an_integer_column():
    doc = with_node({"id": "c", "type": "sub_workflow", "definition": "x", "version": 2**31})
    assert_only(doc, "invalid_value", "$.nodes[1].version")


def test_a_nul_in_a_wait_event_is_refused_with_its_path():
    doc = with_node({"id": "w", "type": "wait", "event": "paid\x00"})
    problems = validate_document(doc)
    assert [(p.code, p.path) for p in problems] == [("invalid_value", "$.nodes[1].event")]
    assert "NUL character" in problems[0].message


def test_nul_surrogates_and_non_finite_numbers_are_refused_anywhere():
    doc = minimal()
    doc["metadata"] = {"k\x00": 1, "deep": [{"s": "\ud800"}], "n": float("-inf")}
    doc["description"] = "a\x00"
    assert sorted(found(doc)) == sorted(
        [
            ("invalid_value", "$.description"),
            ("invalid_value", '$.metadata["k\\u0000"]'),
            ("invalid_value", "$.metadata.deep[0].s"),
            ("invalid_value", "$.metadata.n"),
        ]
    )


def test_a_deeply_nested_document_is_refused_not_recursed():
    value: object = 1
    for _ in range(5_000):
        value = [value]
    doc = minimal()
    doc["metadata"] = {"v": value}
    problems = validate_document(doc)
    assert [p.code for p in problems] == ["invalid_value"]
    assert "deeper than 64 levels" in problems[0].message
