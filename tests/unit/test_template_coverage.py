"""The 16 templates together use every node type, trigger kind and built-in action kind
(SPEC §2, issue 9), computed from the template files against the validator's own lists
and the action registry's built-ins, so a kind added there without a template fails here;
and the node fields of issue 10 that are not node types (`for_each`, `boundary` — both
interrupting and not — `compensation` and `end.terminate: false`) are used somewhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from application.templates import Template
from domain.definition import NODE_TYPES
from domain.validation.document import ACTION_FIELDS, TRIGGER_TYPES
from infrastructure.actions.registry import ActionRegistry
from infrastructure.template_catalog import PackagedTemplateCatalog

TEMPLATES = PackagedTemplateCatalog().list()


def actions(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every action of a definition: service tasks' and task notifications'."""
    for node in definition["nodes"]:
        if "action" in node:
            yield node["action"]
        yield from node.get("notify", {}).values()


def used(kind: str) -> dict[str, set[str]]:
    """What each kind is used by: {node type | trigger type | action type: template ids}."""
    found: dict[str, set[str]] = {}
    for template in TEMPLATES:
        definition = template.definition
        if kind == "node":
            names = [n["type"] for n in definition["nodes"]]
        elif kind == "trigger":
            names = [t["type"] for t in definition.get("triggers", [])]
        else:
            names = [a["type"] for a in actions(definition)]
        for name in names:
            found.setdefault(name, set()).add(template.id)
    return found


# Issue 10's constructs that are fields, not node types: name -> does this node use it?
FIELD_USES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "for_each": lambda node: "for_each" in node,
    "compensation": lambda node: node["type"] == "service_task" and "compensation" in node,
    "boundary (interrupting)": lambda node: any(
        spec.get("interrupting", True) is True for spec in node.get("boundary", [])
    ),
    "boundary (non-interrupting)": lambda node: any(
        spec.get("interrupting", True) is False for spec in node.get("boundary", [])
    ),
    "end terminate: false": lambda node: node["type"] == "end" and node.get("terminate") is False,
}


def fields_used(templates: list[Template]) -> dict[str, set[str]]:
    """{field construct: ids of the templates using it}, computed from the node documents."""
    found: dict[str, set[str]] = {}
    for template in templates:
        for node in template.definition["nodes"]:
            for name, uses in FIELD_USES.items():
                if uses(node):
                    found.setdefault(name, set()).add(template.id)
    return found


def test_there_are_sixteen_templates() -> None:
    assert len(TEMPLATES) == 16


def test_every_node_type_is_used() -> None:
    assert set(NODE_TYPES) - set(used("node")) == set()


def test_every_trigger_kind_is_used() -> None:
    assert set(TRIGGER_TYPES) == {"event", "webhook", "schedule"}
    assert set(TRIGGER_TYPES) - set(used("trigger")) == set()


def test_every_built_in_action_kind_is_used() -> None:
    built_in = set(ActionRegistry().types())
    # The registry runs what the validator checks, plus noop (fields unchecked).
    assert built_in == {*ACTION_FIELDS, "noop"}
    assert built_in == {"http", "email", "slack", "teams", "sms", "emit", "noop"}
    assert built_in - set(used("action")) == set()
    # And no template depends on a plug-in action a fresh install lacks.
    assert set(used("action")) <= built_in


def test_the_coverage_check_notices_a_missing_kind() -> None:
    # Negative control: without the templates that hold them, kinds go missing.
    only = [t for t in TEMPLATES if t.id == "purchase-approval"]
    nodes = {n["type"] for t in only for n in t.definition["nodes"]}
    assert set(NODE_TYPES) - nodes >= {"parallel", "join", "sub_workflow", "timer", "wait"}
    kinds = {a["type"] for t in only for a in actions(t.definition)}
    assert {"email", "slack", "teams", "sms", "emit", "noop"} <= set(
        ActionRegistry().types()
    ) - kinds


def test_the_issue_10_fields_are_used() -> None:
    assert set(FIELD_USES) - set(fields_used(TEMPLATES)) == set()


def test_the_field_check_notices_a_missing_field() -> None:
    # Negative control: purchase-approval alone uses none of them, and dropping the
    # templates that use a field makes that field go missing.
    only = [t for t in TEMPLATES if t.id == "purchase-approval"]
    assert fields_used(only) == {}
    for name, holders in fields_used(TEMPLATES).items():
        rest = [t for t in TEMPLATES if t.id not in holders]
        assert name not in fields_used(rest)
