"""The published event types (`application/event_schemas.py`) and `docs/events.md`: every
type of the catalogue is described, has a schema derived from its class and a valid
example, and the file is exactly what the generator prints (regenerate with
`python -m application.event_docs > docs/events.md`)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import pytest

from application import envelopes, event_docs
from application.event_schemas import (
    DESCRIPTIONS,
    catalogue,
    data_fields,
    data_schema,
    envelope_schema,
    type_schema,
)
from domain.events import INSTANCE_EVENTS, cloudevents_type
from domain.instance import WorkflowInstance

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"
REGENERATE = "python -m application.event_docs > docs/events.md"


def test_docs_events_md_is_what_the_generator_prints() -> None:
    assert DOCS.read_text() == event_docs.markdown(), f"docs/events.md is stale: {REGENERATE}"


def test_every_event_type_is_documented() -> None:
    text = DOCS.read_text()
    headings = set(re.findall(r"^### (\S+)$", text, flags=re.MULTILINE))
    assert headings == {cloudevents_type(c) for c in INSTANCE_EVENTS}
    assert set(DESCRIPTIONS) == set(INSTANCE_EVENTS)
    assert set(event_docs.EXAMPLES) == set(INSTANCE_EVENTS)
    assert [t["type"] for t in catalogue()["items"]] == [
        cloudevents_type(c) for c in INSTANCE_EVENTS
    ]


def test_an_undocumented_event_type_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Negative control: a type added to the catalogue changes what the generator prints.
    class Escalated(WorkflowInstance.Event):
        bookmark_id: str

    monkeypatch.setattr(event_docs, "INSTANCE_EVENTS", (*INSTANCE_EVENTS, Escalated))
    monkeypatch.setitem(DESCRIPTIONS, Escalated, "A task was escalated.")
    monkeypatch.setitem(event_docs.EXAMPLES, Escalated, {"bookmark_id": "b"})
    monkeypatch.setitem(envelopes.EVENTS_BY_NAME, "Escalated", Escalated)
    assert "### waymark.instance.escalated" in event_docs.markdown()
    assert DOCS.read_text() != event_docs.markdown()


@pytest.mark.parametrize("event_class", INSTANCE_EVENTS, ids=lambda c: c.__name__)
def test_each_example_is_valid_against_its_schema(event_class: Any) -> None:
    schema = data_schema(event_class)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = event_docs.example_envelope(event_class)
    jsonschema.validate(example.data, schema)
    jsonschema.validate(example.structured(), envelope_schema())
    # Every annotated attribute of the class is in the schema, and required
    assert list(schema["properties"]) == list(data_fields(event_class))
    assert schema["required"] == list(data_fields(event_class))


def test_the_kafka_example_carries_exactly_the_binding_headers() -> None:
    message = event_docs.kafka_message(event_docs.example_envelope(WorkflowInstance.Started))
    assert set(message["headers"]) == {
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_specversion",
        "ce_time",
        "ce_subject",
        "waymark_tenant",
        "waymark_position",
        "content-type",
    }
    assert message["key"] == message["headers"]["ce_subject"] == str(event_docs.INSTANCE)
    assert message["headers"]["ce_type"] == "waymark.instance.started"
    assert message["value"] == event_docs.EXAMPLES[WorkflowInstance.Started]


def test_the_started_schema_is_derived_from_the_class() -> None:
    schema = data_schema(WorkflowInstance.Started)
    assert "originator_id" not in schema["properties"]  # envelope fields stay out of data
    assert schema["properties"]["definition_version"] == {"type": "integer"}
    assert schema["properties"]["correlation_id"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tenant": "acme"}, schema)


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (str, {"type": "string"}),
        (bool, {"type": "boolean"}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (float, {"type": "number"}),
        (Any, {}),
        (Any | None, {}),
        (datetime, {"type": "string", "format": "date-time"}),
        (UUID, {"type": "string", "format": "uuid"}),
        (dict[str, Any], {"type": "object"}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (Colour, {"type": "string", "enum": ["red"]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    ],
)
def test_type_schemas(annotation: Any, schema: dict[str, Any]) -> None:
    assert type_schema(annotation) == schema


def test_an_unknown_type_is_refused_rather_than_guessed() -> None:
    with pytest.raises(TypeError):
        type_schema(bytes)
