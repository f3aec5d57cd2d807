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
from application.errors import DefinitionNotFoundError, SignatureError, SignatureReplayedError
from application.instances import InstanceService
from application.ports import Clock, DuplicateIdempotencyKeyError, ReadModelQueries
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


# Where accepted webhook signatures are recorded (idempotency records, with the start).
SIGNATURE_SCOPE = "webhook-signature"


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
        queries: ReadModelQueries,
    ):
        self.queries = queries
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
        owner, mac = self._verified_tenant(cmd)
        # A signature is accepted once (SPEC §4): a replay within the tolerance window is 409,
        # recorded in the start's own transaction (a concurrent replay collides there).
        if self.queries.idempotent_result(owner, SIGNATURE_SCOPE, mac) is not None:
            raise SignatureReplayedError()
        data = webhook_input(cmd.body)
        definition = cmd.definition

        def admit(data: dict[str, Any]) -> Definition:
            # The newest version (cached; the start's commit checks it is still the newest).
            published = self.definitions.admissible(owner, definition)
            if not has_webhook_trigger(published.definition.triggers):
                raise DefinitionNotFoundError(definition)
            # Admit the version whose trigger was just checked.
            return self.admission.admit(owner, definition, published.version, data)

        try:
            return self.instances.start_keyed(
                owner,
                admit,
                data,
                scope=webhook_scope(definition),
                idempotency_key=cmd.idempotency_key,
                correlation_id=None,
                remember=(SIGNATURE_SCOPE, mac),
                started_by=origin.by_webhook(),
                latest=True,
            )
        except DuplicateIdempotencyKeyError as e:
            if e.scope == SIGNATURE_SCOPE:
                raise SignatureReplayedError() from e
            raise

    def _verified_tenant(self, cmd: TriggerWebhook) -> tuple[str, str]:
        """(tenant, signature MAC), once the body is signed with its secret; else
        SignatureError."""
        if not cmd.tenant:
            raise SignatureError("a Waymark-Tenant header or an API key is required")
        secret = self.secret_for(cmd.tenant)
        now = self.clock.now().timestamp()
        mac = verify(secret or self._decoy_secret, cmd.body, cmd.signature, now, cmd.path)
        if not secret:
            raise SignatureError("the signature does not match")
        return cmd.tenant, mac
