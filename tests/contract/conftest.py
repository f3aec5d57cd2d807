"""The storage ports, each implementation in turn: every contract test runs against the
in-memory adapters and against PostgreSQL (a migrated database of the test's own).

The PostgreSQL case asks for the `datastore` fixture only when it runs, so
`pytest -m "not integration" tests/contract` needs no database at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Ports:
    """The storage ports of one implementation, over one shared storage."""

    kind: str
    instances: Any
    queries: Any
    definitions: Any
    due_timers: Any
    activity_queue: Any


def _memory() -> Ports:
    from infrastructure.memory import MemoryPorts

    built = MemoryPorts.build(cursor_secret=os.urandom(32))
    return Ports(
        "memory",
        built.instances,
        built.queries,
        built.definitions,
        built.due_timers,
        built.activity_queue,
    )


def _postgres(datastore: Any) -> Ports:
    from infrastructure.postgres.activity_queue import PostgresActivityQueue
    from infrastructure.postgres.definition_store import PostgresDefinitionStore
    from infrastructure.postgres.due_timers import PostgresDueTimers
    from infrastructure.postgres.event_store import WaymarkApplication
    from infrastructure.postgres.instance_store import PostgresInstanceStore
    from infrastructure.postgres.queries import PostgresReadModelQueries

    secret = os.urandom(32)
    return Ports(
        "postgres",
        PostgresInstanceStore(WaymarkApplication(datastore)),
        PostgresReadModelQueries(datastore, cursor_secret=secret),
        PostgresDefinitionStore(datastore, cursor_secret=secret),
        PostgresDueTimers(datastore),
        PostgresActivityQueue(datastore),
    )


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def ports(request: pytest.FixtureRequest) -> Ports:
    if request.param == "memory":
        return _memory()
    return _postgres(request.getfixturevalue("datastore"))
