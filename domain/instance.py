"""The workflow instance aggregate: its events and the state they build.

Every event is a class nested in `WorkflowInstance` (`WorkflowInstance.BookmarkCreated`, ...)
and has one public command method decorated with `@event(ThatClass)`. The method's body runs
when the command happens *and* on every replay, so it only applies values carried by the
event (no clock, no ids, no I/O). The decisions — which node runs next, which ids and due
times to use — are made in `domain.engine`, which then calls these methods. The class names
are the stored topics (`domain.instance:WorkflowInstance.<Name>`): never rename one without
`register_topic`. `domain.events` enumerates them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.fast_commands import fast_commands
from domain.renames import rename_nodes
from domain.state import (
    BATCH_PURPOSE,
    COMPENSATE_PURPOSE,
    Activity,
    ActivityStatus,
    Bookmark,
    BookmarkStatus,
    ForEachState,
    Incident,
    IncidentStatus,
    InterleaveState,
)

# Activities that are no attempt of their node's own action.
_NOT_COUNTED = frozenset({BATCH_PURPOSE, COMPENSATE_PURPOSE})


@fast_commands  # the @event methods without the library's per-call work (fast_commands.py)
class WorkflowInstance(Aggregate):
    """One run of one definition version."""

    class Event(Aggregate.Event):
        """The base class of every event of an instance."""

    class Started(Event, Aggregate.Created):
        tenant: str
        definition: str
        definition_version: int
        input: dict[str, Any]  # noqa: A003 - the SPEC's field name
        correlation_id: str | None
        idempotency_key: str | None
        parent: dict[str, Any] | None
        # What started it (`domain.origin`); absent from events stored before it existed.
        started_by: dict[str, Any] | None = None

    @event(Started)
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
        started_by: dict[str, Any] | None = None,
    ) -> None:
        self.tenant = tenant
        self.definition = definition
        self.definition_version = definition_version
        self.input = input
        self.correlation_id = correlation_id
        self.idempotency_key = idempotency_key
        self.parent = parent  # parent_ref(...) for a child
        self.started_by = started_by
        self.variables: dict[str, Any] = {}
        self.node_results: dict[str, Any] = {}
        self.node_attempts: dict[str, int] = {}
        self.bookmarks: dict[str, Bookmark] = {}
        self.activities: dict[str, Activity] = {}
        self.join_arrivals: dict[str, list[int]] = {}
        # Joins closing an inclusive split: how many branches it started (domain.engine.joins).
        self.join_expected: dict[str, int] = {}
        # N-of-M joins that fired early: arrivals still to come that are ignored.
        self.join_late: dict[str, int] = {}
        # Joins closing an interleaved `parallel` (WCP-17, domain.engine.interleave): the
        # split and the routes of the branches started so far, one at a time.
        self.interleaved: dict[str, InterleaveState] = {}
        self.ended_status: str | None = None
        self.output: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.ended_at: datetime | None = None
        # multi-instance nodes running now, by node id (`domain.engine.multi`)
        self.for_each: dict[str, ForEachState] = {}
        # completed steps that have a `compensation`, oldest first (`domain.engine.compensation`)
        self.compensations: list[dict[str, Any]] = []
        self.compensation_seq = 0
        # compensation runs under way, by the `end`/`compensate` node that started them
        self.compensating: dict[str, dict[str, Any]] = {}
        # node failures held for an operator, by incident id (`domain.engine.incidents`)
        self.incidents: dict[str, Incident] = {}

    # --- derived state -------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.ended_status:
            return self.ended_status
        if self.open_incidents():  # held at a failed node until an operator acts
            return "incident"
        # A notification does not hold the instance: a task waiting stays `suspended`.
        if any(a.is_scheduled and not a.is_notification for a in self.activities.values()):
            return "running"
        if self.open_bookmarks():
            return "suspended"
        return "running"

    @property
    def is_ended(self) -> bool:
        return self.ended_status is not None

    def open_bookmarks(self) -> list[Bookmark]:
        return [b for b in self.bookmarks.values() if b.is_open]

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents.values() if i.is_open]

    def scheduled_activities(self) -> list[Activity]:
        return [a for a in self.activities.values() if a.is_scheduled]

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

    # --- events and their command methods --------------------------------------------

    class NodeEntered(Event):
        node_id: str
        node_type: str
        via_route: int | None

    @event(NodeEntered)
    def enter_node(self, node_id: str, node_type: str, via_route: int | None) -> None:
        pass  # audit trail: the path the instance took

    class VariablesSet(Event):
        node_id: str
        values: dict[str, Any]

    @event(VariablesSet)
    def set_variables(self, node_id: str, values: dict[str, Any]) -> None:
        self.variables.update(values)

    class NodeCompleted(Event):
        node_id: str
        outcome: str | None
        result: Any
        result_var: str | None

    @event(NodeCompleted)
    def complete_node(
        self, node_id: str, outcome: str | None, result: Any, result_var: str | None
    ) -> None:
        self.node_results[node_id] = result
        if result_var:
            self.variables[result_var] = result

    class BookmarkCreated(Event):
        bookmark: dict[str, Any]  # JSON-like, as 0.1 stored it; applied as a `Bookmark`

    @event(BookmarkCreated)
    def create_bookmark(self, bookmark: dict[str, Any]) -> None:
        self.bookmarks[bookmark["id"]] = Bookmark.from_payload(bookmark)
        self._item_started(bookmark)

    class BookmarkResumed(Event):
        bookmark_id: str
        source: str
        payload: Any
        at: datetime

    @event(BookmarkResumed)
    def resume_bookmark(self, bookmark_id: str, source: str, payload: Any, at: datetime) -> None:
        self._replace_bookmark(
            bookmark_id, status=BookmarkStatus.CONSUMED, resolved_at=at, resumed_by=source
        )

    class TaskCompleted(Event):
        bookmark_id: str
        outcome: str
        data: dict[str, Any] | None
        comment: str | None
        completed_by: str | None
        at: datetime
        # Who acted (`domain.engine.task_access.Actor.payload`); absent from older events.
        actor: dict[str, Any] | None = None

    @event(TaskCompleted)
    def complete_task(
        self,
        bookmark_id: str,
        outcome: str,
        data: dict[str, Any] | None,
        comment: str | None,
        completed_by: str | None,
        at: datetime,
        actor: dict[str, Any] | None = None,
    ) -> None:
        self._replace_bookmark(
            bookmark_id,
            status=BookmarkStatus.CONSUMED,
            resolved_at=at,
            outcome=outcome,
            completed_by=completed_by,
        )

    class TaskClaimed(Event):
        bookmark_id: str
        claimed_by: str
        actor: dict[str, Any] | None = None  # who acted; absent from older events

    @event(TaskClaimed)
    def claim_task(
        self, bookmark_id: str, claimed_by: str, actor: dict[str, Any] | None = None
    ) -> None:
        self._replace_bookmark(bookmark_id, claimed_by=claimed_by)

    class TaskDelegated(Event):
        bookmark_id: str
        assignee: str
        delegated_by: str | None
        actor: dict[str, Any] | None = None  # who acted; absent from older events

    @event(TaskDelegated)
    def delegate_task(
        self,
        bookmark_id: str,
        assignee: str,
        delegated_by: str | None,
        actor: dict[str, Any] | None = None,
    ) -> None:
        self._replace_bookmark(bookmark_id, assignee=assignee, claimed_by=None)

    class TaskEscalated(Event):
        """A task's SLA passed: marked overdue, `to_role` added as a candidate (or None)."""

        bookmark_id: str
        to_role: str | None
        at: datetime

    @event(TaskEscalated)
    def escalate_task(self, bookmark_id: str, to_role: str | None, at: datetime) -> None:
        self._replace_bookmark(bookmark_id, escalated_at=at, escalated_to=to_role)

    class BookmarkCancelled(Event):
        bookmark_id: str
        reason: str
        at: datetime

    @event(BookmarkCancelled)
    def cancel_bookmark(self, bookmark_id: str, reason: str, at: datetime) -> None:
        self._replace_bookmark(bookmark_id, status=BookmarkStatus.CANCELLED, resolved_at=at)

    class JoinArrived(Event):
        node_id: str
        route_index: int

    @event(JoinArrived)
    def arrive_at_join(self, node_id: str, route_index: int) -> None:
        self.join_arrivals.setdefault(node_id, []).append(route_index)

    class JoinCompleted(Event):
        node_id: str

    @event(JoinCompleted)
    def complete_join(self, node_id: str) -> None:
        self.join_arrivals.pop(node_id, None)
        self.join_expected.pop(node_id, None)
        self.interleaved.pop(node_id, None)

    class InterleavedBranchStarted(Event):
        """An interleaved `parallel` (WCP-17) started its branch over route `route_index`;
        `started` are all its branches' routes started so far (this one last), of
        `branches`. The next starts when this one reaches `join_id`."""

        node_id: str
        join_id: str
        route_index: int
        started: list[int]
        branches: int

    @event(InterleavedBranchStarted)
    def start_interleaved_branch(
        self, node_id: str, join_id: str, route_index: int, started: list[int], branches: int
    ) -> None:
        self.interleaved[join_id] = InterleaveState(split=node_id, started=tuple(started))

    # --- inclusive splits, N-of-M joins, branch ends (domain.engine.joins, .branches) ----

    class InclusiveSplit(Event):
        """An inclusive gateway took `routes`; `join_id` (its closing join) waits for them."""

        node_id: str
        join_id: str | None
        routes: list[int]

    @event(InclusiveSplit)
    def split_inclusive(self, node_id: str, join_id: str | None, routes: list[int]) -> None:
        if join_id is not None:
            self.join_expected[join_id] = len(routes)
            self.join_late.pop(join_id, None)

    class PartialJoinCompleted(Event):
        """An N-of-M join fired after `arrived` of `expected` branches; the other branches
        were cancelled (`cancelled`) or their arrivals will be ignored (`ignored` of them).
        `reset` names joins inside the cancelled branches whose arrivals were dropped."""

        node_id: str
        arrived: int
        expected: int
        cancelled: bool
        ignored: int
        reset: list[str]

    @event(PartialJoinCompleted)
    def complete_partial_join(
        self,
        node_id: str,
        arrived: int,
        expected: int,
        cancelled: bool,
        ignored: int,
        reset: list[str],
    ) -> None:
        self.join_arrivals.pop(node_id, None)
        self.join_expected.pop(node_id, None)
        if ignored:
            self.join_late[node_id] = ignored
        for join_id in reset:
            self.join_arrivals.pop(join_id, None)
            self.join_expected.pop(join_id, None)
            self.interleaved.pop(join_id, None)

    class JoinArrivalIgnored(Event):
        """A branch reached an N-of-M join that had already fired: it ends there."""

        node_id: str
        route_index: int | None

    @event(JoinArrivalIgnored)
    def ignore_join_arrival(self, node_id: str, route_index: int | None) -> None:
        left = self.join_late.get(node_id, 0) - 1
        if left > 0:
            self.join_late[node_id] = left
        else:
            self.join_late.pop(node_id, None)

    class BranchEnded(Event):
        """An `end` with `"terminate": false` ended its branch only."""

        node_id: str

    @event(BranchEnded)
    def end_branch(self, node_id: str) -> None:
        pass  # audit trail; the instance ends when no branch is left (engine.branches)

    class ActivityScheduled(Event):
        activity: dict[str, Any]  # JSON-like, as 0.1 stored it; applied as an `Activity`

    @event(ActivityScheduled)
    def schedule_activity(self, activity: dict[str, Any]) -> None:
        self.activities[activity["id"]] = Activity.from_payload(activity)
        if activity.get("purpose") not in _NOT_COUNTED:
            self.node_attempts[activity["node_id"]] = activity["attempt_number"]
        self._item_started(activity)

    class ActivityRetryScheduled(Event):
        activity_id: str
        failed_attempt: int
        error: str
        attempt: int
        attempt_number: int
        run_after: datetime
        idempotency_key: str

    @event(ActivityRetryScheduled)
    def schedule_activity_retry(
        self,
        activity_id: str,
        failed_attempt: int,
        error: str,
        attempt: int,
        attempt_number: int,
        run_after: datetime,
        idempotency_key: str,
    ) -> None:
        activity = self._replace_activity(
            activity_id,
            attempt=attempt,
            attempt_number=attempt_number,
            run_after=run_after,
            idempotency_key=idempotency_key,
            last_error=error,
        )
        if activity.purpose not in _NOT_COUNTED:
            self.node_attempts[activity.node_id] = attempt_number

    class ActivityCompleted(Event):
        activity_id: str
        attempt: int
        output: Any

    @event(ActivityCompleted)
    def complete_activity(self, activity_id: str, attempt: int, output: Any) -> None:
        self._replace_activity(activity_id, status=ActivityStatus.COMPLETED)

    class ActivityFailed(Event):
        activity_id: str
        attempt: int
        error: str

    @event(ActivityFailed)
    def fail_activity(self, activity_id: str, attempt: int, error: str) -> None:
        self._replace_activity(activity_id, status=ActivityStatus.FAILED, last_error=error)

    class ActivityCancelled(Event):
        activity_id: str

    @event(ActivityCancelled)
    def cancel_activity(self, activity_id: str) -> None:
        self._replace_activity(activity_id, status=ActivityStatus.CANCELLED)

    class Completed(Event):
        node_id: str
        output: dict[str, Any]
        at: datetime

    @event(Completed)
    def complete(self, node_id: str, output: dict[str, Any], at: datetime) -> None:
        self.ended_status = "completed"
        self.output = output
        self.ended_at = at

    class Failed(Event):
        node_id: str | None
        error: dict[str, Any]
        at: datetime

    @event(Failed)
    def fail(self, node_id: str | None, error: dict[str, Any], at: datetime) -> None:
        self.ended_status = "failed"
        self.error = error
        self.ended_at = at

    class Cancelled(Event):
        reason: str
        at: datetime

    @event(Cancelled)
    def cancel(self, reason: str, at: datetime) -> None:
        self.ended_status = "cancelled"
        self.error = {"message": reason, "type": "cancelled"}
        self.ended_at = at

    # --- boundary events and event gateways (domain.engine.boundary, .event_gateway) ---

    class BoundaryFired(Event):
        """A boundary timer or event of `node_id` fired; its bookmark is resumed alongside."""

        node_id: str
        bookmark_id: str  # the boundary's own bookmark
        host_id: str  # the task, wait, child bookmark or the activity it is attached to
        index: int  # its position in the node's `boundary` list
        interrupting: bool
        to: str
        at: datetime

    @event(BoundaryFired)
    def fire_boundary(
        self,
        node_id: str,
        bookmark_id: str,
        host_id: str,
        index: int,
        interrupting: bool,
        to: str,
        at: datetime,
    ) -> None:
        pass  # audit trail: the host's cancellation and the resume are events of their own

    class EventGatewayDecided(Event):
        """The first of an event gateway's waits fired; the others are cancelled alongside."""

        node_id: str  # the event_gateway node
        group: str  # the entry of the gateway whose bookmarks raced
        bookmark_id: str  # the winner
        winner_node_id: str
        at: datetime

    @event(EventGatewayDecided)
    def decide_event_gateway(
        self, node_id: str, group: str, bookmark_id: str, winner_node_id: str, at: datetime
    ) -> None:
        pass  # audit trail: the losers' BookmarkCancelled events follow

    # --- multi-instance (`for_each`) and compensation (saga) ----------------------------

    class ForEachStarted(Event):
        """A `for_each` node evaluated its items: one task/activity/child per item follows."""

        node_id: str
        items: list[Any]
        mode: str
        run: int

    @event(ForEachStarted)
    def start_for_each(self, node_id: str, items: list[Any], mode: str, run: int) -> None:
        self.for_each[node_id] = ForEachState(items=list(items), mode=mode, run=run)

    class ForEachItemCompleted(Event):
        node_id: str
        index: int
        result: Any

    @event(ForEachItemCompleted)
    def complete_for_each_item(self, node_id: str, index: int, result: Any) -> None:
        self.for_each[node_id].results[index] = result

    class ForEachCompleted(Event):
        """Every item finished, or `completion` held (`cancelled` items were still open)."""

        node_id: str
        completed: int
        cancelled: int

    @event(ForEachCompleted)
    def complete_for_each(self, node_id: str, completed: int, cancelled: int) -> None:
        self.for_each.pop(node_id, None)

    class CompensationRegistered(Event):
        """A step with a `compensation` completed: its undo runs if the saga compensates."""

        node_id: str
        result: Any

    @event(CompensationRegistered)
    def register_compensation(self, node_id: str, result: Any) -> None:
        self.compensation_seq += 1
        self.compensations.append(
            {"seq": self.compensation_seq, "node_id": node_id, "result": result}
        )

    class CompensationStarted(Event):
        """`node_id` (an `end` with `compensate` or a `compensate` node) undoes `steps`, in
        this order (newest first)."""

        node_id: str
        steps: list[dict[str, Any]]

    @event(CompensationStarted)
    def start_compensation(self, node_id: str, steps: list[dict[str, Any]]) -> None:
        taken = {step["seq"] for step in steps}
        self.compensations = [c for c in self.compensations if c["seq"] not in taken]
        self.compensating[node_id] = {"steps": list(steps), "done": 0}

    class StepCompensated(Event):
        node_id: str
        step_node_id: str
        seq: int
        output: Any

    @event(StepCompensated)
    def compensate_step(self, node_id: str, step_node_id: str, seq: int, output: Any) -> None:
        self.compensating[node_id]["done"] += 1

    class CompensationCompleted(Event):
        node_id: str

    @event(CompensationCompleted)
    def complete_compensation(self, node_id: str) -> None:
        self.compensating.pop(node_id, None)

    # --- incidents and operator recovery (domain.engine.incidents, .recovery) ---------

    class IncidentRaised(Event):
        """A node failed with no `error` route and `on_failure: "incident"`: held, not failed."""

        incident_id: str
        node_id: str
        node_type: str
        error: dict[str, Any]
        at: datetime

    @event(IncidentRaised)
    def raise_incident(
        self, incident_id: str, node_id: str, node_type: str, error: dict[str, Any], at: datetime
    ) -> None:
        self.incidents[incident_id] = Incident(incident_id, node_id, node_type, error, at)

    class IncidentRetried(Event):
        """An operator retries `node_id` (with `variables` merged first). `incident_id` is
        None and `reopened` true when a FAILED instance is retried."""

        incident_id: str | None
        node_id: str
        variables: dict[str, Any]
        reopened: bool
        actor: str | None
        reason: str | None
        at: datetime

    @event(IncidentRetried)
    def retry_incident(
        self,
        incident_id: str | None,
        node_id: str,
        variables: dict[str, Any],
        reopened: bool,
        actor: str | None,
        reason: str | None,
        at: datetime,
    ) -> None:
        self._resolve(incident_id, reopened, IncidentStatus.RETRIED, actor, reason, at)
        self.variables.update(variables)

    class IncidentSkipped(Event):
        """An operator completes `node_id` with `result` (and `outcome`); its NodeCompleted
        follows."""

        incident_id: str | None
        node_id: str
        result: Any
        outcome: str | None
        reopened: bool
        actor: str | None
        reason: str | None
        at: datetime

    @event(IncidentSkipped)
    def skip_incident(
        self,
        incident_id: str | None,
        node_id: str,
        result: Any,
        outcome: str | None,
        reopened: bool,
        actor: str | None,
        reason: str | None,
        at: datetime,
    ) -> None:
        self._resolve(incident_id, reopened, IncidentStatus.SKIPPED, actor, reason, at)

    class IncidentClosed(Event):
        """The instance ended or was cancelled while the incident was open."""

        incident_id: str
        reason: str
        at: datetime

    @event(IncidentClosed)
    def close_incident(self, incident_id: str, reason: str, at: datetime) -> None:
        self.incidents[incident_id] = replace(
            self.incidents[incident_id],
            status=IncidentStatus.CLOSED,
            resolved_at=at,
            reason=reason,
        )

    def _resolve(
        self,
        incident_id: str | None,
        reopened: bool,
        status: IncidentStatus,
        actor: str | None,
        reason: str | None,
        at: datetime,
    ) -> None:
        if reopened:  # a FAILED instance runs again
            self.ended_status = None
            self.error = None
            self.output = None
            self.ended_at = None
        if incident_id is not None:
            self.incidents[incident_id] = replace(
                self.incidents[incident_id],
                status=status,
                resolved_at=at,
                resolved_by=actor,
                reason=reason,
            )

    # --- operator recovery (domain.engine.modify, domain.engine.migration) ---------------

    class InstanceModified(Event):
        """An operator cancelled active nodes and/or started nodes (`operations`, in order);
        the cancellations and the walk follow as events of their own."""

        operations: list[dict[str, Any]]
        by: str | None
        reason: str | None
        at: datetime

    @event(InstanceModified)
    def modify(
        self, operations: list[dict[str, Any]], by: str | None, reason: str | None, at: datetime
    ) -> None:
        pass  # audit trail

    class InstanceMigrated(Event):
        """The instance moved to `to_version`: node ids in its state renamed by `nodes`, join
        arrivals' route indices by `routes` (str(old) → new); nothing else changes."""

        from_version: int
        to_version: int
        nodes: dict[str, str]
        routes: dict[str, int]
        by: str | None
        reason: str | None
        at: datetime

    @event(InstanceMigrated)
    def migrate(
        self,
        from_version: int,
        to_version: int,
        nodes: dict[str, str],
        routes: dict[str, int],
        by: str | None,
        reason: str | None,
        at: datetime,
    ) -> None:
        self.definition_version = to_version
        rename_nodes(self, nodes, {int(k): v for k, v in routes.items()})

    # --- helpers of the event bodies (not commands) -------------------------------------

    def _item_started(self, payload: dict[str, Any]) -> None:
        state = self.for_each.get(payload["node_id"])
        if state is not None and payload.get("item_index") is not None:
            state.started += 1

    def _replace_bookmark(self, bookmark_id: str, **changes: Any) -> Bookmark:
        bookmark = self.bookmarks[bookmark_id] = replace(self.bookmarks[bookmark_id], **changes)
        return bookmark

    def _replace_activity(self, activity_id: str, **changes: Any) -> Activity:
        activity = self.activities[activity_id] = replace(self.activities[activity_id], **changes)
        return activity


def parent_ref(instance_id: UUID, bookmark_id: str, depth: int) -> dict[str, Any]:
    """How a child instance points back at the parent's `child` bookmark.

    `depth` is the child's level in its instance tree (the root's children are 1). Instances
    started before it was recorded have no `depth` in their `Started` event: see
    `application.session.CommandAttempt.depth_of`.
    """
    return {"instance_id": str(instance_id), "bookmark_id": bookmark_id, "depth": depth}
