"""The event catalogue lists every event of the instance aggregate, with stable names."""

from __future__ import annotations

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import get_topic

from domain.events import INSTANCE_EVENTS, cloudevents_type, event_name
from domain.instance import WorkflowInstance


def nested_event_classes() -> set[type]:
    """Every concrete event class nested in the aggregate (not the library's base classes)."""
    bases = {WorkflowInstance.Event, WorkflowInstance.Created}
    return {
        value
        for value in vars(WorkflowInstance).values()
        if isinstance(value, type) and issubclass(value, DomainEvent) and value not in bases
    }


def test_the_catalogue_covers_every_nested_event_class_once() -> None:
    assert len(INSTANCE_EVENTS) == len(set(INSTANCE_EVENTS))
    assert set(INSTANCE_EVENTS) == nested_event_classes()
    assert all(issubclass(e, WorkflowInstance.Event) for e in INSTANCE_EVENTS)


def test_topics_are_those_release_0_1_stored() -> None:
    # Renaming or moving a class changes its topic: stored events would no longer load.
    for event_class in INSTANCE_EVENTS:
        assert get_topic(event_class) == f"domain.instance:WorkflowInstance.{event_class.__name__}"


def test_names_and_cloudevents_types() -> None:
    assert event_name(WorkflowInstance.BookmarkCreated) == "BookmarkCreated"
    assert cloudevents_type(WorkflowInstance.Started) == "waymark.instance.started"
    assert cloudevents_type(WorkflowInstance.BookmarkCreated) == "waymark.instance.bookmark_created"
    assert (
        cloudevents_type(WorkflowInstance.ActivityRetryScheduled)
        == "waymark.instance.activity_retry_scheduled"
    )
    types = [cloudevents_type(e) for e in INSTANCE_EVENTS]
    assert len(set(types)) == len(types)
