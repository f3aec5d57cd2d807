"""docs/templates.md, generated from the shipped template files:
`python -m infrastructure.template_docs > docs/templates.md` (a unit test checks it is fresh).

Each template gets its description, triggers, the connections it names, its parameters and a
Mermaid flowchart drawn from its definition's nodes and routes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from application.templates import Template
from domain.validation.document import ACTION_CONNECTION_TYPES
from infrastructure.template_catalog import PackagedTemplateCatalog

REGENERATE = "python -m infrastructure.template_docs > docs/templates.md"
MAX_LABEL = 60
# Words Mermaid reads as syntax: a node with such an id is drawn under `<id>_`.
RESERVED_IDS = frozenset(
    {
        "end",
        "graph",
        "subgraph",
        "flowchart",
        "class",
        "classdef",
        "style",
        "click",
        "linkstyle",
        "default",
        "call",
        "href",
    }
)

# Mermaid node shapes per node type: (opening, closing) around the quoted label.
SHAPES: dict[str, tuple[str, str]] = {
    "service_task": ("[", "]"),
    "gateway": ("{", "}"),
    "inclusive": ("{", "}"),
    "event_gateway": ("{", "}"),
    "parallel": ("{{", "}}"),
    "join": ("{{", "}}"),
    "approval": ("(", ")"),
    "user_task": ("(", ")"),
    "wait": ("[/", "/]"),
    "timer": ("[\\", "\\]"),
    "sub_workflow": ("[[", "]]"),
    "set": ("([", "])"),
    "end": ("((", "))"),
    "compensate": ("[/", "\\]"),
}


def _text(value: str, limit: int = MAX_LABEL) -> str:
    """A label safe inside Mermaid's quotes (entities for the characters it reads)."""
    short = value if len(value) <= limit else value[: limit - 1] + "…"
    for char, entity in (
        ("#", "#35;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("{", "#123;"),
        ("}", "#125;"),
    ):
        short = short.replace(char, entity)
    return short


def _join_detail(node: dict[str, Any]) -> str:
    if "wait_for" not in node:
        return ""
    cancel = ", cancel the rest" if node.get("cancel_remaining") else ""
    return f"first {node['wait_for']}{cancel}"


def _service_detail(node: dict[str, Any]) -> str:
    undo = node.get("compensation")
    return node["action"].get("type", "") + (f", undo: {undo.get('type', '')}" if undo else "")


def _node_detail(node: dict[str, Any]) -> str:
    """The one line under a node's name: its type and what it is about."""
    kind = node["type"]
    detail = {
        "service_task": lambda: _service_detail(node),
        "inclusive": lambda: "every route that holds",
        "parallel": lambda: "one at a time" if node.get("interleaved") is True else "",
        "event_gateway": lambda: "first to happen wins",
        "join": lambda: _join_detail(node),
        "compensate": lambda: "undo completed steps, newest first",
        "approval": lambda: node.get("approver_role") or node.get("assignee", ""),
        "user_task": lambda: node.get("role") or node.get("assignee", ""),
        "wait": lambda: node.get("event", "callback"),
        "timer": lambda: node.get("duration") or f"until {node.get('until')}",
        "sub_workflow": lambda: node["definition"],
        "end": lambda: (
            "branch end"
            if node.get("terminate") is False
            else node.get("status", "completed")
            + (", compensate" if node.get("compensate") else "")
        ),
    }.get(kind)
    extra = detail() if detail else ""
    text = f"{kind}: {extra}" if extra else kind
    if "for_each" in node:
        spec = node["for_each"]
        text += f" · for each {spec.get('as', 'item')} ({spec.get('mode', 'parallel')})"
    if "milestone" in node:  # WCP-18
        text += f" · only at {node['milestone']}"
    return text


def _boundary_label(spec: dict[str, Any]) -> str:
    """A boundary edge's label: what fires it, and whether it interrupts its host."""
    if "timer" in spec:
        trigger = f"timer {spec['timer']}"
    elif "until" in spec:
        trigger = f"until {spec['until']}"
    else:
        trigger = f"event {spec.get('event', '')}"
    kind = "interrupting" if spec.get("interrupting", True) else "non-interrupting"
    return f"{trigger}, {kind}"


def boundary_edges(definition: dict[str, Any]) -> list[str]:
    """One dotted edge per boundary event, from its host node to its target: `-.->` (thick
    `==>` would read as a route), labelled with its trigger and whether it interrupts."""
    lines = []
    for node in definition["nodes"]:
        for spec in node.get("boundary", []):
            label = _text(_boundary_label(spec), 40)
            lines.append(f'    {_id(node["id"])} -.->|"{label}"| {_id(spec["to"])}')
    return lines


def _id(node_id: str) -> str:
    return f"{node_id}_" if node_id.lower() in RESERVED_IDS else node_id


def _route_label(route: dict[str, Any]) -> str | None:
    if "outcome" in route:
        return str(route["outcome"])
    if "condition" in route:
        return str(route["condition"])
    if route.get("default"):
        return "default"
    return None


def _start(definition: dict[str, Any]) -> str:
    nodes = definition["nodes"]
    return next((n["id"] for n in nodes if n.get("start")), nodes[0]["id"])


def _trigger_text(trigger: dict[str, Any]) -> str:
    kind = trigger["type"]
    if kind == "event":
        return f"event {trigger['event']}"
    if kind == "schedule":
        return f"schedule {trigger['cron']} ({trigger.get('timezone', 'UTC')})"
    return "webhook"


def flowchart(definition: dict[str, Any]) -> str:
    """The definition as a Mermaid `flowchart TD`: one shape per node type, a labelled edge
    per route (outcome, condition or default), a dotted edge per boundary event, the
    triggers feeding the start node."""
    lines = ["flowchart TD"]
    failed = []
    for node in definition["nodes"]:
        opening, closing = SHAPES[node["type"]]
        name, detail = _text(node.get("name") or node["id"]), _text(_node_detail(node))
        label = f"{name}<br/><small>{detail}</small>"
        lines.append(f'    {_id(node["id"])}{opening}"{label}"{closing}')
        if node["type"] == "end" and node.get("status") == "failed":
            failed.append(_id(node["id"]))
    start = _id(_start(definition))
    for index, trigger in enumerate(definition.get("triggers", [])):
        lines.append(f'    trigger_{index}>"{_text(_trigger_text(trigger))}"] -.-> {start}')
    for route in definition["routes"]:
        edge = _route_label(route)
        arrow = f'-->|"{_text(edge, 40)}"|' if edge else "-->"
        lines.append(f"    {_id(route['from'])} {arrow} {_id(route['to'])}")
    lines += boundary_edges(definition)
    lines.append("    classDef failed fill:#fde7e9,stroke:#c62828")
    lines.append("    classDef trigger fill:#e8f0fe,stroke:#1a73e8")
    if failed:
        lines.append(f"    class {','.join(failed)} failed")
    triggers = [f"trigger_{i}" for i in range(len(definition.get("triggers", [])))]
    if triggers:
        lines.append(f"    class {','.join(triggers)} trigger")
    return "\n".join(lines)


def _actions(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for node in definition["nodes"]:
        if "action" in node:
            yield node["action"]
        yield from node.get("notify", {}).values()


def connections(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(connection name, connection type) the definition's actions name, sorted."""
    named = {
        (action["connection"], ACTION_CONNECTION_TYPES.get(action["type"], "?"))
        for action in _actions(definition)
        if "connection" in action
    }
    return sorted(named)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _section(template: Template) -> list[str]:
    definition = template.definition
    triggers = [f"`{_trigger_text(t)}`" for t in definition.get("triggers", [])]
    kinds = sorted({n["type"] for n in definition["nodes"]})
    actions = sorted({a["type"] for a in _actions(definition)})
    needed = connections(definition)
    out = [
        f"## {template.name}",
        "",
        f"`{template.id}` · category `{template.category}`",
        "",
        template.description,
        "",
        f"- **Starts by**: {', '.join(triggers) if triggers else 'the API only'}"
        " (and always `POST /v1/instances`)",
        f"- **Node types**: {', '.join(f'`{k}`' for k in kinds)}",
        f"- **Actions**: {', '.join(f'`{a}`' for a in actions) or 'none'}",
        "- **Connections**: "
        + (", ".join(f"`{name}` ({kind})" for name, kind in needed) if needed else "none"),
        "",
        "| parameter | type | required | meaning |",
        "|---|---|---|---|",
    ]
    for parameter in template.parameters:
        required = "yes" if parameter["required"] else "no"
        out.append(
            f"| `{parameter['name']}` | {parameter['type']} | {required} | "
            f"{_cell(parameter['description'])} |"
        )
    out += ["", "```mermaid", flowchart(definition), "```", ""]
    return out


def markdown(templates: Iterable[Template] | None = None) -> str:
    listed = list(PackagedTemplateCatalog().list() if templates is None else templates)
    all_connections = sorted({c for t in listed for c in connections(t.definition)})
    out = [
        "# Template library",
        "",
        f"<!-- Generated from infrastructure/templates/*.json: {REGENERATE} -->",
        "",
        f"{len(listed)} ready-made workflow definitions (`GET /v1/templates`). "
        "`POST /v1/templates/{id}/instantiate` publishes one as the tenant's own definition "
        '(`{"name": "..."}` to publish it under another name, `{"new_version": true}` to '
        "publish over an existing definition of that name as its next version; otherwise that "
        "is a `409`). After that it is an ordinary definition: edit, version, disable it like "
        "any other ([definitions.md](definitions.md)).",
        "",
        "**Connections.** Templates that send e-mail or messages name connections "
        "([actions.md](actions.md#connections)); instantiating one for a tenant that lacks "
        "them is a `422 unknown_connection`. The library uses these names: "
        + ", ".join(f"`{name}` ({kind})" for name, kind in all_connections)
        + ". Define them in `WAYMARK_CONNECTIONS_FILE`, or instantiate and then edit the "
        "definition to use yours.",
        "",
        "**Placeholders.** URLs of the systems a template calls are parameters with "
        "`https://<system>.example` defaults: pass the real ones in the input, or change the "
        "defaults in your copy of the definition.",
        "",
        "**Diagrams.** Shapes: rectangle = `service_task` (`undo:` names its "
        "`compensation`), rounded = `approval` / "
        "`user_task`, diamond = `gateway` / `inclusive` / `event_gateway` (the line under "
        "the name says which), hexagon = `parallel` / `join`, parallelogram = "
        "`wait`, reversed parallelogram = `timer`, double-bordered = `sub_workflow`, "
        "stadium = `set`, trapezoid = `compensate`, "
        "circle = `end` (red: `failed`; `branch end`: `terminate: false`); `for each` marks "
        "a multi-instance node; flags are triggers; edge labels are outcomes, "
        "conditions or `default`; dotted edges labelled with a timer or an event are "
        "boundary events.",
        "",
        "**Coverage.** Together the templates use every node type, every trigger kind "
        "(`event`, `webhook`, `schedule`) and every built-in action (`http`, `email`, "
        "`slack`, `teams`, `sms`, `emit`, `noop`) and the `for_each`, `boundary` and "
        "`compensation` fields; `tests/unit/test_template_coverage.py` "
        "checks it, and `tests/e2e/test_template_library.py` runs each template to its end.",
        "",
        "| template | category | starts by | actions |",
        "|---|---|---|---|",
    ]
    for template in listed:
        definition = template.definition
        triggers = ", ".join(t["type"] for t in definition.get("triggers", [])) or "API"
        actions = ", ".join(sorted({a["type"] for a in _actions(definition)})) or "none"
        anchor = template.name.lower()
        anchor = "".join(c for c in anchor if c.isalnum() or c in " -").replace(" ", "-")
        out.append(
            f"| [{template.name}](#{anchor}) | {template.category} | {triggers} | {actions} |"
        )
    out.append("")
    for template in listed:
        out += _section(template)
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
