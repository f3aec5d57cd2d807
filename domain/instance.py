"""The workflow instance aggregate: its events and the state they build.

Every decorated method is an event: its body runs when the command happens *and* on every
replay, so it only applies values carried by the event (no clock, no ids, no I/O). The
decisions — which node runs next, which ids and due times to use — are made by the
command methods in `domain.engine`, which then trigger these events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

ENDED_STATUSES = frozenset({"completed", "failed", "cancelled"})


class WorkflowInstance(Aggregate):
    """One run of one definition version."""

    @event("Started")
    def __init__(
        self,
        id: UUID,  # noqa: A002 - chosen by the application (keyed starts, child instances)
        tenant: str,
        definition: str,
        definition_version: int,
        input: dict[str, Any],  # noqa: A002 - the SPEC's field name
        correlation_id: str | None,
        idempotency_key: str | None,
        parent: dict[str, Any] | None,
    ) -> None:
        self.tenant = tenant
        self.definition = definition
        self.definition_version = definition_version
        self.input = input
        self.correlation_id = correlation_id
        self.idempotency_key = idempotency_key
        self.parent = parent  # parent_ref(...) for a child
        self.variables: dict[str, Any] = {}
        self.node_results: dict[str, Any] = {}
        self.node_attempts: dict[str, int] = {}
        self.bookmarks: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}
        self.join_arrivals: dict[str, list[int]] = {}
        self.ended_status: str | None = None
        self.output: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.ended_at: datetime | None = None

    # --- derived state -------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.ended_status:
            return self.ended_status
        if any(a["status"] == "scheduled" for a in self.activities.values()):
            return "running"
        if self.open_bookmarks():
            return "suspended"
        return "running"

    @property
    def is_ended(self) -> bool:
        return self.ended_status is not None

    def open_bookmarks(self) -> list[dict[str, Any]]:
        return [b for b in self.bookmarks.values() if b["status"] == "open"]

    def scheduled_activities(self) -> list[dict[str, Any]]:
        return [a for a in self.activities.values() if a["status"] == "scheduled"]

    def context(self, now: datetime) -> dict[str, Any]:
        """What expressions see: input, vars, nodes.<id>.result, instance, now."""
        return {
            "input": self.input,
            "vars": self.variables,
            "nodes": {node_id: {"result": r} for node_id, r in self.node_results.items()},
            "instance": {
                "id": str(self.id),
                "definition": self.definition,
                "version": self.definition_version,
                "correlation_id": self.correlation_id,
                "tenant": self.tenant,
            },
            "now": now.isoformat(),
        }

    # --- events --------------------------------------------------------------------------

    @event("NodeEntered")
    def _node_entered(self, node_id: str, node_type: str, via_route: int | None) -> None:
        pass  # audit trail: the path the instance took

    @event("VariablesSet")
    def _variables_set(self, node_id: str, values: dict[str, Any]) -> None:
        self.variables.update(values)

    @event("NodeCompleted")
    def _node_completed(
        self, node_id: str, outcome: str | None, result: Any, result_var: str | None
    ) -> None:
        self.node_results[node_id] = result
        if result_var:
            self.variables[result_var] = result

    @event("BookmarkCreated")
    def _bookmark_created(self, bookmark: dict[str, Any]) -> None:
        self.bookmarks[bookmark["id"]] = dict(bookmark, status="open", resolved_at=None)

    @event("BookmarkResumed")
    def _bookmark_resumed(self, bookmark_id: str, source: str, payload: Any, at: datetime) -> None:
        self.bookmarks[bookmark_id].update(status="consumed", resolved_at=at, resumed_by=source)

    @event("TaskCompleted")
    def _task_completed(
        self,
        bookmark_id: str,
        outcome: str,
        data: dict[str, Any] | None,
        comment: str | None,
        completed_by: str | None,
        at: datetime,
    ) -> None:
        self.bookmarks[bookmark_id].update(
            status="consumed", resolved_at=at, outcome=outcome, completed_by=completed_by
        )

    @event("TaskClaimed")
    def _task_claimed(self, bookmark_id: str, claimed_by: str) -> None:
        self.bookmarks[bookmark_id]["claimed_by"] = claimed_by

    @event("TaskDelegated")
    def _task_delegated(self, bookmark_id: str, assignee: str, delegated_by: str | None) -> None:
        self.bookmarks[bookmark_id].update(assignee=assignee, claimed_by=None)

    @event("BookmarkCancelled")
    def _bookmark_cancelled(self, bookmark_id: str, reason: str, at: datetime) -> None:
        self.bookmarks[bookmark_id].update(status="cancelled", resolved_at=at)

    @event("JoinArrived")
    def _join_arrived(self, node_id: str, route_index: int) -> None:
        self.join_arrivals.setdefault(node_id, []).append(route_index)

    @event("JoinCompleted")
    def _join_completed(self, node_id: str) -> None:
        self.join_arrivals.pop(node_id, None)

    @event("ActivityScheduled")
    def _activity_scheduled(self, activity: dict[str, Any]) -> None:
        self.activities[activity["id"]] = dict(activity, status="scheduled")
        self.node_attempts[activity["node_id"]] = activity["attempt_number"]

    @event("ActivityRetryScheduled")
    def _activity_retry_scheduled(
        self,
        activity_id: str,
        failed_attempt: int,
        error: str,
        attempt: int,
        attempt_number: int,
        run_after: datetime,
        idempotency_key: str,
    ) -> None:
        activity = self.activities[activity_id]
        activity.update(
            attempt=attempt,
            attempt_number=attempt_number,
            run_after=run_after,
            idempotency_key=idempotency_key,
            last_error=error,
        )
        self.node_attempts[activity["node_id"]] = attempt_number

    @event("ActivityCompleted")
    def _activity_completed(self, activity_id: str, attempt: int, output: Any) -> None:
        self.activities[activity_id]["status"] = "completed"

    @event("ActivityFailed")
    def _activity_failed(self, activity_id: str, attempt: int, error: str) -> None:
        self.activities[activity_id].update(status="failed", last_error=error)

    @event("ActivityCancelled")
    def _activity_cancelled(self, activity_id: str) -> None:
        self.activities[activity_id]["status"] = "cancelled"

    @event("Completed")
    def _completed(self, node_id: str, output: dict[str, Any], at: datetime) -> None:
        self.ended_status = "completed"
        self.output = output
        self.ended_at = at

    @event("Failed")
    def _failed(self, node_id: str | None, error: dict[str, Any], at: datetime) -> None:
        self.ended_status = "failed"
        self.error = error
        self.ended_at = at

    @event("Cancelled")
    def _cancelled(self, reason: str, at: datetime) -> None:
        self.ended_status = "cancelled"
        self.error = {"message": reason, "type": "cancelled"}
        self.ended_at = at


def parent_ref(instance_id: UUID, bookmark_id: str, depth: int) -> dict[str, Any]:
    """How a child instance points back at the parent's `child` bookmark.

    `depth` is the child's level in its instance tree (the root's children are 1). Instances
    started before it was recorded have no `depth` in their `Started` event: see
    `application.session.Session.depth_of`.
    """
    return {"instance_id": str(instance_id), "bookmark_id": bookmark_id, "depth": depth}
