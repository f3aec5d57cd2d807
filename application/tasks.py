"""Use cases for the task queue (approvals, user tasks) and service-task results."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from application.batch import run_batch
from application.commands import CancelTask, ClaimTask, CompleteTask, DelegateTask
from application.errors import InvalidDataError, TaskNotFoundError
from application.idempotency import KeyedCommands, fingerprint, stored_result
from application.ports import ActionResult, ReadModelQueries, SchemaValidator
from application.read_models import ActivityRow, Page, TaskFilter
from application.runner import CommandRunner
from application.session import CommandAttempt
from application.views import instance_view, jsonable, task_view
from domain import engine
from domain.values import clean_text, contains_nul

logger = logging.getLogger(__name__)


class TaskService:
    """The task queue: list, claim, delegate, complete."""

    def __init__(self, runner: CommandRunner, queries: ReadModelQueries, schemas: SchemaValidator):
        self.runner = runner
        self.queries = queries
        self.schemas = schemas
        self.keyed = KeyedCommands(runner, queries)

    def list(
        self,
        tenant: str,
        criteria: TaskFilter = TaskFilter(),
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        now = self.runner.clock.now()  # urgency is judged at read time
        criteria = replace(criteria, now=now)
        page = self.queries.list_tasks(tenant, criteria, limit=limit, cursor=cursor)
        return Page([task_view(row, now) for row in page.items], page.next_cursor)

    def get(self, tenant: str, task_id: str) -> dict[str, Any]:
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return task_view(row, self.runner.clock.now())

    def claim(self, cmd: ClaimTask) -> dict[str, Any]:
        return self._on_task(
            cmd.tenant,
            cmd.task_id,
            lambda i, s: engine.claim_task(
                i, cmd.task_id, cmd.user, s.definition_of(i), actor=cmd.actor
            ),
        )

    def delegate(self, cmd: DelegateTask) -> dict[str, Any]:
        return self._on_task(
            cmd.tenant,
            cmd.task_id,
            lambda i, s: engine.delegate_task(
                i, cmd.task_id, cmd.assignee, cmd.by, actor=cmd.actor
            ),
        )

    def cancel(self, cmd: CancelTask) -> dict[str, Any]:
        """Withdraw the task; the instance takes the node's `cancelled` route or fails it."""
        return self._on_task(
            cmd.tenant,
            cmd.task_id,
            lambda i, s: engine.withdraw_task(
                i,
                s.definition_of(i),
                cmd.task_id,
                reason=cmd.reason,
                by=cmd.by,
                env=s.env,
            ),
        )

    def complete(self, cmd: CompleteTask) -> tuple[dict[str, Any], bool]:
        """Complete a task; (instance view, replayed). Form data is checked against the
        node's form schema first; a repeated idempotency key replays the first view."""
        tenant, task_id, key = cmd.tenant, cmd.task_id, cmd.idempotency_key
        scope, request = "complete", fingerprint(task_id)
        prior = self.keyed.first_result(tenant, scope, key, request)
        if prior is not None:
            return prior, True
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.form:
            errors = self.schemas.validate(row.form, cmd.data or {})
            if errors:
                raise InvalidDataError("form data", errors)

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(row.instance_id, tenant)
            engine.complete_task(
                instance,
                session.definition_of(instance),
                task_id,
                outcome=cmd.outcome,
                data=cmd.data,
                comment=cmd.comment,
                completed_by=cmd.user,
                env=session.env,
                actor=cmd.actor,
            )
            view = jsonable(instance_view(instance))
            session.remember(tenant, scope, key, stored_result(request, view))
            return view

        return self.keyed.run(command, [row.instance_id], tenant, scope, key, request)

    def _on_task(self, tenant: str, task_id: str, apply: Any) -> dict[str, Any]:
        row = self.queries.task(tenant, task_id)
        if row is None:
            raise TaskNotFoundError(task_id)

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(row.instance_id, tenant)
            apply(instance, session)
            return instance_view(instance)

        return self.runner.run(command, row.instance_id, caller_waits=True)


class ActivityService:
    """Records what a task worker's action did, exactly once per attempt."""

    def __init__(self, runner: CommandRunner):
        self.runner = runner

    def record(self, activity: ActivityRow, result: ActionResult) -> bool:
        """False when the result is stale (recorded already, or the instance moved on).

        A result the instance cannot store fails the node (`domain.values`); NULs in an
        action's output are replaced (U+FFFD), noted here in the log.
        """
        return bool(self.runner.run(self._command(activity, result), activity.instance_id))

    def record_many(
        self, results: Sequence[tuple[ActivityRow, ActionResult]]
    ) -> list[bool | Exception]:
        """Record several results, committed together where they can be (group commit):
        for each, what `record` would return, or the exception it would raise."""
        commands = [(self._command(a, r), a.instance_id) for a, r in results]
        return [
            o if isinstance(o, Exception) else bool(o) for o in run_batch(self.runner, commands)
        ]

    def _command(
        self, activity: ActivityRow, result: ActionResult
    ) -> Callable[[CommandAttempt], bool]:
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

        return command

    def fail_unrecordable(self, activity: ActivityRow, reason: str) -> bool:
        """Fail the attempt for good: its result could not be recorded, so it must not run
        again (its side effect happened). False when the attempt was recorded meanwhile."""
        message = f"the result of the action could not be recorded: {clean_text(reason, 500)}"
        return self.record(activity, ActionResult(ok=False, error=message, retryable=False))
