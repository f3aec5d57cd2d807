"""Boundary events: timers and events attached to a node that waits (WCP-19, WCP-25).

A `user_task`, `approval`, `wait`, `service_task` or `sub_workflow` node may declare
`"boundary": [...]`; each entry is a timer (`"timer": "PT4H"`, or repeating
`"timer": "R3/PT1H"` / `"R/PT1H"`), a due time (`"until": "<expression>"`) or an event
(`"event": "order.cancelled", "correlation": "<expression>"`), with `"to": "<node id>"` and
`"interrupting": true` (the default) or `false`.

When the node opens its work (the host: a task, wait or child bookmark, a service task's
activity, or the run of a `for_each` node, `multi.host_id`), every boundary opens a bookmark
of its own: a `timer` bookmark for timers (fired
by the timer worker like any timer) or a `wait` bookmark for events (resumed by the event
delivery path and callbacks like any wait). The bookmark names its host (`boundary_of`).

- Interrupting, when it fires: the host is cancelled (a task leaves the queue, an activity is
  withdrawn and its late result ignored, a child instance is cancelled by the settle step;
  a `for_each` run cancels every item still open, then records `ForEachCompleted`),
  the other boundaries of the host are closed, and the instance goes on at `to`.
- Non-interrupting: `to` starts as a parallel branch and the host stays open. A repeating
  timer (`R<n>/<duration>`: at most n firings; `R/<duration>`: until the host closes) opens
  its next bookmark one interval after each firing; an event boundary re-arms at once, so it
  fires for each matching event while the host is open (BPMN's non-interrupting message).

Whatever closes the host (completion, failure, its SLA `timeout` route, an interrupting
boundary) closes its open boundaries: `sweep` runs whenever a node is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.durations import parse_duration
from domain.engine import multi
from domain.engine.waits import checked_due, due_after
from domain.env import CommandEnv
from domain.expressions.evaluator import evaluate
from domain.state import Bookmark

if TYPE_CHECKING:
    from domain.definition import Definition, Node
    from domain.instance import WorkflowInstance

BOUNDARY_HOSTS = ("user_task", "approval", "wait", "service_task", "sub_workflow")
UNBOUNDED = -1
_REPEATING = re.compile(r"R(\d*)/(.+)")
Guard = Callable[["Node", Callable[[], Any]], Any]


def parse_timer(text: str) -> tuple[int, timedelta]:
    """`PT4H` → (1, 4 h); `R3/PT1H` → (3, 1 h); `R/PT1H` → (UNBOUNDED, 1 h). ValueError."""
    match = _REPEATING.fullmatch(text)
    if match is None:
        return 1, parse_duration(text)
    count, interval = match.groups()
    if count == "":
        repeats = UNBOUNDED
    elif int(count) < 1:
        raise ValueError(f"a repeating timer {text!r} needs at least one repetition (R1/...)")
    else:
        repeats = int(count)
    delay = parse_duration(interval)
    if delay <= timedelta(0):
        raise ValueError(f"a repeating timer {text!r} needs an interval longer than zero")
    return repeats, delay


def prepare(node: Node, ctx: dict[str, Any], env: CommandEnv, guard: Guard) -> list[dict[str, Any]]:
    """The bookmarks of the node's boundaries, computed BEFORE its host is opened: a due
    time or correlation that fails to evaluate fails the node with nothing left open."""
    prepared = []
    for index, spec in enumerate(node.get("boundary") or ()):

        def compute(index: int = index, spec: dict[str, Any] = spec) -> dict[str, Any]:
            return _bookmark(node, index, spec, ctx, env)

        prepared.append(guard(node, compute))
    return prepared


def arm(instance: WorkflowInstance, prepared: list[dict[str, Any]], host_id: str) -> None:
    """Open the prepared boundary bookmarks, attached to `host_id`."""
    for bookmark in prepared:
        instance.create_bookmark({**bookmark, "boundary_of": host_id})


def fire(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark: Bookmark,
    *,
    payload: Any,
    source: str,
    env: CommandEnv,
) -> list[tuple[str, int | None]]:
    """A boundary's timer or event arrived: resume it, act on its host; where to go next."""
    node = definition.nodes[bookmark.node_id]
    index = int(bookmark.boundary_index or 0)
    spec = node.get("boundary")[index]
    interrupting = spec.get("interrupting", True) is not False
    host_id = str(bookmark.boundary_of)
    instance.resume_bookmark(bookmark.id, source, payload, env.now)
    instance.fire_boundary(node.id, bookmark.id, host_id, index, interrupting, spec["to"], env.now)
    if spec.get("result_var"):
        instance.set_variables(node.id, {spec["result_var"]: payload})
    if interrupting:
        reason = f"interrupted by boundary {index} of {node.id}"
        _cancel_host(instance, node, host_id, reason, env)
        sweep(instance, env)
    else:
        _rearm(instance, node, bookmark, index, spec, env)
    return [(spec["to"], None)]


def sweep(instance: WorkflowInstance, env: CommandEnv) -> None:
    """Close every open boundary whose host is no longer open."""
    for bookmark in instance.open_bookmarks():
        if bookmark.boundary_of is not None and not _host_open(instance, bookmark):
            instance.cancel_bookmark(bookmark.id, "its node is no longer waiting", env.now)


def _host_open(instance: WorkflowInstance, boundary: Bookmark) -> bool:
    host_id = str(boundary.boundary_of)
    host = instance.bookmarks.get(host_id)
    if host is not None:
        return host.is_open
    activity = instance.activities.get(host_id)
    if activity is not None:
        return activity.is_scheduled
    return multi.is_running(instance, boundary.node_id, host_id)


def _cancel_host(
    instance: WorkflowInstance, node: Node, host_id: str, reason: str, env: CommandEnv
) -> None:
    if multi.is_running(instance, node.id, host_id):
        # A for_each run: every open item (task, activity, child bookmark) and its batch.
        state = instance.for_each[node.id]
        cancelled = multi.close_items(instance, node, reason, env)
        instance.complete_for_each(node.id, len(state.results), cancelled)
        return
    host = instance.bookmarks.get(host_id)
    if host is not None and host.is_open:
        # A child bookmark's child instance is cancelled by the settle step of this command.
        instance.cancel_bookmark(host_id, reason, env.now)
    activity = instance.activities.get(host_id)
    if activity is not None and activity.is_scheduled:
        # A worker running it right now records a stale result: `record_activity_result`
        # ignores an activity that is no longer scheduled.
        instance.cancel_activity(host_id)


def _rearm(
    instance: WorkflowInstance,
    node: Node,
    fired: Bookmark,
    index: int,
    spec: dict[str, Any],
    env: CommandEnv,
) -> None:
    """A non-interrupting boundary opens its next bookmark while the host stays open."""
    if "until" in spec:
        return  # a due time passes once
    repeats = fired.repeats_left
    if "timer" in spec and repeats == 0:
        return
    try:
        bookmark = _bookmark(node, index, spec, {}, env, rearming=fired)
    except ValueError:
        return  # the next repetition would fall outside the storable range: no more
    if "timer" in spec and repeats is not None and repeats != UNBOUNDED:
        bookmark["repeats_left"] = repeats - 1
    instance.create_bookmark({**bookmark, "boundary_of": fired.boundary_of})


def _bookmark(
    node: Node,
    index: int,
    spec: dict[str, Any],
    ctx: dict[str, Any],
    env: CommandEnv,
    *,
    rearming: Bookmark | None = None,
) -> dict[str, Any]:
    bookmark: dict[str, Any] = {
        "id": env.new_id(),
        "node_id": node.id,
        "node_type": node.type,
        "created_at": env.now,
        "token": None,
        "event_type": None,
        "correlation": None,
        "due_at": None,
        "boundary_index": index,
    }
    if "timer" in spec:
        repeats, delay = parse_timer(spec["timer"])
        bookmark.update(
            kind="timer",
            due_at=due_after(env.now, delay, f"boundary {index} timer"),
            repeats_left=UNBOUNDED if repeats == UNBOUNDED else repeats - 1,
        )
    elif "until" in spec:
        bookmark.update(kind="timer", due_at=_until(spec["until"], ctx, index))
    else:
        # A re-armed event boundary keeps the correlation it was first opened with.
        correlation = rearming.correlation if rearming is not None else None
        if rearming is None and spec.get("correlation"):
            value = evaluate(spec["correlation"], ctx)
            correlation = None if value is None else str(value)
        bookmark.update(
            kind="wait",
            token=env.new_token(),
            event_type=spec["event"],
            correlation=correlation,
        )
    return bookmark


def _until(expression: str, ctx: dict[str, Any], index: int) -> datetime:
    value = evaluate(expression, ctx)
    try:
        due = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"boundary {index} 'until' gave {value!r}, not an ISO-8601 timestamp"
        ) from None
    if due.tzinfo is None:
        raise ValueError(f"boundary {index} 'until' gave {value!r} without a time zone")
    return checked_due(due, f"boundary {index} 'until' {str(value)!r}")
