"""Events written by release 0.1 still load, replay to the same state, and keep their shape.

`tests/fixtures/events_v0_1.json` was written by `tests/fixtures/make_event_fixture.py` with
the 0.1 code: the stored events (topic and JSON state, as PostgreSQL holds them) of instances
covering every event type, and a summary of each instance's state after the command.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from tests.fixtures.make_event_fixture import FIXTURE, build, memory_event_store, summary


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_fixture_covers_every_instance_event_type(fixture: dict[str, Any]) -> None:
    from domain.events import INSTANCE_EVENTS
    from domain.instance import WorkflowInstance

    # Event types 0.1 did not have (their replay is tested where they were added:
    # TaskEscalated in tests/unit/test_sla.py, BoundaryFired and EventGatewayDecided in
    # tests/unit/test_boundary_events.py; for_each and compensation events in
    # tests/unit/test_engine_multi.py and test_engine_compensation.py; the join and branch
    # events in tests/unit/test_patterns_engine.py).
    added_since_0_1 = {
        WorkflowInstance.TaskEscalated,
        WorkflowInstance.InterleavedBranchStarted,
        WorkflowInstance.BoundaryFired,
        WorkflowInstance.EventGatewayDecided,
        WorkflowInstance.ForEachStarted,
        WorkflowInstance.ForEachItemCompleted,
        WorkflowInstance.ForEachCompleted,
        WorkflowInstance.CompensationRegistered,
        WorkflowInstance.CompensationStarted,
        WorkflowInstance.StepCompensated,
        WorkflowInstance.CompensationCompleted,
        WorkflowInstance.InclusiveSplit,
        WorkflowInstance.PartialJoinCompleted,
        WorkflowInstance.JoinArrivalIgnored,
        WorkflowInstance.BranchEnded,
        # Incidents and operator recovery: tests/unit/test_engine_incidents.py.
        WorkflowInstance.IncidentRaised,
        WorkflowInstance.IncidentRetried,
        WorkflowInstance.IncidentSkipped,
        WorkflowInstance.IncidentClosed,
        WorkflowInstance.InstanceModified,
        WorkflowInstance.InstanceMigrated,
    }
    stored = {resolve_topic(e["topic"]) for e in fixture["events"]}
    assert stored == set(INSTANCE_EVENTS) - added_since_0_1


def test_every_stored_aggregate_replays_to_the_state_0_1_built(fixture: dict[str, Any]) -> None:
    app = memory_event_store()
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=UUID(e["originator_id"]),
                originator_version=e["originator_version"],
                topic=e["topic"],
                state=base64.b64decode(e["state_b64"]),
            )
            for e in fixture["events"]
        ]
    )
    for instance_id, expected in fixture["expected"].items():
        assert summary(app.repository.get(UUID(instance_id))) == expected, instance_id


def _shape(value: Any) -> Any:
    """Keys (recursively) and value types, without the values that differ run to run."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _extends(new: Any, old: Any) -> bool:
    """`new` has every key of `old` with the same shape; added keys are allowed (additive)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(
            k in new and _extends(new[k], v) for k, v in old.items()
        )
    if isinstance(old, list):
        return isinstance(new, list) and len(new) == len(old) and all(map(_extends, new, old))
    return new == old


def test_events_written_now_have_the_0_1_topics_and_shape(fixture: dict[str, Any]) -> None:
    # Events may gain fields (a sub-workflow child's `parent.depth`), never lose or retype one.
    now = build()
    assert len(now["events"]) == len(fixture["events"])
    for new, old in zip(now["events"], fixture["events"], strict=True):
        assert new["topic"] == old["topic"]
        new_shape, old_shape = _shape(json.loads(new["state"])), _shape(json.loads(old["state"]))
        assert _extends(new_shape, old_shape), old["topic"]
