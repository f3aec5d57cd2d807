"""Input PostgreSQL or the JSON renderers cannot hold is a 4xx problem naming the field, on
every route family, never a 500 (issue 5, items 4 and 6); an instance stays readable."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from api.request_guard import MAX_JSON_DEPTH
from application.callbacks import sign
from tests.e2e.conftest import (
    TENANT_SECRETS,
    Server,
    instance,
    is_problem,
    post_signed,
    publish,
    start,
    unique,
)

pytestmark = pytest.mark.e2e

NUL = "a\u0000b"


def nested(depth: int) -> Any:
    """`depth` nested arrays around 1 (depth 1 = `[1]`)."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def refused(response: httpx.Response, *paths: str, code: str | None = None) -> list[dict]:
    """A 422 invalid-request whose errors name exactly `paths` (when given)."""
    errors = is_problem(response, 422, "invalid-request")["errors"]
    assert errors, response.text
    if paths:
        assert sorted(e["path"] for e in errors) == sorted(paths), errors
    if code:
        assert {e["code"] for e in errors} == {code}, errors
    return errors


@pytest.fixture(scope="module")
def waiting(server: Server) -> str:
    """A definition whose instances wait at `w` (resume payload into `vars.got`)."""
    name = unique("bad-input")
    with server.client("k-acme") as acme:
        publish(
            acme,
            {
                "name": name,
                "nodes": [
                    {"id": "w", "type": "wait", "result_var": "got"},
                    {"id": "end", "type": "end"},
                ],
                "routes": [{"from": "w", "to": "end"}],
            },
        )
    return name


def _waiting_instance(acme: httpx.Client, definition: str) -> tuple[str, dict[str, Any]]:
    view = start(acme, definition)
    return view["id"], view["bookmarks"][0]


# --- item 4: nesting ------------------------------------------------------------------------


def test_a_deeply_nested_resume_is_refused_and_the_instance_stays_readable(
    acme: httpx.Client, waiting: str
) -> None:
    instance_id, bookmark = _waiting_instance(acme, waiting)
    resume = f"/v1/instances/{instance_id}/bookmarks/{bookmark['id']}/resume"

    # Given a payload nesting 260 levels (Python's parser still takes it): refused, by path.
    errors = refused(acme.post(resume, json={"payload": nested(259)}), code="too_deep")
    assert errors[0]["path"].startswith("$.payload[0][0]")
    # Far beyond what the parser can take: still a 422, never a 500.
    deep = ("[" * 30_000 + "]" * 30_000).encode()
    refused(acme.post(resume, content=b'{"payload": ' + deep + b"}"), "$", code="too_deep")

    # The instance was not touched, and reads work.
    assert acme.get(f"/v1/instances/{instance_id}").status_code == 200
    assert acme.get(f"/v1/instances/{instance_id}/history").status_code == 200

    # At the bound the payload is accepted and rendered back whole.
    ok = nested(MAX_JSON_DEPTH - 1)
    assert acme.post(resume, json={"payload": ok}).status_code == 200, "within the bound"
    assert instance(acme, instance_id)["variables"]["got"] == ok
    history = acme.get(f"/v1/instances/{instance_id}/history")
    assert history.status_code == 200, history.text


def test_deep_payloads_are_refused_on_every_write_route(
    acme: httpx.Client, anonymous: httpx.Client, waiting: str
) -> None:
    deep = nested(MAX_JSON_DEPTH + 5)
    refused(acme.post("/v1/events", json={"type": "x", "payload": deep}), code="too_deep")
    refused(acme.post("/v1/instances", json={"definition": waiting, "input": {"d": deep}}))
    refused(acme.post("/v1/tasks/t/complete", json={"data": {"d": deep}}), code="too_deep")
    refused(acme.post("/v1/definitions", json={"name": "n", "nodes": deep}), code="too_deep")
    # Raw-body routes too, before any signature is looked at.
    _, bookmark = _waiting_instance(acme, waiting)
    callback = f"/v1/callbacks/{bookmark['token']}"
    secret = TENANT_SECRETS["acme"]
    refused(post_signed(anonymous, callback, deep, secret=secret), code="too_deep")
    refused(post_signed(anonymous, "/v1/webhooks/x", deep, secret=secret), code="too_deep")


# --- item 6: NUL bytes, bad numbers, broken text ----------------------------------------


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/tasks/{}", "path.task_id"),
        ("/v1/definitions/{}", "path.name"),
        ("/v1/templates/{}", "path.template_id"),
        ("/v1/instances/{}/history", "path.instance_id"),
    ],
)
def test_nul_in_a_path_parameter_is_refused(acme: httpx.Client, path: str, param: str) -> None:
    refused(acme.get(path.format("a%00b")), param, code="nul_character")


def test_nul_in_a_callback_token_is_refused_without_any_key(anonymous: httpx.Client) -> None:
    refused(anonymous.post("/v1/callbacks/%00", content=b"{}"), "path.token")
    refused(anonymous.post("/v1/webhooks/a%00", content=b"{}"), "path.definition")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/instances", {"definition": NUL}, "query.definition"),
        ("/v1/instances", {"correlation_id": NUL}, "query.correlation_id"),
        ("/v1/tasks", {"assignee": NUL}, "query.assignee"),
        ("/v1/tasks", {"role": NUL}, "query.role"),
        ("/v1/analytics", {"definition": NUL}, "query.definition"),
        ("/v1/definitions", {"cursor": NUL}, "query.cursor"),
    ],
)
def test_nul_in_a_query_parameter_is_refused(
    acme: httpx.Client, path: str, params: dict[str, str], field: str
) -> None:
    refused(acme.get(path, params=params), field, code="nul_character")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/instances", {"definition": NUL}, "$.definition"),
        ("/v1/instances", {"definition": "d", "idempotency_key": NUL}, "$.idempotency_key"),
        ("/v1/instances", {"definition": "d", "correlation_id": NUL}, "$.correlation_id"),
        ("/v1/instances", {"definition": "d", "input": {NUL: 1}}, '$.input["a\\u0000b"]'),
        ("/v1/events", {"type": NUL}, "$.type"),
        ("/v1/events", {"type": "t", "payload": {"x": [NUL]}}, "$.payload.x[0]"),
        ("/v1/tasks/t/claim", {"user": NUL}, "$.user"),
        ("/v1/tasks/t/delegate", {"assignee": NUL}, "$.assignee"),
        ("/v1/tasks/t/complete", {"comment": NUL}, "$.comment"),
        ("/v1/definitions", {"name": "n", "description": NUL}, "$.description"),
        ("/v1/definitions/validate", {"nodes": [{"event": NUL}]}, "$.nodes[0].event"),
        ("/v1/templates/t/instantiate", {"name": NUL}, "$.name"),
    ],
)
def test_nul_in_a_body_string_is_refused(
    acme: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    refused(acme.post(path, json=body), field, code="nul_character")


def test_a_lone_surrogate_and_non_finite_numbers_are_refused(acme: httpx.Client) -> None:
    lone = b'{"type": "t", "payload": "\\ud800"}'
    errors = refused(acme.post("/v1/events", content=lone), "$.payload")
    assert errors[0]["code"] == "lone_surrogate"
    for number in (b"NaN", b"Infinity", b"1e400", b"9" * 5000):
        body = b'{"type": "t", "payload": ' + number + b"}"
        refused(acme.post("/v1/events", content=body), "$")


def test_nul_in_a_signed_callback_body_is_refused(
    acme: httpx.Client, anonymous: httpx.Client, waiting: str
) -> None:
    instance_id, bookmark = _waiting_instance(acme, waiting)
    callback = f"/v1/callbacks/{bookmark['token']}"
    secret = TENANT_SECRETS["acme"]
    refused(post_signed(anonymous, callback, {"v": NUL}, secret=secret), "$.v")
    # Invalid UTF-8, correctly signed: the body is not JSON text.
    body = b'{"v": "\xff\xfe"}'
    signature = sign(secret, body, int(time.time()), callback)
    broken = anonymous.post(callback, content=body, headers={"Waymark-Signature": signature})
    is_problem(broken, 400, "invalid-json")
    assert instance(acme, instance_id)["status"] == "suspended"


def test_a_non_ascii_signature_is_an_invalid_signature(anonymous: httpx.Client) -> None:
    headers = {"Waymark-Tenant": "acme", "Waymark-Signature": f"t={int(time.time())},v1=é"}
    encoded = {k: v.encode("latin-1") for k, v in headers.items()}
    response = anonymous.post("/v1/webhooks/x", content=b"{}", headers=encoded)
    is_problem(response, 401, "invalid-signature")
    # A 4,000-digit timestamp is malformed too (it used to overflow the clock arithmetic).
    encoded["Waymark-Signature"] = b"t=" + b"9" * 4000 + b",v1=" + b"0" * 64
    is_problem(
        anonymous.post("/v1/webhooks/x", content=b"{}", headers=encoded), 401, "invalid-signature"
    )


def _cursor(*values: Any) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/v1/tasks", _cursor("tasks", None, "2026-01-01T00:00:00+00:00", 17)),
        ("/v1/tasks", _cursor("tasks", None, "2026-01-01T00:00:00+00:00", ["x"])),
        ("/v1/tasks", _cursor("tasks", None, "2026-01-01T00:00:00+00:00", NUL)),
        ("/v1/definitions", _cursor("definitions", NUL)),
        ("/v1/definitions", _cursor("definitions", {"a": 1})),
        ("/v1/instances", _cursor("instances", "2026-01-01T00:00:00+00:00", 17)),
    ],
)
def test_an_altered_cursor_is_an_invalid_cursor(acme: httpx.Client, path: str, cursor: str) -> None:
    is_problem(acme.get(path, params={"cursor": cursor}), 400, "invalid-cursor")


@pytest.mark.parametrize("cursor", ["²", "١٢", "9" * 40])
def test_a_history_cursor_must_be_a_plain_number(
    acme: httpx.Client, waiting: str, cursor: str
) -> None:
    instance_id, _ = _waiting_instance(acme, waiting)
    history = acme.get(f"/v1/instances/{instance_id}/history", params={"cursor": cursor})
    is_problem(history, 400, "invalid-cursor")
