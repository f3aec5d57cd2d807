"""`POST /v1/webhooks/{definition}`: signed starts of definitions with a webhook trigger,
their idempotent redeliveries, and every way a delivery is refused (SPEC §4)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

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


def hooked(name: str, **extra: Any) -> dict[str, Any]:
    """A definition that ends at once with its input as output; webhook-triggered."""
    return {
        "name": name,
        "nodes": [{"id": "done", "type": "end", "output": {"got": "input"}}],
        "triggers": [{"type": "webhook"}],
        **extra,
    }


@pytest.fixture(scope="module")
def definition(server: Server) -> str:
    name = unique("hooked")
    with server.client("k-acme") as acme:
        publish(acme, hooked(name))
    return name


def deliver(
    client: httpx.Client,
    definition: str,
    payload: object,
    *,
    tenant: str | None = "acme",
    secret: str = TENANT_SECRETS["acme"],
    at: int | None = None,
    key: str | None = None,
) -> httpx.Response:
    headers = {}
    if tenant:
        headers["Waymark-Tenant"] = tenant
    if key:
        headers["Idempotency-Key"] = key
    return post_signed(
        client, f"/v1/webhooks/{definition}", payload, secret=secret, at=at, headers=headers
    )


def instance_ids(client: httpx.Client, definition: str) -> set[str]:
    response = client.get("/v1/instances", params={"definition": definition, "limit": 500})
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_a_signed_delivery_starts_the_definition(
    acme: httpx.Client, anonymous: httpx.Client, definition: str
) -> None:
    response = deliver(anonymous, definition, {"order": 42})

    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    view = response.json()
    assert response.headers["location"] == f"/v1/instances/{view['id']}"
    assert (view["definition"], view["version"]) == (definition, 1)
    assert view["input"] == {"order": 42}
    assert view["started_by"] == {"kind": "webhook"}
    assert instance(acme, view["id"])["output"] == {"got": {"order": 42}}
    # An API start names the API key (by its stable, non-secret name)
    by_api = start(acme, definition)
    assert by_api["started_by"]["kind"] == "api"
    assert by_api["started_by"]["key_name"].startswith("key-")


def test_a_body_that_is_not_an_object_becomes_the_payload(
    anonymous: httpx.Client, definition: str
) -> None:
    response = deliver(anonymous, definition, [1, 2])

    assert response.status_code == 201, response.text
    assert response.json()["input"] == {"payload": [1, 2]}


def test_a_redelivery_with_the_same_key_answers_with_the_same_instance(
    acme: httpx.Client, anonymous: httpx.Client, definition: str
) -> None:
    key = unique("delivery")

    first = deliver(anonymous, definition, {"n": 1}, key=key)
    again = deliver(anonymous, definition, {"n": 2}, key=key)

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["input"] == {"n": 1}  # the first delivery wins
    # Webhook keys are apart from API start keys: the same key starts another instance
    api = start(acme, definition, input={"n": 3}, idempotency_key=key)
    assert api["id"] != first.json()["id"]
    assert deliver(anonymous, definition, {"n": 4}, key=unique("delivery")).status_code == 201


def test_refused_signatures_start_nothing(
    acme: httpx.Client, anonymous: httpx.Client, definition: str
) -> None:
    before = instance_ids(acme, definition)

    forged = deliver(anonymous, definition, {"n": 1}, secret="guess")
    stale = deliver(anonymous, definition, {"n": 1}, at=int(time.time()) - 600)
    other = deliver(anonymous, definition, {"n": 1}, secret=TENANT_SECRETS["globex"])
    unsigned = anonymous.post(
        f"/v1/webhooks/{definition}", json={"n": 1}, headers={"Waymark-Tenant": "acme"}
    )

    assert is_problem(forged, 401, "invalid-signature")["detail"] == "the signature does not match"
    assert "5 minutes" in is_problem(stale, 401, "invalid-signature")["detail"]
    is_problem(other, 401, "invalid-signature")
    is_problem(unsigned, 401, "invalid-signature")
    assert instance_ids(acme, definition) == before


def test_unknown_or_missing_tenants_are_refused_like_a_bad_signature(
    anonymous: httpx.Client, definition: str
) -> None:
    unknown = deliver(anonymous, definition, {}, tenant=unique("nobody"), secret="guess")
    forged = deliver(anonymous, definition, {}, secret="guess")
    unnamed = deliver(anonymous, definition, {}, tenant=None)

    # The same answer for a tenant that does not exist and a wrong signature
    assert is_problem(unknown, 401, "invalid-signature")["detail"] == forged.json()["detail"]
    is_problem(unnamed, 401, "invalid-signature")


def test_definitions_without_a_webhook_trigger_are_not_found(
    acme: httpx.Client, anonymous: httpx.Client
) -> None:
    plain = unique("plain")
    publish(acme, {"name": plain, "nodes": [{"id": "done", "type": "end"}]})
    on_event = unique("on-event")
    publish(acme, hooked(on_event, triggers=[{"type": "event", "event": unique("evt")}]))

    not_hooked = is_problem(deliver(anonymous, plain, {}), 404, "not-found")
    unknown = is_problem(deliver(anonymous, unique("nothing"), {}), 404, "not-found")

    is_problem(deliver(anonymous, on_event, {}), 404, "not-found")
    assert not_hooked.keys() == unknown.keys()
    assert instance_ids(acme, plain) == set()


def test_a_trigger_removed_by_a_newer_version_no_longer_starts(
    acme: httpx.Client, anonymous: httpx.Client
) -> None:
    name = unique("unhooked")
    publish(acme, hooked(name))
    publish(acme, {"name": name, "nodes": [{"id": "done", "type": "end"}]})

    is_problem(deliver(anonymous, name, {}), 404, "not-found")


def test_input_is_admitted_like_any_start(acme: httpx.Client, anonymous: httpx.Client) -> None:
    name = unique("typed")
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
    }
    publish(acme, hooked(name, input_schema=schema))

    invalid = deliver(anonymous, name, {"amount": "lots"})
    valid = deliver(anonymous, name, {"amount": 5})
    acme.post(f"/v1/definitions/{name}/disable").raise_for_status()
    # (signed anew: the same signature twice would be a replay, 409 signature-replayed)
    disabled = deliver(anonymous, name, {"amount": 5}, at=int(time.time()) + 1)

    assert is_problem(invalid, 422, "invalid-data")["errors"][0]["path"] == "$.amount"
    assert valid.status_code == 201, valid.text
    assert is_problem(disabled, 409, "definition-disabled")["definition"] == name
    assert instance_ids(acme, name) == {valid.json()["id"]}


def test_invalid_json_with_a_valid_signature_is_a_bad_request(
    anonymous: httpx.Client, definition: str
) -> None:
    body = b"{not json"
    headers = {
        "Waymark-Tenant": "acme",
        "Waymark-Signature": sign(
            TENANT_SECRETS["acme"], body, int(time.time()), f"/v1/webhooks/{definition}"
        ),
    }

    response = anonymous.post(f"/v1/webhooks/{definition}", content=body, headers=headers)

    is_problem(response, 400, "invalid-json")


def test_an_api_key_names_the_tenant(
    acme: httpx.Client, globex: httpx.Client, server: Server, definition: str
) -> None:
    signed_by_acme = deliver(acme, definition, {"via": "key"}, tenant=None)
    assert signed_by_acme.status_code == 201, signed_by_acme.text
    assert signed_by_acme.json()["input"] == {"via": "key"}

    # The key's tenant wins over the header; its secret must sign the body
    is_problem(deliver(globex, definition, {}, tenant="acme"), 401, "invalid-signature")
    signed_by_globex = deliver(globex, definition, {}, secret=TENANT_SECRETS["globex"])
    is_problem(signed_by_globex, 404, "not-found")  # globex has no such definition
    with server.client("not-a-key") as stranger:
        is_problem(deliver(stranger, definition, {}), 401, "unauthorized")


def test_a_signature_is_accepted_once_a_replay_is_409(
    anonymous: httpx.Client, acme: httpx.Client, definition: str
) -> None:
    # Given a delivery accepted with its signature
    before = instance_ids(acme, definition)
    at = int(time.time())
    first = deliver(anonymous, definition, {"n": 7}, at=at)
    assert first.status_code == 201, first.text

    # When the same signed request is sent again (a replay within the 5-minute window)
    replay = deliver(anonymous, definition, {"n": 7}, at=at)

    # Then it is refused and starts nothing
    is_problem(replay, 409, "signature-replayed")
    assert instance_ids(acme, definition) - before == {first.json()["id"]}
    # A redelivery signed anew is accepted.
    assert deliver(anonymous, definition, {"n": 7}, at=at + 1).status_code == 201


def test_a_signature_made_for_another_webhook_is_refused(
    anonymous: httpx.Client, definition: str
) -> None:
    body = b'{"n": 1}'
    signed_elsewhere = sign(TENANT_SECRETS["acme"], body, int(time.time()), "/v1/webhooks/other")
    response = anonymous.post(
        f"/v1/webhooks/{definition}",
        content=body,
        headers={"Waymark-Tenant": "acme", "Waymark-Signature": signed_elsewhere},
    )
    is_problem(response, 401, "invalid-signature")
