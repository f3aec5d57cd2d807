"""Waking a worker from another process: a LISTEN/NOTIFY listener beside its runner."""

from __future__ import annotations

from application.ports import Clock
from infrastructure.container import WorkerContainer
from infrastructure.postgres.listener import PostgresListener, parse_due
from workers.runner import WorkerRunner

# An alarm rings this much after the due time, so the tick's `due <= now` holds.
ALARM_SLACK_SECONDS = 0.01


def wake_on_notify(
    runner: WorkerRunner, container: WorkerContainer, channel: str
) -> PostgresListener:
    """Supervise a listener on `channel` that wakes `runner` when the notified work is due.

    The payload is the earliest due time of what the commit created: work due now wakes
    the runner at once, work due later sets its alarm, so a 2 s timer created by the API
    process fires on time instead of at the next 30 s poll. Each (re)connection wakes it
    too: notifications sent while the listener was away are lost.
    """
    clock = container.clock

    def on_notify(_channel: str, payload: str) -> None:
        _wake_for(runner, clock, payload)

    listener = PostgresListener(
        container.database_url,
        [channel],
        on_notify,
        on_connect=runner.wake,
        connect_timeout=float(getattr(container.settings, "db_connect_timeout", 5.0)),
        name=f"{runner.name}-listener",
    )
    runner.supervise(listener.name, listener.run)
    return listener


def _wake_for(runner: WorkerRunner, clock: Clock, payload: str) -> None:
    due = parse_due(payload)
    delay = 0.0 if due is None else (due - clock.now()).total_seconds()
    if delay <= 0:
        runner.wake()
    else:
        runner.wake_in(delay + ALARM_SLACK_SECONDS)
