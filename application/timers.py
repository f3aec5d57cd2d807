"""Firing due timers: a `timer` node continues, a `wait` past its timeout takes `timeout`,
and a task past its SLA takes its `timeout` route or is escalated (`engine.escalate`, once:
the command is guarded by optimistic concurrency and the bookmark records the escalation).

Each row is fired on its own: one whose firing fails unexpectedly is set aside with its
error (the due query skips it from then on) and the rows behind it still fire, so one
tenant's poisoned timer cannot stop every tenant's timers. A set-aside row is retried when
its bookmark changes: resume it by hand (`POST …/bookmarks/{id}/resume`) or cancel the
instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from uuid import UUID

from application.errors import CommandConflictError, InstanceNotFoundError
from application.ports import Clock, DueTimers
from application.read_models import BookmarkRow
from application.session import CommandAttempt, CommandRunner
from domain import engine
from domain.errors import BookmarkNotOpenError, InstanceNotActiveError

log = logging.getLogger(__name__)


class TimerService:
    """Fires the timers whose due time has passed."""

    def __init__(
        self, runner: CommandRunner, timers: DueTimers, clock: Clock, *, sla_escalation: bool = True
    ):
        self.runner = runner
        self.sla_escalation = sla_escalation  # WAYMARK_SLA_ESCALATION: off marks overdue only
        self.timers = timers
        self.clock = clock
        self.set_aside_total = 0  # set aside by this process since it started
        # The scope each firing runs in (infrastructure/tracing.py: a span continuing the
        # trace of the command that set the timer).
        self.row_scope: Callable[[BookmarkRow], AbstractContextManager[object]] = _no_scope

    def fire_due(self, limit: int) -> int:
        """Fire up to `limit` due timers; the number that fired here."""
        fired = 0
        for row in self.timers.due(self.clock.now(), limit):
            with self.row_scope(row):
                if self._fire(row):
                    fired += 1
        return fired

    def seconds_until_next(self) -> float | None:
        """Seconds until the earliest open timer falls due (0 when overdue); None if none."""
        due = self.timers.next_due()
        if due is None:
            return None
        return max(0.0, (due - self.clock.now()).total_seconds())

    def set_aside_count(self) -> int:
        """Open timers set aside after a failure, across all workers (GET /health)."""
        return self.timers.set_aside_count()

    def set_aside_for(self, tenant: str, instance_id: UUID) -> list[BookmarkRow]:
        return self.timers.set_aside_for(tenant, instance_id)

    def _fire(self, row: BookmarkRow) -> bool:
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

        try:
            acted = self.runner.run(command, row.instance_id)
        except (BookmarkNotOpenError, InstanceNotActiveError, InstanceNotFoundError):
            # Resumed, cancelled or fired by another worker since we read it: nothing to do.
            log.debug("timer %s of instance %s was already handled", row.id, row.instance_id)
            return False
        except CommandConflictError:
            # The instance kept changing under us: transient, the next tick tries again.
            log.info("timer %s of instance %s: conflict, retried later", row.id, row.instance_id)
            self.timers.release(row.id)  # not left to its lease: the next tick may take it
            return False
        except Exception as e:  # noqa: BLE001 - any other failure sets this row aside
            self._set_aside(row, e)
            return False
        return acted

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
