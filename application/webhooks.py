"""Webhook triggers: a signed POST from an external system starts a definition."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from application.admission import StartAdmission
from application.callbacks import verify
from application.commands import TriggerWebhook
from application.definitions import DefinitionCache
from application.errors import DefinitionNotFoundError, SignatureError
from application.instances import InstanceService
from application.ports import Clock
from domain import origin
from domain.definition import Definition


def has_webhook_trigger(triggers: Iterable[dict[str, Any]]) -> bool:
    """Whether the definition declares `{"type": "webhook"}` among its triggers."""
    return any(trigger.get("type") == "webhook" for trigger in triggers)


def webhook_input(body: bytes) -> dict[str, Any]:
    """The instance input: the JSON body if it is an object, else `{"payload": <body>}`."""
    try:
        payload = json.loads(body) if body.strip() else None
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the body is not UTF-8 text", "", 0) from None
    return payload if isinstance(payload, dict) else {"payload": payload}


def webhook_scope(definition: str) -> str:
    """The idempotency scope of a definition's webhook: apart from API and event starts."""
    return f"webhook:{definition}"


class WebhookService:
    """Verifies webhook deliveries and starts the definitions they trigger."""

    def __init__(
        self,
        instances: InstanceService,
        definitions: DefinitionCache,
        admission: StartAdmission,
        secret_for: Callable[[str], str | None],
        clock: Clock,
    ):
        self.instances = instances
        self.definitions = definitions
        self.admission = admission
        self.secret_for = secret_for
        self.clock = clock
        # Stands in for a missing secret, so that an unknown tenant fails exactly like a
        # wrong signature (same work, same detail): tenants cannot be probed.
        self._decoy_secret = secrets.token_hex(32)

    def trigger(self, cmd: TriggerWebhook) -> tuple[dict[str, Any], bool]:
        """Start `definition` with the body as input; (view, created)."""
        # Verified before any lookup: an unsigned request learns nothing about definitions.
        owner = self._verified_tenant(cmd.tenant, cmd.body, cmd.signature)
        data = webhook_input(cmd.body)
        definition = cmd.definition

        def admit(data: dict[str, Any]) -> Definition:
            published = self.definitions.get(owner, definition)
            if not has_webhook_trigger(published.definition.triggers):
                raise DefinitionNotFoundError(definition)
            # Admit the version whose trigger was just checked, even if a newer one appears.
            return self.admission.admit(owner, definition, published.version, data)

        return self.instances.start_keyed(
            owner,
            admit,
            data,
            scope=webhook_scope(definition),
            idempotency_key=cmd.idempotency_key,
            correlation_id=None,
            started_by=origin.by_webhook(),
        )

    def _verified_tenant(self, tenant: str | None, body: bytes, signature: str | None) -> str:
        """The tenant, once the body is signed with its secret; else SignatureError."""
        if not tenant:
            raise SignatureError("a Waymark-Tenant header or an API key is required")
        secret = self.secret_for(tenant)
        verify(secret or self._decoy_secret, body, signature, self.clock.now().timestamp())
        if not secret:
            raise SignatureError("the signature does not match")
        return tenant
