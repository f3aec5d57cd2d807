"""Task SLAs: urgency from the time left, what happens when a task's due time passes, and
the notifications a task node sends (`notify.created`, `notify.escalated`).

When a task's SLA passes (the timer worker runs `engine.escalate`):
- a node with a route of outcome `timeout` takes it: the task is cancelled ("sla passed")
  and the node completes with outcome `timeout`. It wins over `escalate_to_role` when both
  are set: once the flow has moved on nobody is left to act on an escalated task;
- otherwise `TaskEscalated` marks the task overdue, once, and adds `escalate_to_role` as a
  candidate role, unless escalation is off for the node (`"escalate": false`) or globally
  (`WAYMARK_SLA_ESCALATION=false`) or no role is set: then `to_role` is null.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.definition import TIMEOUT_OUTCOME, Definition, Node
from domain.env import CommandEnv
from domain.expressions.evaluator import ExpressionError, render_value
from domain.state import NOTIFY_PURPOSE, Bookmark
from domain.values import UnstorableValueError, clean_value

if TYPE_CHECKING:
    from domain.instance import WorkflowInstance

URGENT_WITHIN = timedelta(hours=4)
HIGH_WITHIN = timedelta(hours=24)
NOTIFY_EVENTS = ("created", "escalated")
NOTIFY_TIMEOUT_SECONDS = 30.0  # the outgoing-webhook timeout of the operations guides
SLA_PASSED = "sla passed"


def urgency_at(due_at: datetime | None, now: datetime, fixed: str | None = None) -> str:
    """`overdue`, `urgent` (< 4 h left), `high` (< 24 h), `normal`; a task without a due
    time keeps the node's fixed `urgency` (`low`, `normal`, `high`, `critical`)."""
    if due_at is None:
        return fixed or "normal"
    left = due_at - now
    if left <= timedelta(0):
        return "overdue"
    if left < URGENT_WITHIN:
        return "urgent"
    if left < HIGH_WITHIN:
        return "high"
    return "normal"


def has_timeout_route(definition: Definition, node: Node) -> bool:
    return any(r.outcome == TIMEOUT_OUTCOME for r in definition.outgoing(node.id))


def escalation_target(node: Node, bookmark: Bookmark, enabled: bool) -> str | None:
    """The role an escalation adds, or None when escalation is off or has no role."""
    if not enabled or node.get("escalate", True) is False:
        return None
    return bookmark.escalate_to_role or None


def task_context(instance: WorkflowInstance, bookmark: Bookmark, env: CommandEnv) -> dict[str, Any]:
    """What a notification's `{{ }}` templates see: the instance's context plus `task`."""
    base = env.public_url.rstrip("/")
    ctx = instance.context(env.now)
    ctx["task"] = {
        "id": bookmark.id,
        "node_id": bookmark.node_id,
        "name": bookmark.name or bookmark.node_id,
        "kind": bookmark.task_kind,
        "role": bookmark.role,
        "roles": bookmark.roles,
        "assignee": bookmark.assignee,
        "escalated_to": bookmark.escalated_to,
        "due_at": bookmark.due_at.isoformat() if bookmark.due_at else None,
        "link": f"{base}/v1/tasks/{bookmark.id}",
        "url": f"{base}/v1/tasks/{bookmark.id}",
        **decision_links(instance.tenant, bookmark, env, base),
    }
    ctx["public_url"] = base
    return ctx


def decision_links(
    tenant: str, bookmark: Bookmark, env: CommandEnv, base: str
) -> dict[str, str | None]:
    """`approve_url`/`reject_url`: signed links that decide an approval without an API key
    (`GET /v1/task-links/<token>` confirms, `POST` decides); None for a user task or when
    the process signs no links."""
    links: dict[str, str | None] = {"approve_url": None, "reject_url": None}
    if env.task_link is None or bookmark.task_kind != "approval":
        return links
    for decision in ("approve", "reject"):
        token = env.task_link(tenant, bookmark.id, decision, env.now, bookmark.assignee)
        links[f"{decision}_url"] = f"{base}/v1/task-links/{token}"
    return links


def schedule_notification(
    instance: WorkflowInstance, node: Node, bookmark: Bookmark, what: str, env: CommandEnv
) -> bool:
    """Schedule the node's `notify.<what>` action, if it has one, as a notify activity.

    It runs in the task worker after the commit like a service task, but its completion does
    not move the instance and its failure never fails it (`record_activity_result`). A
    template that does not render is recorded as a failed notification at once (scheduled
    with the unrendered action, then failed with the error): the instance goes on.
    """
    action = (node.get("notify") or {}).get(what)
    if not action:
        return False
    error: str | None = None
    try:
        rendered = clean_value(
            render_value(action, task_context(instance, bookmark, env)),
            f"the {what} notification of {node.id}",
        )
    except (ExpressionError, ValueError, UnstorableValueError) as e:
        rendered, error = action, f"the {what} notification of {node.id} did not render: {e}"
    activity_id = env.new_id()
    instance.schedule_activity(
        {
            "id": activity_id,
            "node_id": node.id,
            "attempt": 1,
            "attempt_number": 1,
            "action": rendered,
            "timeout_seconds": NOTIFY_TIMEOUT_SECONDS,
            "run_after": env.now,
            "idempotency_key": notify_key(instance, bookmark.id, what, 1),
            "purpose": NOTIFY_PURPOSE,
            "notify_event": what,
            **env.trace(),
        }
    )
    if error is not None:
        instance.fail_activity(activity_id, 1, error[:2000])
    return True


def notify_key(instance: WorkflowInstance, bookmark_id: str, what: str, attempt: int) -> str:
    """`instance:node-task:notify-<what>:<attempt>`: one key per notification attempt."""
    return f"{instance.id}:{bookmark_id}:notify-{what}:{attempt}"
