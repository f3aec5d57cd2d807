"""The `emit` action against the real PostgreSQL: the event is delivered inside the command
that reaches the service task (no task worker, no HTTP), and everything it touches commits
in one transaction; a chain of emits is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance
from application.read_models import InstanceFilter
from application.session import MAX_EMITS_PER_COMMAND

pytestmark = pytest.mark.integration

TENANT = "acme"

WAITER = {
    "name": "waiter",
    "nodes": [
        {"id": "wait", "type": "wait", "event": "order.paid", "correlation": "input.order"},
        {"id": "done", "type": "end", "output": {"paid": "nodes.wait.result"}},
    ],
    "routes": [{"from": "wait", "to": "done"}],
}

EMITTER = {
    "name": "emitter",
    "nodes": [
        {
            "id": "tell",
            "type": "service_task",
            "action": {
                "type": "emit",
                "event": "order.paid",
                "correlation": "{{ input.order }}",
                "payload": {"order": "{{ input.order }}", "amount": "{{ input.amount }}"},
            },
        },
        {"id": "done", "type": "end", "output": {"told": "nodes.tell.result"}},
    ],
    "routes": [{"from": "tell", "to": "done"}],
}

ON_PAID = {
    "name": "on-paid",
    "triggers": [{"type": "event", "event": "order.paid"}],
    "nodes": [
        {"id": "check", "type": "approval", "approver_role": "clerk"},
        {"id": "done", "type": "end"},
        {"id": "no", "type": "end", "status": "failed"},
    ],
    "routes": [
        {"from": "check", "to": "done", "outcome": "approved"},
        {"from": "check", "to": "no", "outcome": "rejected"},
    ],
}

# Started by the event it emits: without a bound, one command would start it forever.
ECHO = {
    "name": "echo",
    "triggers": [{"type": "event", "event": "ping"}],
    "nodes": [
        {"id": "again", "type": "service_task", "action": {"type": "emit", "event": "ping"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "again", "to": "done"}],
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    built = build_engine(Settings(database_url=database_url, api_keys="k=acme:admin"))
    yield built
    built.close()


def start(engine: Any, name: str, data: dict[str, Any]) -> dict[str, Any]:
    view, created = engine.instances.start(
        StartInstance(tenant=TENANT, definition=name, input=data)
    )
    assert created
    return view


def last_event_transactions(datastore: Any, ids: list[str]) -> dict[str, str]:
    """The transaction id (xmin) that wrote each instance's latest event."""
    with datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT DISTINCT ON (originator_id) originator_id::text, xmin::text "
            "FROM waymark_events WHERE originator_id = ANY(%s::uuid[]) "
            "ORDER BY originator_id, originator_version DESC",
            (ids,),
        )
        return {row["originator_id"]: row["xmin"] for row in curs.fetchall()}


def first_event_transaction(datastore: Any, instance_id: str) -> str:
    with datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT xmin::text FROM waymark_events WHERE originator_id = %s "
            "AND originator_version = 1",
            (instance_id,),
        )
        return curs.fetchone()["xmin"]


def test_emit_resumes_a_wait_and_starts_a_triggered_definition_in_one_transaction(
    engine: Any, datastore: Any
) -> None:
    for document in (WAITER, EMITTER, ON_PAID):
        engine.definitions.publish(TENANT, document)
    waiter = start(engine, "waiter", {"order": "o-1"})
    assert waiter["status"] == "suspended"

    # No task worker runs: the start command itself settles the emit.
    emitter = start(engine, "emitter", {"order": "o-1", "amount": 5})

    assert emitter["status"] == "completed", emitter
    told = emitter["output"]["told"]
    assert told["type"] == "order.paid"
    assert told["resumed"] == [
        {"instance_id": waiter["id"], "bookmark_id": told["resumed"][0]["bookmark_id"]}
    ]
    assert len(told["started"]) == 1 and told["rejected"] == []
    started_id = told["started"][0]
    resumed = engine.instances.get(TENANT, UUID(waiter["id"]))
    assert resumed["status"] == "completed"
    assert resumed["output"] == {"paid": {"order": "o-1", "amount": 5}}
    started = engine.instances.get(TENANT, UUID(started_id))
    assert started["definition"] == "on-paid" and started["status"] == "suspended"
    assert started["input"] == {"order": "o-1", "amount": 5}

    # The emitter's end, the waiter's resumption and the new instance: ONE transaction.
    ids = [emitter["id"], waiter["id"], started_id]
    transactions = last_event_transactions(datastore, ids)
    assert set(transactions) == set(ids)
    assert len(set(transactions.values())) == 1, transactions
    # Negative control: the waiter's start was a transaction of its own.
    assert first_event_transaction(datastore, waiter["id"]) not in transactions.values()

    # The emitter's history shows the service task scheduled and completed with the result.
    history, _ = engine.instances.history(TENANT, UUID(emitter["id"]))
    types = [entry.type for entry in history]
    assert "ActivityScheduled" in types and "ActivityCompleted" in types, types
    # Nothing was left for a task worker.
    assert engine.activity_queue.claim("w", 10, 30, engine.clock.now()) == []


def test_an_emit_reaches_only_its_own_tenant(engine: Any) -> None:
    engine.definitions.publish("globex", WAITER)
    engine.definitions.publish(TENANT, EMITTER)
    other = engine.instances.start(
        StartInstance(tenant="globex", definition="waiter", input={"order": "o-2"})
    )[0]

    emitter = start(engine, "emitter", {"order": "o-2", "amount": 1})

    assert emitter["output"]["told"]["resumed"] == []
    assert engine.instances.get("globex", UUID(other["id"]))["status"] == "suspended"


def test_a_definition_emitting_the_event_that_starts_it_stops_at_the_emit_limit(
    engine: Any,
) -> None:
    engine.definitions.publish(TENANT, ECHO)

    first = start(engine, "echo", {})

    rows = engine.instances.list(TENANT, InstanceFilter(definition="echo"), limit=500).items
    assert len(rows) == MAX_EMITS_PER_COMMAND + 1
    statuses = sorted(row["status"] for row in rows)
    assert statuses.count("failed") == 1 and statuses.count("completed") == MAX_EMITS_PER_COMMAND
    failed = next(row for row in rows if row["status"] == "failed")
    view = engine.instances.get(TENANT, UUID(failed["id"]))
    assert "emit limit exceeded" in view["error"]["message"]
    assert first["status"] == "completed"
