"""Pins the slack-sdk private methods `infrastructure/actions/slack_clients.py` overrides to
refuse redirects: if an SDK upgrade renames them, the override would silently stop applying
(and slack-sdk's urllib would follow redirects past the egress guard again)."""

from __future__ import annotations

import inspect

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from infrastructure.actions.slack_clients import NoRedirectWebClient, NoRedirectWebhookClient


def test_the_overridden_sdk_methods_exist_with_the_assumed_signature() -> None:
    for base, name in (
        (WebClient, "_perform_urllib_http_request_internal"),
        (WebhookClient, "_perform_http_request_internal"),
    ):
        method = getattr(base, name, None)
        assert method is not None, f"slack-sdk no longer has {base.__name__}.{name}"
        assert list(inspect.signature(method).parameters) == ["self", "url", "req"]


def test_the_no_redirect_clients_override_them() -> None:
    assert "_perform_urllib_http_request_internal" in vars(NoRedirectWebClient)
    assert "_perform_http_request_internal" in vars(NoRedirectWebhookClient)
