"""docs/templates.md is exactly what the generator prints from the template files
(regenerate with `python -m infrastructure.template_docs > docs/templates.md`), and each
diagram draws every node and route of its definition."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from application.templates import Template
from infrastructure import template_docs
from infrastructure.template_catalog import PackagedTemplateCatalog

DOCS = Path(__file__).resolve().parents[2] / "docs" / "templates.md"
TEMPLATES = PackagedTemplateCatalog().list()


def test_docs_templates_md_is_what_the_generator_prints() -> None:
    assert DOCS.read_text() == template_docs.markdown(), (
        f"docs/templates.md is stale: {template_docs.REGENERATE}"
    )


def test_every_template_has_a_section_and_a_diagram() -> None:
    text = DOCS.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == [t.name for t in TEMPLATES]
    assert text.count("```mermaid\nflowchart TD") == len(TEMPLATES) == 16


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_the_diagram_draws_every_node_and_route(template: Template) -> None:
    chart = template_docs.flowchart(template.definition)
    lines = chart.splitlines()
    for node in template.definition["nodes"]:
        node_id = template_docs._id(node["id"])
        assert any(line.strip().startswith(node_id) for line in lines), node["id"]
    edges = [line for line in lines if "-->" in line]
    assert len(edges) == len(template.definition["routes"])
    for route in template.definition["routes"]:
        assert any(
            line.strip().startswith(template_docs._id(route["from"]) + " ")
            and line.strip().endswith(" " + template_docs._id(route["to"]))
            for line in edges
        ), route
    # Labels never carry a raw angle bracket or brace from the definition (only the
    # generator's own <br/> and <small>), nor a quote that would end Mermaid's text early.
    for label in re.findall(r'"([^"]*)"', chart):
        text = re.sub(r"<br/>|</?small>", "", label)
        assert not set(text) & set("{}<>"), label


def test_a_changed_template_makes_the_docs_stale() -> None:
    # Negative control: the freshness check notices a template edit.
    changed = copy.deepcopy(TEMPLATES)
    first = changed[0]
    edited = Template(
        first.id,
        first.name,
        first.description + " (edited)",
        first.category,
        first.parameters,
        first.definition,
    )
    assert template_docs.markdown([edited, *changed[1:]]) != DOCS.read_text()


def test_reserved_mermaid_words_are_not_used_as_ids() -> None:
    definition = {
        "nodes": [{"id": "end", "type": "end"}],
        "routes": [],
    }
    assert "    end_((" in template_docs.flowchart(definition)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_the_diagram_draws_every_boundary_event_as_a_dotted_edge(template: Template) -> None:
    lines = template_docs.flowchart(template.definition).splitlines()
    dotted = [line.strip() for line in lines if "-.->|" in line]
    expected = [
        (node["id"], spec["to"])
        for node in template.definition["nodes"]
        for spec in node.get("boundary", [])
    ]
    assert len(dotted) == len(expected)
    for host, to in expected:
        assert any(
            line.startswith(template_docs._id(host) + " ")
            and line.endswith(" " + template_docs._id(to))
            for line in dotted
        ), (host, to)


def test_the_new_node_types_and_fields_are_drawn_distinctly() -> None:
    definition = {
        "nodes": [
            {"id": "pick", "type": "inclusive"},
            {"id": "first", "type": "event_gateway"},
            {"id": "undo", "type": "compensate"},
            {"id": "any", "type": "join", "wait_for": 1, "cancel_remaining": True},
            {"id": "side", "type": "end", "terminate": False},
            {"id": "one_by_one", "type": "parallel", "interleaved": True},
            {"id": "change", "type": "user_task", "role": "customer", "milestone": "dispatch"},
            {
                "id": "pay",
                "type": "service_task",
                "action": {"type": "http"},
                "compensation": {"type": "http"},
                "for_each": {"items": "input.lines", "as": "line", "mode": "sequential"},
                "boundary": [{"event": "order.cancelled", "to": "undo"}],
            },
        ],
        "routes": [],
    }
    chart = template_docs.flowchart(definition)
    assert 'pick{"pick<br/><small>inclusive: every route that holds</small>"}' in chart
    assert "event_gateway: first to happen wins" in chart
    assert 'undo[/"undo<br/><small>compensate: ' in chart and '"\\]' in chart
    assert "join: first 1, cancel the rest" in chart
    assert "end: branch end" in chart
    assert "service_task: http, undo: http · for each line (sequential)" in chart
    assert 'pay -.->|"event order.cancelled, interrupting"| undo' in chart
    assert "parallel: one at a time" in chart
    assert "user_task: customer · only at dispatch" in chart
