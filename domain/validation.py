"""Validation of workflow definition documents (SPEC §2), standard library only.

`validate_document` reports every problem at once, each with the JSON path of the offending
part, a stable machine code and a sentence naming the nodes/routes involved; `[]` means the
document may be published and handed to `Definition.from_document`.

Field rules are data: each object kind (top level, node type, route, retry policy, http action,
trigger) maps its allowed keys to a checker `(report, path, value) -> None`. Graph rules
(endpoints, reachability, gateways, joins, outcomes) live in `domain.graph`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.definition import NODE_TYPES
from domain.durations import parse_duration
from domain.expressions import ExpressionError, compile_expression, template_expressions
from domain.graph import GraphNode, GraphRoute, check_graph

Path = tuple[str | int, ...]
Checker = Callable[["_Report", Path, Any], None]

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
NODE_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
URGENCIES = ("low", "normal", "high", "critical")
END_STATUSES = ("completed", "failed")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


@dataclass(frozen=True)
class Problem:
    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


def validate_document(document: Any) -> list[Problem]:
    """Every problem of `document`, ordered by where its path appears in the document."""
    report = _Report(document)
    if not isinstance(document, dict):
        report.add(
            (),
            "invalid_type",
            f"a definition must be an object: expected object, got {_type_name(document)}",
        )
        return report.problems()
    _check_fields(report, (), document, _TOP_FIELDS, required=("name",))
    nodes, start = _check_nodes(report, document)
    routes = _check_routes(report, document)
    if nodes:
        check_graph(report, nodes, routes, start)
    return report.problems()


# --- reporting ----------------------------------------------------------------------------


class _Report:
    def __init__(self, document: Any) -> None:
        self.document = document
        self._items: list[tuple[Path, str, str]] = []

    def add(self, parts: Path, code: str, message: str) -> None:
        self._items.append((tuple(parts), code, message))

    def about(self, parts: Path, code: str, text: str) -> None:
        """Report `text` about the part at `parts`, prefixed by what that part is."""
        self.add(parts, code, f"{self.where(parts)}: {text}")

    def where(self, parts: Path) -> str:
        """`node 'notify' field 'action.url'`, `route #3 (a -> b)`, `field 'triggers[0]'`."""
        if len(parts) >= 2 and parts[0] in ("nodes", "routes") and isinstance(parts[1], int):
            base, rest = self._label(str(parts[0]), parts[1]), parts[2:]
        else:
            base, rest = "definition", parts
        return f"{base} field '{_dotted(rest)}'" if rest else base

    def _label(self, kind: str, index: int) -> str:
        items = self.document.get(kind)
        item = items[index] if isinstance(items, list) and index < len(items) else None
        item = item if isinstance(item, dict) else {}
        if kind == "nodes":
            node_id = item.get("id")
            return f"node '{node_id}'" if isinstance(node_id, str) else f"node #{index}"
        source, target = item.get("from"), item.get("to")
        if isinstance(source, str) and isinstance(target, str):
            return f"route #{index} ({source} -> {target})"
        return f"route #{index}"

    def problems(self) -> list[Problem]:
        seen: set[tuple[Path, str, str]] = set()
        unique = [i for i in self._items if not (i in seen or seen.add(i))]
        unique.sort(key=lambda item: _position(self.document, item[0]))  # stable
        return [Problem(_render(parts), code, message) for parts, code, message in unique]


def _render(parts: Path) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _dotted(parts: Path) -> str:
    return _render(parts)[1:].lstrip(".")


def _position(document: Any, parts: Path) -> tuple[int, ...]:
    """Where `parts` appears in the document; a missing key sorts after its siblings."""
    key: list[int] = []
    current = document
    for part in parts:
        if isinstance(current, dict):
            keys = list(current)
            key.append(keys.index(part) if part in current else len(keys))
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            key.append(part)
            current = current[part] if 0 <= part < len(current) else None
        else:
            key.append(0)
            current = None
    return tuple(key)


def _short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


# --- generic checkers ---------------------------------------------------------------------


def _is(value: Any, expected: str) -> bool:
    if isinstance(value, bool):
        return expected == "boolean"
    if expected == "integer":
        return isinstance(value, int)
    if expected == "number":
        return isinstance(value, int | float)
    return isinstance(value, {"string": str, "object": dict, "array": list}.get(expected, ()))


def _expect(report: _Report, parts: Path, value: Any, expected: str) -> bool:
    if _is(value, expected):
        return True
    report.about(parts, "invalid_type", f"expected {expected}, got {_type_name(value)}")
    return False


def _typed(expected: str) -> Checker:
    def check(report: _Report, parts: Path, value: Any) -> None:
        _expect(report, parts, value, expected)

    return check


def _number(
    minimum: float, *, exclusive: bool = False, maximum: float | None = None, integer: bool = False
) -> Checker:
    kind = "integer" if integer else "number"
    article = "an" if integer else "a"
    bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
    bound += f" and at most {maximum}" if maximum is not None else ""

    def check(report: _Report, parts: Path, value: Any) -> None:
        if not _expect(report, parts, value, kind):
            return
        low_ok = value > minimum if exclusive else value >= minimum
        finite = isinstance(value, int) or math.isfinite(value)
        if not (finite and low_ok and (maximum is None or value <= maximum)):
            report.about(
                parts, "invalid_value", f"must be {article} {kind} {bound}, got {_short(value)}"
            )

    return check


def _enum(*choices: str) -> Checker:
    def check(report: _Report, parts: Path, value: Any) -> None:
        if _expect(report, parts, value, "string") and value not in choices:
            report.about(
                parts, "invalid_value", f"must be one of {', '.join(choices)}, got {_short(value)}"
            )

    return check


def _pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(report: _Report, parts: Path, value: Any) -> None:
        if _expect(report, parts, value, "string") and not regex.fullmatch(value):
            report.about(parts, "invalid_value", f"must be {what}, got {_short(value)}")

    return check


def _skip(report: _Report, parts: Path, value: Any) -> None:
    """For fields checked elsewhere, or that may hold any JSON value."""


def _object_with(fields: Mapping[str, Checker]) -> Checker:
    def check(report: _Report, parts: Path, value: Any) -> None:
        if _expect(report, parts, value, "object"):
            _check_fields(report, parts, value, fields)

    return check


def _check_fields(
    report: _Report,
    parts: Path,
    obj: dict[str, Any],
    fields: Mapping[str, Checker],
    required: tuple[str, ...] = (),
    owner: str | None = None,
    strict: bool = True,
) -> None:
    """Run each present field's checker; report unknown keys (if strict) and missing ones."""
    owner = owner or report.where(parts)
    for key, value in obj.items():
        checker = fields.get(key)
        if checker is not None:
            checker(report, parts + (key,), value)
        elif strict:
            report.add(parts + (str(key),), "unknown_field", f"{owner} has unknown field '{key}'")
    for key in required:
        if key not in obj:
            report.add(parts + (key,), "missing_field", f"{owner} is missing required '{key}'")


_string = _typed("string")
_boolean = _typed("boolean")
_object = _typed("object")
_integer = _typed("integer")
_positive = _number(0, exclusive=True)
_identifier = _pattern(IDENTIFIER_PATTERN, "an identifier (letters, digits and _)")
_slug = _pattern(NAME_PATTERN, "a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 100)")
_node_id = _pattern(NODE_ID_PATTERN, "a letter or _ followed by letters, digits, _ or -")


# --- durations and expressions ------------------------------------------------------------


def _duration(report: _Report, parts: Path, value: Any) -> None:
    if not _expect(report, parts, value, "string"):
        return
    try:
        parse_duration(value)
    except ValueError as exc:
        report.about(parts, "invalid_duration", str(exc))


def _compiles(report: _Report, parts: Path, source: str) -> bool:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        message = exc.message
    except (ValueError, TypeError, RecursionError) as exc:  # the evaluator must not crash us
        message = str(exc) or type(exc).__name__
    else:
        return True
    report.about(parts, "invalid_expression", f"invalid expression {_short(source)}: {message}")
    return False


def _expression(report: _Report, parts: Path, value: Any) -> None:
    if _expect(report, parts, value, "string"):
        _compiles(report, parts, value)


def _expression_map(key_checker: Checker = _skip) -> Checker:
    """An object whose values are expressions (and whose keys pass `key_checker`)."""

    def check(report: _Report, parts: Path, value: Any) -> None:
        if _expect(report, parts, value, "object"):
            for key, source in value.items():
                key_checker(report, parts + (key,), key)
                _expression(report, parts + (key,), source)

    return check


def _template(report: _Report, parts: Path, text: str) -> None:
    try:
        sources = template_expressions(text)
    except ExpressionError as exc:
        report.about(parts, "invalid_expression", f"invalid template {_short(text)}: {exc.message}")
        return
    for source in sources:
        if not _compiles(report, parts, source):
            return


def _template_string(report: _Report, parts: Path, value: Any) -> None:
    if _expect(report, parts, value, "string"):
        _template(report, parts, value)


def _templates_within(report: _Report, parts: Path, value: Any) -> None:
    """Check the `{{ }}` templates of every string nested anywhere in `value`."""
    if isinstance(value, str):
        _template(report, parts, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _templates_within(report, parts + (str(key),), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _templates_within(report, parts + (index,), item)


# --- composite fields ---------------------------------------------------------------------


def _string_list(report: _Report, parts: Path, value: Any) -> None:
    if _expect(report, parts, value, "array"):
        for index, item in enumerate(value):
            _expect(report, parts + (index,), item, "string")


def _form(report: _Report, parts: Path, value: Any) -> None:
    if _expect(report, parts, value, "object") and value.get("type", "object") != "object":
        report.about(parts + ("type",), "invalid_value", "a form must be an 'object' schema")


def _cron(report: _Report, parts: Path, value: Any) -> None:
    if not _expect(report, parts, value, "string") or value.strip() in _CRON_MACROS:
        return
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        report.about(
            parts,
            "invalid_value",
            f"must have 5 space-separated "
            f"fields (minute hour day month weekday), got {_short(value)}",
        )


_RETRY_FIELDS: dict[str, Checker] = {
    "max_attempts": _number(1, maximum=100, integer=True),
    "initial_interval": _duration,
    "backoff": _number(1),
    "max_interval": _duration,
}
_HTTP_FIELDS: dict[str, Checker] = {
    "type": _skip,
    "url": _string,
    "method": _enum(*HTTP_METHODS),
    "headers": _object,
    "body": _skip,
    "timeout": _duration,
}


def _action(report: _Report, parts: Path, value: Any) -> None:
    """`type` is required; `http` fields are checked, other action types take any fields."""
    if not _expect(report, parts, value, "object"):
        return
    kind = value.get("type")
    if "type" not in value:
        report.about(parts + ("type",), "missing_field", "an action needs a 'type'")
    elif _expect(report, parts + ("type",), kind, "string") and kind == "http":
        _check_fields(report, parts, value, _HTTP_FIELDS, required=("url",))
    _templates_within(report, parts, value)


_TRIGGERS: dict[str, tuple[dict[str, Checker], tuple[str, ...]]] = {
    "event": ({"type": _skip, "name": _string, "event": _string}, ("event",)),
    "webhook": ({"type": _skip, "name": _string}, ()),
    "schedule": ({"type": _skip, "name": _string, "cron": _cron, "timezone": _string}, ("cron",)),
}


def _triggers(report: _Report, parts: Path, value: Any) -> None:
    if not _expect(report, parts, value, "array"):
        return
    for index, trigger in enumerate(value):
        where = parts + (index,)
        if not _expect(report, where, trigger, "object"):
            continue
        if "type" not in trigger:
            report.about(where + ("type",), "missing_field", "a trigger needs a 'type'")
        elif _expect(report, where + ("type",), trigger["type"], "string"):
            spec = _TRIGGERS.get(trigger["type"])
            if spec is None:
                kinds = ", ".join(_TRIGGERS)
                text = f"unknown trigger type {_short(trigger['type'])}; expected one of {kinds}"
                report.about(where + ("type",), "invalid_value", text)
            else:
                _check_fields(report, where, trigger, spec[0], spec[1])


# --- the document -------------------------------------------------------------------------


_TOP_FIELDS: dict[str, Checker] = {
    "name": _slug,
    "description": _string,
    "category": _string,
    "sla_hours": _positive,
    "input_schema": _object,
    "output": _expression_map(),
    "triggers": _triggers,
    "version": _integer,
    "metadata": _object,
    "nodes": _skip,  # _check_nodes
    "routes": _skip,  # _check_routes
}


def _node_type(report: _Report, parts: Path, value: Any) -> None:
    if _expect(report, parts, value, "string") and value not in NODE_TYPES:
        report.about(
            parts,
            "unknown_node_type",
            f"unknown node type {_short(value)}; expected one of {', '.join(NODE_TYPES)}",
        )


_COMMON_NODE_FIELDS: dict[str, Checker] = {
    "id": _node_id,
    "type": _node_type,
    "name": _string,
    "start": _boolean,
    "description": _string,
}
_TASK_FIELDS: dict[str, Checker] = {
    "assignee": _template_string,
    "sla_hours": _positive,
    "escalate_to_role": _string,
    "urgency": _enum(*URGENCIES),
    "form": _form,
    "result_var": _identifier,
}
_NODE_FIELDS: dict[str, dict[str, Checker]] = {
    "service_task": {
        "action": _action,
        "retry": _object_with(_RETRY_FIELDS),
        "timeout": _duration,
        "result_var": _identifier,
    },
    "gateway": {},
    "parallel": {},
    "join": {},
    "approval": {**_TASK_FIELDS, "approver_role": _string},
    "user_task": {**_TASK_FIELDS, "role": _string, "outcomes": _string_list},
    "wait": {
        "event": _string,
        "correlation": _expression,
        "timeout": _duration,
        "result_var": _identifier,
    },
    "timer": {"duration": _duration, "until": _expression},
    "sub_workflow": {
        "definition": _slug,
        "version": _number(1, integer=True),
        "input": _expression_map(),
        "result_var": _identifier,
    },
    "set": {"variables": _expression_map(_identifier)},
    "end": {"status": _enum(*END_STATUSES), "output": _expression_map(), "error": _string},
}
_REQUIRED_NODE_FIELDS: dict[str, tuple[str, ...]] = {
    "service_task": ("action",),
    "sub_workflow": ("definition",),
    "set": ("variables",),
}


def _one_of(*keys: str, exclusive: bool) -> Callable[[_Report, Path, dict[str, Any]], None]:
    """A node rule: at least one of `keys` present (and, if `exclusive`, at most one)."""
    wanted = " or ".join(f"'{k}'" for k in keys)

    def rule(report: _Report, parts: Path, node: dict[str, Any]) -> None:
        present = [key for key in keys if key in node]
        if not present:
            report.about(parts, "missing_field", f"needs {wanted}")
        elif exclusive and len(present) > 1:
            report.about(parts, "invalid_value", f"must have exactly one of {wanted}")

    return rule


_NODE_RULES = {
    "approval": _one_of("approver_role", "assignee", exclusive=False),
    "timer": _one_of("duration", "until", exclusive=True),
}


def _check_node(report: _Report, parts: Path, node: dict[str, Any]) -> None:
    node_type = node.get("type")
    known = isinstance(node_type, str) and node_type in _NODE_FIELDS
    if not known:  # without a type, only the common fields can be judged
        _check_fields(report, parts, node, _COMMON_NODE_FIELDS, ("id", "type"), strict=False)
        return
    fields = {**_COMMON_NODE_FIELDS, **_NODE_FIELDS[node_type]}
    required = ("id", "type", *_REQUIRED_NODE_FIELDS.get(node_type, ()))
    owner = f"{node_type} {report.where(parts)}"
    _check_fields(report, parts, node, fields, required, owner=owner)
    rule = _NODE_RULES.get(node_type)
    if rule is not None:
        rule(report, parts, node)


def _check_nodes(
    report: _Report, document: dict[str, Any]
) -> tuple[dict[str, GraphNode], str | None]:
    """Check each node; return the graph nodes (first of each id) and the start node id."""
    raw = document.get("nodes")
    if "nodes" not in document:
        report.add(("nodes",), "missing_field", "the definition has no 'nodes'")
    if not isinstance(raw, list) or not raw:
        if "nodes" in document and _expect(report, ("nodes",), raw, "array"):
            report.add(("nodes",), "invalid_value", "the definition needs at least one node")
        return {}, None
    nodes: dict[str, GraphNode] = {}
    starts: list[GraphNode] = []
    for index, node in enumerate(raw):
        parts = ("nodes", index)
        if not _expect(report, parts, node, "object"):
            continue
        _check_node(report, parts, node)
        node_id, node_type = node.get("id"), node.get("type")
        if not isinstance(node_id, str):
            continue
        if node_id in nodes:
            report.add(
                parts + ("id",),
                "duplicate_node_id",
                f"node id '{node_id}' is already used by $.nodes[{nodes[node_id].index}]",
            )
            continue
        nodes[node_id] = GraphNode(
            index, node_id, node_type if isinstance(node_type, str) else "", node
        )
        if node.get("start") is True:
            starts.append(nodes[node_id])
    for extra in starts[1:]:
        report.add(
            extra.path + ("start",),
            "invalid_value",
            f"node '{extra.id}' is marked start but '{starts[0].id}' already is",
        )
    first = next(iter(nodes.values()), None)
    start = starts[0] if starts else first if first is not None and first.index == 0 else None
    return nodes, start.id if start else None


_ROUTE_FIELDS: dict[str, Checker] = {
    "from": _string,
    "to": _string,
    "condition": _expression,
    "outcome": _string,
    "default": _boolean,
    "name": _string,
}


def _check_routes(report: _Report, document: dict[str, Any]) -> list[GraphRoute] | None:
    raw = document.get("routes", [])
    if not _expect(report, ("routes",), raw, "array"):
        return None
    routes = []
    for index, route in enumerate(raw):
        parts = ("routes", index)
        if _expect(report, parts, route, "object"):
            _check_fields(report, parts, route, _ROUTE_FIELDS, ("from", "to"))
            routes.append(GraphRoute(index, route))
    return routes
