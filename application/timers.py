"""Firing due timers: a `timer` node continues, a `wait` past its timeout takes `timeout`,
and a task past its SLA takes its `timeout` route or is escalated (`engine.escalate`, once:
the command is guarded by optimistic concurrency and the bookmark records the escalation).

Each row is fired by a command of its own: one whose firing fails unexpectedly is set aside
with its error (the due query skips it from then on) and the rows behind it still fire, so
one tenant's poisoned timer cannot stop every tenant's timers. A batch's commands are
stored `group_size` at a time in one transaction (`run_batch`, application/batch.py); a
command whose commit collides, or that shares an instance with another in its group, runs alone. A
set-aside row is retried when its bookmark changes: resume it by hand
(`POST …/bookmarks/{id}/resume`) or cancel the instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from uuid import UUID

from application.batch import run_batch
from application.errors import CommandConflictError, InstanceNotFoundError
from application.ports import Clock, DueTimers
from application.read_models import BookmarkRow
from application.runner import CommandRunner
from application.session import CommandAttempt
from domain import engine
from domain.errors import BookmarkNotOpenError, InstanceNotActiveError

log = logging.getLogger(__name__)


class TimerService:
    """Fires the timers whose due time has passed."""

    def __init__(
        self,
        runner: CommandRunner,
        timers: DueTimers,
        clock: Clock,
        *,
        sla_escalation: bool = True,
        group_size: int = 1,
    ):
        self.runner = runner
        self.group_size = max(1, group_size)  # WAYMARK_TIMER_COMMIT_GROUP
        self.sla_escalation = sla_escalation  # WAYMARK_SLA_ESCALATION: off marks overdue only
        self.timers = timers
        self.clock = clock
        self.set_aside_total = 0  # set aside by this process since it started
        # The `now` of the last claim (fire_due): a row due by then that was not claimed is
        # held elsewhere; one due only since then was not looked for yet (timer worker).
        self.claimed_at: datetime | None = None
        # Claimed here but found handled already (fired by another replica, resumed,
        # cancelled): with timer leases, replicas seldom try the same timer.
        self.already_handled_total = 0
        # The scope each firing runs in (infrastructure/tracing.py: a span continuing the
        # trace of the command that set the timer).
        self.row_scope: Callable[[BookmarkRow], AbstractContextManager[object]] = _no_scope

    def fire_due(self, limit: int) -> int:
        """Fire up to `limit` due timers; the number that fired here."""
        self.claimed_at = now = self.clock.now()
        rows = self.timers.due(now, limit)
        if self.group_size == 1:  # each firing in its own scope (a span when traced)
            fired = 0
            for row in rows:
                with self.row_scope(row):
                    fired += self._fire(row)
            return fired
        fired = 0
        for start in range(0, len(rows), self.group_size):
            fired += self._fire_group(rows[start : start + self.group_size])
        return fired

    def _fire_group(self, rows: list[BookmarkRow]) -> int:
        """Fire `rows`, stored in one transaction where they can be (application/batch.py)."""
        outcomes = run_batch(
            self.runner, [(self._command(r), r.instance_id) for r in rows], preload=True
        )
        fired = 0
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._failed(row, outcome)
            elif outcome:
                fired += 1
        return fired

    def seconds_until_next(self) -> float | None:
        """Seconds until a timer may be claimed here (0 when one is overdue and free; a timer
        another replica holds counts from its lease's end); None if none."""
        now = self.clock.now()
        due = self.timers.next_due(now)
        if due is None:
            return None
        return max(0.0, (due - now).total_seconds())

    def next_claim(self) -> tuple[datetime, datetime] | None:
        """(when a timer may next be claimed here, now), as `seconds_until_next`; None if
        none. Compare with `claimed_at`: a time after it fell due since the last claim."""
        now = self.clock.now()
        due = self.timers.next_due(now)
        return None if due is None else (due, now)

    def set_aside_count(self) -> int:
        """Open timers set aside after a failure, across all workers (GET /health)."""
        return self.timers.set_aside_count()

    def set_aside_for(self, tenant: str, instance_id: UUID) -> list[BookmarkRow]:
        return self.timers.set_aside_for(tenant, instance_id)

    def _command(self, row: BookmarkRow) -> Callable[[CommandAttempt], bool]:
        def command(session: CommandAttempt) -> bool:
            instance = session.load(row.instance_id)
            definition = session.definition_of(instance)
            if row.kind == "task":
                # None: escalated already (by another replica), or not due by our clock.
                return None is not engine.escalate(
                    instance,
                    definition,
                    row.id,
                    session.env,
                    escalation_enabled=self.sla_escalation,
                )
            engine.fire_timer(instance, definition, row.id, session.env)
            return True

        return command

    def _fire(self, row: BookmarkRow) -> bool:
        try:
            return self.runner.run(self._command(row), row.instance_id)
        except Exception as e:  # noqa: BLE001 - classified below
            self._failed(row, e)
            return False

    def _failed(self, row: BookmarkRow, error: Exception) -> None:
        if isinstance(error, (BookmarkNotOpenError, InstanceNotActiveError, InstanceNotFoundError)):
            # Resumed, cancelled or fired by another worker since we read it: nothing to do.
            log.debug("timer %s of instance %s was already handled", row.id, row.instance_id)
            self.already_handled_total += 1
        elif isinstance(error, CommandConflictError):
            # The instance kept changing under us: transient, the next tick tries again.
            log.info("timer %s of instance %s: conflict, retried later", row.id, row.instance_id)
            self.timers.release(row.id)  # not left to its lease: the next tick may take it
        else:  # any other failure sets this row aside
            self._set_aside(row, error)

    def _set_aside(self, row: BookmarkRow, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"
        log.exception(
            "timer %s of instance %s (tenant %s) failed and is set aside: %s",
            row.id,
            row.instance_id,
            row.tenant,
            message,
        )
        self.timers.set_aside(row.id, message, self.clock.now())
        self.set_aside_total += 1


def _no_scope(row: BookmarkRow) -> AbstractContextManager[object]:
    return nullcontext()
