"""The webhook trigger's pure pieces: trigger detection, the input a body becomes, and how
a delivery for an unknown tenant is refused (exactly like a wrong signature)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from application.callbacks import sign
from application.commands import TriggerWebhook
from application.errors import SignatureError
from application.instances import KeyedIds
from application.webhooks import (
    WebhookService,
    has_webhook_trigger,
    webhook_input,
    webhook_scope,
)

SECRETS = {"acme": "s3cret"}


class FixedClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def service() -> WebhookService:
    # Signature checks come before any lookup, so the stores are never touched here.
    unused = cast(Any, None)
    return WebhookService(unused, unused, unused, SECRETS.get, FixedClock(), unused)


@pytest.mark.parametrize(
    ("triggers", "expected"),
    [
        ([{"type": "webhook"}], True),
        ([{"type": "event", "event": "x"}, {"type": "webhook", "name": "psp"}], True),
        ([{"type": "event", "event": "webhook"}], False),
        ([], False),
    ],
)
def test_has_webhook_trigger(triggers: list[dict[str, Any]], expected: bool) -> None:
    assert has_webhook_trigger(triggers) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2]", {"payload": [1, 2]}),
        (b'"text"', {"payload": "text"}),
        (b"7", {"payload": 7}),
        (b"null", {"payload": None}),
        (b"", {"payload": None}),
        (b"  \n", {"payload": None}),
    ],
)
def test_webhook_input(body: bytes, expected: dict[str, Any]) -> None:
    assert webhook_input(body) == expected


@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe\xfa"])
def test_a_body_that_is_not_json_is_a_json_error(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        webhook_input(body)


def test_webhook_keys_have_their_own_scope_per_definition() -> None:
    ids = {
        KeyedIds(b"0" * 32).derive("acme", scope, "k-1")
        for scope in ("start", webhook_scope("a"), webhook_scope("b"), "event:a")
    }
    assert len(ids) == 4


def _refusal(tenant: str | None, secret: str, at: float | None = None) -> str:
    body = b'{"n": 1}'
    header = sign(secret, body, int(time.time() if at is None else at), "/v1/webhooks/flow")
    with pytest.raises(SignatureError) as refused:
        service().trigger(TriggerWebhook(tenant, "flow", body, header, None))
    return str(refused.value)


def test_an_unknown_tenant_is_refused_like_a_wrong_signature() -> None:
    wrong = _refusal("acme", "guess")
    assert wrong == "the signature does not match"
    assert _refusal("nobody", "guess") == wrong
    assert _refusal("nobody", "s3cret") == wrong  # another tenant's secret does not help
    stale = time.time() - 600
    assert _refusal("nobody", "guess", stale) == _refusal("acme", "guess", stale)


def test_a_delivery_naming_no_tenant_is_refused() -> None:
    assert "Waymark-Tenant" in _refusal(None, "s3cret")
    assert "Waymark-Tenant" in _refusal("", "s3cret")
