"""What each object kind of a definition document may hold (SPEC §2), as data.

Each kind (top level, node type, route, retry policy, http action, trigger) maps its allowed
keys to a checker from `domain.validation.fields`; `domain.validation` runs the tables.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from domain.definition import NODE_TYPES
from domain.engine.incidents import ON_FAILURE_CHOICES
from domain.engine.retry import MAX_ATTEMPTS, MAX_BACKOFF, MAX_RETRY_INTERVAL_SECONDS
from domain.engine.sla import NOTIFY_EVENTS
from domain.retention import ENDED_STATUSES, FOREVER, parse_retention
from domain.validation.boundary import boundary_list
from domain.validation.fields import (
    Checker,
    boolean,
    check_fields,
    duration,
    duration_or_expression,
    duration_up_to,
    enum,
    expect,
    expression,
    expression_map,
    integer,
    json_object,
    number,
    object_with,
    pattern,
    skip,
    string,
    string_list,
    template_string,
    templates_within,
)
from domain.validation.multi import for_each
from domain.validation.report import Path, Report, short

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
NODE_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
URGENCIES = ("low", "normal", "high", "critical")
END_STATUSES = ("completed", "failed")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

# Bounds that keep every due time and stored number inside what PostgreSQL holds.
MAX_SLA_HOURS = 87_600  # ten years
MAX_ACTION_TIMEOUT = timedelta(days=1)
MAX_VERSION = 2**31 - 1  # an `integer` column
MAX_JOIN_WAIT_FOR = 1_000  # a join's `wait_for`: far more branches than a graph has routes

_sla_hours = number(0, exclusive=True, maximum=MAX_SLA_HOURS)
_version = number(1, maximum=MAX_VERSION, integer=True)
_identifier = pattern(IDENTIFIER_PATTERN, "an identifier (letters, digits and _)")
_slug = pattern(NAME_PATTERN, "a lowercase slug (a-z, 0-9, '.', '_', '-'; at most 100)")
_node_id = pattern(NODE_ID_PATTERN, "a letter or _ followed by letters, digits, _ or -")


def _form(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "object") and value.get("type", "object") != "object":
        report.about(parts + ("type",), "invalid_value", "a form must be an 'object' schema")


def _cron(report: Report, parts: Path, value: Any) -> None:
    if not expect(report, parts, value, "string") or value.strip() in _CRON_MACROS:
        return
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        report.about(
            parts,
            "invalid_value",
            f"must have 5 space-separated "
            f"fields (minute hour day month weekday), got {short(value)}",
        )


def _timezone(report: Report, parts: Path, value: Any) -> None:
    if not expect(report, parts, value, "string"):
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        text = f"unknown time zone {short(value)}; expected an IANA name like 'Europe/Berlin'"
        report.about(parts, "invalid_value", text)


_retry_interval = duration_up_to(timedelta(seconds=MAX_RETRY_INTERVAL_SECONDS))
_RETRY_FIELDS: dict[str, Checker] = {
    "max_attempts": number(1, maximum=MAX_ATTEMPTS, integer=True),
    "initial_interval": _retry_interval,
    "backoff": number(1, maximum=MAX_BACKOFF),
    "max_interval": _retry_interval,
}
_action_timeout = duration_up_to(MAX_ACTION_TIMEOUT)
CONNECTION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A connection is named literally (never templated): publish checks that it exists.
_connection = pattern(CONNECTION_PATTERN, "a connection name (letters, digits, '.', '_', '-')")


def _recipients(report: Report, parts: Path, value: Any) -> None:
    """One address (a string) or a list of addresses."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            expect(report, parts + (index,), item, "string")
    else:
        expect(report, parts, value, "string")


def _blocks(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "array"):
        for index, item in enumerate(value):
            expect(report, parts + (index,), item, "object")


_HTTP_FIELDS: dict[str, Checker] = {
    "type": skip,
    "url": string,
    "method": enum(*HTTP_METHODS),
    "headers": json_object,
    "body": skip,
    "timeout": _action_timeout,
    "connection": _connection,
}
# Built-in action types: (allowed fields, required fields, "at least one of" fields).
ACTION_FIELDS: dict[str, tuple[dict[str, Checker], tuple[str, ...], tuple[str, ...]]] = {
    "http": (_HTTP_FIELDS, ("url",), ()),
    "email": (
        {
            "type": skip,
            "connection": _connection,
            "from": string,
            "to": _recipients,
            "cc": _recipients,
            "bcc": _recipients,
            "reply_to": string,
            "subject": string,
            "text": string,
            "html": string,
            "headers": json_object,
            "timeout": _action_timeout,
        },
        ("connection", "to", "subject"),
        ("text", "html"),
    ),
    "slack": (
        {
            "type": skip,
            "connection": _connection,
            "channel": string,
            "text": string,
            "blocks": _blocks,
            "thread_ts": string,
            "timeout": _action_timeout,
        },
        ("connection",),
        ("text", "blocks"),
    ),
    "teams": (
        {
            "type": skip,
            "connection": _connection,
            "title": string,
            "text": string,
            "theme_color": string,
            "card": json_object,
            "timeout": _action_timeout,
        },
        ("connection",),
        ("text", "card"),
    ),
    "sms": (
        {
            "type": skip,
            "connection": _connection,
            "to": string,
            "from": string,
            "body": string,
            "timeout": _action_timeout,
        },
        ("connection", "to", "body"),
        (),
    ),
    "emit": (
        {"type": skip, "event": string, "correlation": string, "payload": skip},
        ("event",),
        (),
    ),
}
# The connection type each built-in action needs (`http` may name one, the others must).
ACTION_CONNECTION_TYPES: dict[str, str] = {
    "http": "http",
    "email": "smtp",
    "slack": "slack",
    "teams": "teams",
    "sms": "twilio",
}


def _action(report: Report, parts: Path, value: Any) -> None:
    """`type` is required; built-in types' fields are checked, plug-in types take any."""
    if not expect(report, parts, value, "object"):
        return
    kind = value.get("type")
    if "type" not in value:
        report.about(parts + ("type",), "missing_field", "an action needs a 'type'")
    elif expect(report, parts + ("type",), kind, "string") and kind in ACTION_FIELDS:
        fields, required, one_of = ACTION_FIELDS[kind]
        check_fields(report, parts, value, fields, required=required)
        if one_of and not any(key in value for key in one_of):
            wanted = " or ".join(f"'{k}'" for k in one_of)
            report.about(parts, "missing_field", f"a {kind} action needs {wanted}")
    templates_within(report, parts, value)


_TRIGGERS: dict[str, tuple[dict[str, Checker], tuple[str, ...]]] = {
    "event": ({"type": skip, "name": string, "event": string}, ("event",)),
    "webhook": ({"type": skip, "name": string}, ()),
    "schedule": ({"type": skip, "name": string, "cron": _cron, "timezone": _timezone}, ("cron",)),
}
TRIGGER_TYPES = tuple(_TRIGGERS)  # every trigger kind a definition may declare


def _triggers(report: Report, parts: Path, value: Any) -> None:
    if not expect(report, parts, value, "array"):
        return
    for index, trigger in enumerate(value):
        where = parts + (index,)
        if not expect(report, where, trigger, "object"):
            continue
        if "type" not in trigger:
            report.about(where + ("type",), "missing_field", "a trigger needs a 'type'")
        elif expect(report, where + ("type",), trigger["type"], "string"):
            spec = _TRIGGERS.get(trigger["type"])
            if spec is None:
                kinds = ", ".join(_TRIGGERS)
                text = f"unknown trigger type {short(trigger['type'])}; expected one of {kinds}"
                report.about(where + ("type",), "invalid_value", text)
            else:
                check_fields(report, where, trigger, spec[0], spec[1])


def _retention_period(report: Report, parts: Path, value: Any) -> None:
    if not expect(report, parts, value, "string"):
        return
    try:
        parse_retention(value)
    except ValueError as exc:
        report.about(parts, "invalid_duration", str(exc))


def _retention(report: Report, parts: Path, value: Any) -> None:
    """`"forever"`, or per end status an ISO-8601 duration or `"forever"`."""
    if value == FOREVER:
        return
    if isinstance(value, str):
        report.about(parts, "invalid_value", f"must be 'forever' or an object, got {short(value)}")
        return
    if expect(report, parts, value, "object"):
        check_fields(report, parts, value, dict.fromkeys(ENDED_STATUSES, _retention_period))


TOP_FIELDS: dict[str, Checker] = {
    "name": _slug,
    "description": string,
    "category": string,
    "sla_hours": _sla_hours,
    "input_schema": json_object,
    "output": expression_map(),
    "triggers": _triggers,
    "version": integer,
    "metadata": json_object,
    "retention": _retention,
    "on_failure": enum(*ON_FAILURE_CHOICES),  # domain.engine.incidents
    "nodes": skip,  # _check_nodes
    "routes": skip,  # _check_routes
}


def _node_type(report: Report, parts: Path, value: Any) -> None:
    if expect(report, parts, value, "string") and value not in NODE_TYPES:
        report.about(
            parts,
            "unknown_node_type",
            f"unknown node type {short(value)}; expected one of {', '.join(NODE_TYPES)}",
        )


COMMON_NODE_FIELDS: dict[str, Checker] = {
    "id": _node_id,
    "type": _node_type,
    "name": string,
    "start": boolean,
    "description": string,
    "on_failure": enum(*ON_FAILURE_CHOICES),  # overrides the definition's
}


def _notify(report: Report, parts: Path, value: Any) -> None:
    """`{"created": <action>, "escalated": <action>}`: actions like a service task's."""
    if not expect(report, parts, value, "object"):
        return
    for key, action in value.items():
        if key not in NOTIFY_EVENTS:
            text = f"unknown notification {short(key)}; expected one of {', '.join(NOTIFY_EVENTS)}"
            report.about(parts + (key,), "unknown_field", text)
        else:
            _action(report, parts + (key,), action)


_TASK_FIELDS: dict[str, Checker] = {
    "assignee": template_string,
    "sla_hours": _sla_hours,
    "escalate_to_role": string,
    "escalate": boolean,
    "notify": _notify,
    "urgency": enum(*URGENCIES),
    "form": _form,
    "result_var": _identifier,
    "boundary": boundary_list,
    "for_each": for_each,
    # separation of duties (domain.engine.task_access; node ids checked in duties.py)
    "distinct_from": string_list,
    "distinct_from_starter": boolean,
    "milestone": string,  # WCP-18 (domain.engine.milestones; node checked in routing.py)
}
NODE_FIELDS: dict[str, dict[str, Checker]] = {
    "service_task": {
        "action": _action,
        "retry": object_with(_RETRY_FIELDS),
        "timeout": _action_timeout,
        "result_var": _identifier,
        "boundary": boundary_list,
        "for_each": for_each,
        "compensation": _action,  # the undo step of a saga (domain.engine.compensation)
    },
    "gateway": {},
    "inclusive": {},
    # WCP-17: one branch at a time, in `order` (domain.engine.interleave, routing.py)
    "parallel": {"interleaved": boolean, "order": expression},
    "join": {
        "wait_for": number(1, maximum=MAX_JOIN_WAIT_FOR, integer=True),
        "cancel_remaining": boolean,
    },
    "approval": {**_TASK_FIELDS, "approver_role": string},
    "user_task": {**_TASK_FIELDS, "role": string, "outcomes": string_list},
    "wait": {
        "event": string,
        "correlation": expression,
        "timeout": duration,
        "result_var": _identifier,
        "boundary": boundary_list,
        "milestone": string,
    },
    "timer": {"duration": duration_or_expression, "until": expression},
    "sub_workflow": {
        "definition": _slug,
        "version": _version,
        "input": expression_map(),
        "result_var": _identifier,
        "boundary": boundary_list,
        "for_each": for_each,
    },
    "set": {"variables": expression_map(_identifier)},
    "end": {
        "status": enum(*END_STATUSES),
        "output": expression_map(),
        "error": string,
        "compensate": boolean,
        "terminate": boolean,
    },
    "compensate": {},
    "event_gateway": {},
}
REQUIRED_NODE_FIELDS: dict[str, tuple[str, ...]] = {
    "service_task": ("action",),
    "sub_workflow": ("definition",),
    "set": ("variables",),
}


def _one_of(*keys: str, exclusive: bool) -> Callable[[Report, Path, dict[str, Any]], None]:
    """A node rule: at least one of `keys` present (and, if `exclusive`, at most one)."""
    wanted = " or ".join(f"'{k}'" for k in keys)

    def rule(report: Report, parts: Path, node: dict[str, Any]) -> None:
        present = [key for key in keys if key in node]
        if not present:
            report.about(parts, "missing_field", f"needs {wanted}")
        elif exclusive and len(present) > 1:
            report.about(parts, "invalid_value", f"must have exactly one of {wanted}")

    return rule


NODE_RULES = {
    "approval": _one_of("approver_role", "assignee", exclusive=False),
    "timer": _one_of("duration", "until", exclusive=True),
}

ROUTE_FIELDS: dict[str, Checker] = {
    "from": string,
    "to": string,
    "condition": expression,
    "outcome": string,
    "default": boolean,
    "name": string,
}
