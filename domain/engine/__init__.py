"""The execution rules: how an instance moves through its definition's graph.

`commands` holds what a command does to an instance (start, resume, complete a task, fire
a timer, record an activity's result, cancel, ...); `traversal` walks the graph between
waits, `waits` opens the bookmark a waiting node suspends on, `retry` reads retry policies.
Callers use the commands through this package: `from domain import engine; engine.start(...)`.
"""

from domain.engine.commands import (
    cancel,
    child_finished,
    claim_task,
    complete_task,
    delegate_task,
    escalate,
    fire_timer,
    open_bookmark,
    record_activity_result,
    resume,
    select_route,
    start,
    withdraw_task,
)

__all__ = [
    "cancel",
    "child_finished",
    "claim_task",
    "complete_task",
    "delegate_task",
    "escalate",
    "fire_timer",
    "open_bookmark",
    "record_activity_result",
    "resume",
    "select_route",
    "start",
    "withdraw_task",
]
