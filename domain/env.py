"""What a command needs from outside the domain, and the error a node raises at run time.

A module of its own so that the engine, the graph walk and the waits all import it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CommandEnv:
    """The clock reading and id sources of one command, decided by the application layer."""

    now: datetime
    new_id: Callable[[], str]
    new_token: Callable[[], str]


class NodeFailure(Exception):
    """A runtime error at a node: recorded on the instance, or routed via `error`."""

    def __init__(self, node_id: str, message: str):
        super().__init__(message)
        self.node_id = node_id
        self.message = message
