"""Use cases for the task queue (approvals, user tasks) and service-task results."""

from __future__ import annotations

import logging
from typing import Any

from application.errors import InvalidDataError, TaskNotFoundError
from application.ports import ActionResult, ReadModelQueries, SchemaValidator
from application.read_models import ActivityRow, Page
from application.session import CommandAttempt, CommandRunner
from application.views import instance_view, task_view
from domain import engine
from domain.values import clean_text, contains_nul

logger = logging.getLogger(__name__)


class TaskService:
    """The task queue: list, claim, delegate, complete."""

    def __init__(self, runner: CommandRunner, queries: ReadModelQueries, schemas: SchemaValidator):
        self.runner = runner
        self.queries = queries
        self.schemas = schemas

    def list(
        self,
        tenant: str,
        *,
        assignee: str | None = None,
        role: str | None = None,
        status: str | None = None,
        urgency: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        page = self.queries.list_tasks(
            tenant,
            assignee=assignee,
            role=role,
            status=status,
            urgency=urgency,
            limit=limit,
            cursor=cursor,
        )
        return Page([task_view(row) for row in page.items], page.next_cursor)

    def get(self, tenant: str, task_id: str) -> dict[str, Any]:
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return task_view(row)

    def claim(self, tenant: str, task_id: str, user: str) -> dict[str, Any]:
        return self._on_task(tenant, task_id, lambda i, s: engine.claim_task(i, task_id, user))

    def delegate(self, tenant: str, task_id: str, assignee: str, by: str | None) -> dict[str, Any]:
        return self._on_task(
            tenant, task_id, lambda i, s: engine.delegate_task(i, task_id, assignee, by)
        )

    def complete(
        self,
        tenant: str,
        task_id: str,
        *,
        outcome: str | None,
        data: dict[str, Any] | None,
        comment: str | None,
        user: str | None,
    ) -> dict[str, Any]:
        """Complete a task; form data is checked against the node's form schema first."""
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.form:
            errors = self.schemas.validate(row.form, data or {})
            if errors:
                raise InvalidDataError("form data", errors)

        def apply(instance: Any, session: CommandAttempt) -> None:
            engine.complete_task(
                instance,
                session.definition_of(instance),
                task_id,
                outcome=outcome,
                data=data,
                comment=comment,
                completed_by=user,
                env=session.env,
            )

        return self._on_task(tenant, task_id, apply)

    def _on_task(self, tenant: str, task_id: str, apply: Any) -> dict[str, Any]:
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(row.instance_id, tenant)
            apply(instance, session)
            return instance_view(instance)

        return self.runner.run(command, row.instance_id)


class ActivityService:
    """Records what a task worker's action did, exactly once per attempt."""

    def __init__(self, runner: CommandRunner):
        self.runner = runner

    def record(self, activity: ActivityRow, result: ActionResult) -> bool:
        """False when the result is stale (recorded already, or the instance moved on).

        A result the instance cannot store fails the node (`domain.values`); NULs in an
        action's output are replaced (U+FFFD), noted here in the log.
        """
        if result.ok and contains_nul(result.output):
            logger.warning(
                "activity %s attempt %d: NUL characters in the result replaced by U+FFFD",
                activity.id,
                activity.attempt,
            )

        def command(session: CommandAttempt) -> bool:
            instance = session.load(activity.instance_id)
            if instance.is_ended:
                return False
            return engine.record_activity_result(
                instance,
                session.definition_of(instance),
                activity.id,
                attempt=activity.attempt,
                ok=result.ok,
                output=result.output,
                error=result.error,
                retryable=result.retryable,
                env=session.env,
            )

        return self.runner.run(command, activity.instance_id)

    def fail_unrecordable(self, activity: ActivityRow, reason: str) -> bool:
        """Fail the attempt for good: its result could not be recorded, so it must not run
        again (its side effect happened). False when the attempt was recorded meanwhile."""
        message = f"the result of the action could not be recorded: {clean_text(reason, 500)}"
        return self.record(activity, ActionResult(ok=False, error=message, retryable=False))
