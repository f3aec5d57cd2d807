"""What a command needs from outside the domain, and the error a node raises at run time.

A module of its own so that the engine, the graph walk and the waits all import it without
importing each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

# Steps are counted per loop, not per command: a node entered more often than this within
# one command is on a loop without a waiting node (an acyclic graph enters each node once
# per path, so a long chain never reaches it). The total is a backstop on the size of one
# command (a huge loop body); both count across the instances a command touches.
MAX_NODE_ENTRIES_PER_COMMAND = 1_000
MAX_STEPS_PER_COMMAND = 200_000
LOOP_LIMIT_MESSAGE = (
    f"step limit exceeded: the graph loops without waiting (node {{node}} entered "
    f"{MAX_NODE_ENTRIES_PER_COMMAND:,} times in one command)"
)
SIZE_LIMIT_MESSAGE = (
    f"step limit exceeded: one command entered {MAX_STEPS_PER_COMMAND:,} nodes without waiting"
)


@dataclass
class StepBudget:
    """How many nodes one command entered: per (instance, node) and in all."""

    entries: Counter[tuple[str, str]] = field(default_factory=Counter)
    total: int = 0

    def enter(self, instance_id: str, node_id: str) -> str | None:
        """Count one entry; the failure message when a limit is exceeded, else None."""
        self.total += 1
        key = (instance_id, node_id)
        self.entries[key] += 1
        if self.entries[key] > MAX_NODE_ENTRIES_PER_COMMAND:
            return LOOP_LIMIT_MESSAGE.format(node=node_id)
        if self.total > MAX_STEPS_PER_COMMAND:
            return SIZE_LIMIT_MESSAGE
        return None


@dataclass(frozen=True)
class ForEachLimits:
    """`WAYMARK_FOR_EACH_MAX_ITEMS`: the items one `for_each` node may hold (more refuses the
    command a caller waits for, else fails the node: `CommandEnv.caller_waits`);
    `WAYMARK_FOR_EACH_BATCH_SIZE`: items a parallel `for_each` starts per command (the
    rest in follow-up commands, so no command writes them all)."""

    max_items: int = 10_000
    batch: int = 50


@dataclass(frozen=True)
class CommandEnv:
    """The clock reading and id sources of one command, decided by the application layer."""

    now: datetime
    new_id: Callable[[], str]
    new_token: Callable[[], str]
    # The base of links in task notifications (`WAYMARK_PUBLIC_URL`); "" gives relative ones.
    public_url: str = ""
    # Signs a task link (tenant, task id, decision, issued at, assignee) -> token, for the
    # `task.approve_url`/`task.reject_url` of notifications; None: no signed links.
    task_link: Callable[[str, str, str, datetime, str | None], str] | None = None
    # Multi-instance (`for_each`) bounds, from the settings.
    for_each: ForEachLimits = field(default_factory=lambda: ForEachLimits())
    # A caller waits for this command's answer (an HTTP request, a command message): what
    # the caller sent can be refused as a whole (`ForEachTooLargeError`, nothing stored).
    # False for the workers' commands (results, timers), where the node fails instead.
    caller_waits: bool = False
    # One per command (the application builds one CommandEnv per attempt), so a loop that leaves
    # and re-enters `run` — a sub_workflow whose child completes at once — is counted too.
    steps: StepBudget = field(default_factory=StepBudget, compare=False, repr=False)
    # The W3C `traceparent` of the command (None when not traced): stored with the
    # activities and bookmarks it creates, so the worker that later runs or fires them
    # continues the same trace. An opaque string to the domain.
    trace_context: str | None = None

    def trace(self) -> dict[str, str]:
        """The trace field of a new activity or bookmark payload (none when not traced)."""
        return {} if self.trace_context is None else {"trace_context": self.trace_context}


class NodeFailure(Exception):
    """A runtime error at a node: recorded on the instance, or routed via `error`."""

    def __init__(self, node_id: str, message: str):
        super().__init__(message)
        self.node_id = node_id
        self.message = message
