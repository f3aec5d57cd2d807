"""Opening the bookmark a waiting node suspends on: task, wait, timer or child."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.durations import parse_duration
from domain.env import CommandEnv
from domain.expressions import evaluate, evaluate_mapping, render_value

if TYPE_CHECKING:
    from domain.definition import Node
    from domain.instance import WorkflowInstance

Evaluator = Callable[["Node", Callable[[], Any]], Any]


def open_waiting_bookmark(
    instance: WorkflowInstance,
    node: Node,
    ctx: dict[str, Any],
    env: CommandEnv,
    guard: Evaluator,
) -> None:
    """Suspend `instance` at `node`; `guard` turns expression errors into node failures."""
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
        bookmark.update(kind="timer", due_at=guard(node, lambda: _timer_due(node, ctx, env.now)))
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
    instance.create_bookmark(bookmark)


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
        "due_at": env.now + timedelta(hours=sla_hours) if sla_hours else None,
    }


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
        "due_at": env.now + parse_duration(timeout) if timeout else None,
    }


def _timer_due(node: Node, ctx: dict[str, Any], now: datetime) -> datetime:
    if node.get("duration"):
        return now + parse_duration(node.get("duration"))
    value = evaluate(node.get("until"), ctx)
    due = datetime.fromisoformat(str(value))
    if due.tzinfo is None:
        raise ValueError(f"timer 'until' gave {value!r} without a time zone")
    return due
