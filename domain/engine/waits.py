"""Opening the bookmark a waiting node suspends on: task, wait, timer or child."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.durations import MAX_DURATION, looks_like_duration, parse_duration
from domain.engine.sla import schedule_notification
from domain.env import CommandEnv
from domain.expressions.evaluator import evaluate, evaluate_mapping, render_value

if TYPE_CHECKING:
    from domain.definition import Node
    from domain.instance import WorkflowInstance

Evaluator = Callable[["Node", Callable[[], Any]], Any]

# Due times outside this range are refused where they are computed: PostgreSQL's timestamptz
# holds more than Python's datetime (years 1-9999 in UTC *and* in the session's time zone), so
# a value near either end (`0001-01-01T00:00:00+14:00` is year 0 in UTC) is stored but can
# never be read back, and would break every query that reads it. Nothing real is due before
# 1900 or after 9000.
EARLIEST_DUE = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_DUE = datetime(9000, 1, 1, tzinfo=UTC)


def open_waiting_bookmark(
    instance: WorkflowInstance,
    node: Node,
    ctx: dict[str, Any],
    env: CommandEnv,
    guard: Evaluator,
    extra: dict[str, Any] | None = None,
) -> str:
    """Suspend `instance` at `node`; `guard` turns expression errors into node failures.

    `extra` adds fields to the bookmark (an event gateway's group, a `for_each` item's
    `item_index`); returns its id."""
    bookmark: dict[str, Any] = {
        "id": env.new_id(),
        "node_id": node.id,
        "node_type": node.type,
        "created_at": env.now,
        "token": None,
        "event_type": None,
        "correlation": None,
        "due_at": None,
    }
    if node.type in ("approval", "user_task"):
        bookmark.update(_task_fields(node, ctx, env, guard))
    elif node.type == "wait":
        bookmark.update(_wait_fields(node, ctx, env, guard))
    elif node.type == "timer":
        bookmark.update(kind="timer", due_at=guard(node, lambda: timer_due(node, ctx, env.now)))
    elif node.type == "sub_workflow":
        child_input = guard(node, lambda: evaluate_mapping(node.get("input", {}), ctx))
        bookmark.update(
            kind="child",
            child_id=env.new_id(),
            child_definition=node.get("definition"),
            child_version=node.get("version"),
            child_input=child_input,
        )
    else:  # the validator only admits known types; this guards the engine itself
        raise ValueError(f"node type {node.type} does not wait")
    instance.create_bookmark({**bookmark, **env.trace(), **(extra or {})})
    if bookmark["kind"] == "task":
        schedule_notification(instance, node, instance.bookmarks[bookmark["id"]], "created", env)
    return str(bookmark["id"])


def _task_fields(
    node: Node, ctx: dict[str, Any], env: CommandEnv, guard: Evaluator
) -> dict[str, Any]:
    assignee = node.get("assignee")
    if assignee:
        assignee = guard(node, lambda: render_value(assignee, ctx)) or None
    sla_hours = node.get("sla_hours")
    return {
        "kind": "task",
        "task_kind": node.type,
        "name": node.name,
        "role": node.get("approver_role") or node.get("role"),
        "assignee": None if assignee is None else str(assignee),
        "claimed_by": None,
        "urgency": node.get("urgency", "normal"),
        "form": node.get("form"),
        "escalate_to_role": node.get("escalate_to_role"),
        "due_at": guard(node, lambda: _sla_due(sla_hours, env.now)) if sla_hours else None,
    }


def _sla_due(sla_hours: float, now: datetime) -> datetime:
    try:
        delay = timedelta(hours=sla_hours)
    except OverflowError:
        raise ValueError(f"sla_hours {sla_hours!r} is too large") from None
    return due_after(now, delay, "sla_hours")


def _wait_fields(
    node: Node, ctx: dict[str, Any], env: CommandEnv, guard: Evaluator
) -> dict[str, Any]:
    correlation = node.get("correlation")
    value = guard(node, lambda: evaluate(correlation, ctx)) if correlation else None
    timeout = node.get("timeout")
    return {
        "kind": "wait",
        "token": env.new_token(),
        "event_type": node.get("event"),
        "correlation": None if value is None else str(value),
        "due_at": (
            guard(node, lambda: due_after(env.now, parse_duration(timeout), "timeout"))
            if timeout
            else None
        ),
    }


def timer_due(node: Node, ctx: dict[str, Any], now: datetime) -> datetime:
    """When a `timer` node fires: `now + duration`, or its `until` (a zoned ISO timestamp)."""
    if node.get("duration"):
        return due_after(now, timer_duration(node.get("duration"), ctx), "duration")
    value = evaluate(node.get("until"), ctx)
    try:
        due = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"timer 'until' gave {value!r}, not an ISO-8601 timestamp") from None
    if due.tzinfo is None:
        raise ValueError(f"timer 'until' gave {value!r} without a time zone")
    return checked_due(due, f"timer 'until' {str(value)!r}")


def timer_duration(source: str, ctx: dict[str, Any]) -> timedelta:
    """A timer's `duration`: an ISO-8601 literal, or an expression evaluated now that gives
    a duration string or a number of seconds; ValueError saying what is wrong."""
    if looks_like_duration(source):
        return parse_duration(source)
    value = evaluate(source, ctx)
    if isinstance(value, str):
        delay = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"timer duration {source!r} gave {value!r}, not a number >= 0")
        delay = timedelta(seconds=min(float(value), MAX_DURATION.total_seconds() + 1))
    else:
        raise ValueError(
            f"timer duration {source!r} gave {value!r}: expected an ISO-8601 duration "
            "string or a number of seconds"
        )
    if delay > MAX_DURATION:
        raise ValueError(f"timer duration {source!r} gave more than {MAX_DURATION.days} days")
    return delay


def due_after(now: datetime, delay: timedelta, what: str) -> datetime:
    """`now + delay` as a due time; ValueError when it is out of the storable range."""
    try:
        due = now + delay
    except OverflowError:
        raise ValueError(f"{what} puts the due time beyond the year 9999") from None
    return checked_due(due, what)


def checked_due(due: datetime, what: str) -> datetime:
    """`due` if it lies in [EARLIEST_DUE, LATEST_DUE); ValueError naming `what` otherwise."""
    try:
        utc = due.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00: year 0 in UTC
        utc = None
    if utc is None or not EARLIEST_DUE <= utc < LATEST_DUE:
        raise ValueError(
            f"{what} gives the due time {due.isoformat()}, outside the supported range "
            f"{EARLIEST_DUE.year}-01-01 to {LATEST_DUE.year}-01-01 (UTC)"
        )
    return due
