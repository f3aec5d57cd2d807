"""The OpenAPI document describes what the routes answer, so a generated client works:
typed success bodies, one Problem schema on every error status, operationIds named after
the route functions. (`tests/e2e/test_generated_client.py` runs such a client.)"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

import api.routes
from api.app import create_app
from api.problems import MEDIA_TYPE

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(lambda: None)  # type: ignore[arg-type,return-value]  # never started


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_operation_ids_are_the_route_functions_names(document: dict[str, Any]) -> None:
    # Every route module of the package (a new one is covered without listing it here).
    modules = [
        importlib.import_module(f"api.routes.{info.name}")
        for info in pkgutil.iter_modules(api.routes.__path__)
    ]
    modules = [m for m in modules if hasattr(m, "router")]
    routes = {
        (method, route.path): route.endpoint.__name__
        for module in modules
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    ids = {(m, p): op["operationId"] for m, p, op in operations(document)}
    assert ids == routes
    assert len(set(ids.values())) == len(ids)
    assert ids["POST", "/v1/instances/{instance_id}/bookmarks/{bookmark_id}/resume"] == (
        "resume_bookmark"
    )


def test_every_error_status_is_a_problem(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    assert problem["additionalProperties"] is True
    item = document["components"]["schemas"]["ErrorItem"]
    assert set(item["required"]) == {"path", "code", "message"}
    for method, path, operation in operations(document):
        errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
        if path.startswith("/health"):
            continue  # their 503 is the health report itself
        assert {"401", "422", "500", "503"} <= set(errors), (method, path)
        for status, response in errors.items():
            assert response["content"] == {MEDIA_TYPE: {"schema": PROBLEM}}, (path, status)
        assert "Retry-After" in errors["503"]["headers"]


def test_every_success_has_a_named_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        successes = {s: r for s, r in operation["responses"].items() if int(s) < 400}
        assert successes, (method, path)
        for status, response in successes.items():
            if (method, path) == ("GET", "/v1/feed/stream"):
                continue  # Server-Sent Events, not JSON: the test below
            schema = response["content"]["application/json"]["schema"]
            assert set(schema) == {"$ref"}, (method, path, status, schema)


def test_idempotent_replays_and_starts_declare_bodies_and_headers(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    start = paths["/v1/instances"]["post"]["responses"]
    webhook = paths["/v1/webhooks/{definition}"]["post"]["responses"]
    for responses in (start, webhook):
        for status in ("200", "201"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/InstanceView"
            }
            assert "Location" in responses[status]["headers"]
    assert "Idempotent-Replayed" in webhook["200"]["headers"]
    resume = paths["/v1/instances/{instance_id}/bookmarks/{bookmark_id}/resume"]["post"]
    assert "Idempotent-Replayed" in resume["responses"]["200"]["headers"]


def test_bodies_are_declared_and_optional_ones_are_not_nullable(
    document: dict[str, Any],
) -> None:
    for path in ("/v1/callbacks/{token}", "/v1/webhooks/{definition}"):
        body = document["paths"][path]["post"]["requestBody"]
        assert "application/json" in body["content"], path
    cancel = document["paths"]["/v1/instances/{instance_id}/cancel"]["post"]["requestBody"]
    assert not cancel.get("required")
    assert cancel["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CancelRequest"
    }
    for method, path, operation in operations(document):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            assert "anyOf" not in media["schema"], (method, path)


def test_security_and_tags(document: dict[str, Any]) -> None:
    paths = document["paths"]
    # Signed routes need no API key; every /v1 route else does.
    assert paths["/v1/webhooks/{definition}"]["post"]["security"] == []
    assert "security" not in paths["/v1/callbacks/{token}"]["post"]
    for method in ("get", "post"):
        assert paths["/v1/task-links/{token}"][method]["security"] == []
    for method, path, operation in operations(document):
        if path.startswith("/v1/") and not path.startswith(
            ("/v1/webhooks", "/v1/callbacks", "/v1/task-links")
        ):
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
    assert paths["/v1/events"]["post"]["tags"] == ["events"]
    assert paths["/v1/callbacks/{token}"]["post"]["tags"] == ["callbacks"]
    declared = {t["name"] for t in document["tags"]}
    used = {t for _, _, op in operations(document) for t in op["tags"]}
    assert used <= declared


def test_the_feed_stream_declares_server_sent_events(document: dict[str, Any]) -> None:
    stream = document["paths"]["/v1/feed/stream"]["get"]
    assert stream["responses"]["200"]["content"] == {
        "text/event-stream": {"schema": {"type": "string"}}
    }
    assert "Last-Event-ID" in {p["name"] for p in stream["parameters"]}
    page = document["paths"]["/v1/feed"]["get"]["responses"]["200"]
    assert page["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeedPage"
    }
