"""What one tenant can learn about another's instances and tokens (issue 5, item 8), against
the real PostgreSQL: no replay before the tenant check, unknown callback tokens answered like
forged signatures, keyed instance ids that cannot be computed from the key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.callbacks import sign
from application.commands import CancelInstance, DeliverCallback, ResumeBookmark, StartInstance
from application.errors import InstanceNotFoundError, SignatureError
from application.instances import KeyedIds
from application.session import CommandAttempt

pytestmark = pytest.mark.integration

SECRETS = {"acme": "s3cret-acme", "globex": "s3cret-globex"}

WAIT = {
    "name": "one-wait",
    "nodes": [
        {"id": "wait", "type": "wait"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "wait", "to": "done"}],
}


def build(database_url: str) -> Any:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    return build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            tenant_secrets=",".join(f"{t}={s}" for t, s in SECRETS.items()),
            db_pool_size=4,
        )
    )


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    built = build(database_url)
    built.definitions.publish("acme", WAIT)
    yield built
    built.close()


# --- (a) the tenant is checked before the aggregate is replayed ---------------------------


def poison(database_url: str, instance_id: str) -> None:
    """Append an event no replay can decode: whoever replays the instance fails loudly."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO waymark_events (originator_id, originator_version, topic, state) "
            "SELECT originator_id, max(originator_version) + 1, 'nowhere:Missing', '\\x00' "
            "FROM waymark_events WHERE originator_id = %s GROUP BY originator_id",
            (instance_id,),
        )


def test_another_tenants_instance_is_not_replayed_before_the_tenant_check(
    container: Any, database_url: str
) -> None:
    view, _ = container.instances.start(StartInstance("acme", "one-wait"))
    instance_id = UUID(view["id"])
    bookmark = view["bookmarks"][0]["id"]
    poison(database_url, view["id"])

    # Positive control: the owner's read does replay, and trips over the poison.
    with pytest.raises(Exception) as replayed:
        container.instances.get("acme", instance_id)
    assert not isinstance(replayed.value, InstanceNotFoundError)

    # Another tenant never gets as far as the events: not found, at the cost of a lookup.
    with pytest.raises(InstanceNotFoundError):
        container.instances.get("globex", instance_id)
    with pytest.raises(InstanceNotFoundError):
        container.instances.cancel(CancelInstance("globex", instance_id, "no"))
    with pytest.raises(InstanceNotFoundError):
        container.instances.resume(ResumeBookmark("globex", instance_id, bookmark, {}))
    with pytest.raises(InstanceNotFoundError):
        container.runner.run(lambda session: session.load(instance_id, "globex"))


# --- (b) an unknown callback token is answered like a wrong signature ---------------------


def test_an_unknown_callback_token_is_refused_exactly_like_a_forged_signature(
    container: Any,
) -> None:
    view, _ = container.instances.start(StartInstance("acme", "one-wait"))
    token = view["bookmarks"][0]["token"]
    body = b'{"ok": true}'

    def refusal(token: str, secret: str, at: float | None = None) -> str:
        header = sign(
            secret, body, int(time.time() if at is None else at), f"/v1/callbacks/{token}"
        )
        with pytest.raises(SignatureError) as refused:
            container.callbacks.callback(DeliverCallback(token, body, header, None))
        return str(refused.value)

    def unsigned(token: str) -> str:
        with pytest.raises(SignatureError) as refused:
            container.callbacks.callback(DeliverCallback(token, body, None, None))
        return str(refused.value)

    made_up = "x" * len(token)
    # The other tenant's secret, a guess, or even the right secret: a made-up token answers
    # like a live token with a wrong signature.
    assert refusal(made_up, SECRETS["acme"]) == refusal(token, "guess")
    assert refusal(made_up, "guess") == refusal(token, SECRETS["globex"])
    assert refusal(made_up, "guess") == "the signature does not match"
    assert refusal(made_up, "guess", at=0) == refusal(token, "guess", at=0)
    assert unsigned(made_up) == unsigned(token)
    # And the live token still works with its tenant's secret.
    header = sign(SECRETS["acme"], body, int(time.time()), f"/v1/callbacks/{token}")
    result, _ = container.callbacks.callback(DeliverCallback(token, body, header, None))
    assert result["resumed"] is True


# --- (c) keyed instance ids need the server secret ----------------------------------------


def test_keyed_ids_depend_on_the_secret_not_only_on_the_key() -> None:
    one, other = KeyedIds(b"1" * 32), KeyedIds(b"2" * 32)

    derived = one.derive("acme", "start", "order-1")

    assert derived != other.derive("acme", "start", "order-1")
    assert derived != KeyedIds.legacy("acme", "start", "order-1")
    assert derived == one.derive("acme", "start", "order-1")
    assert derived.version == 8
    assert derived != one.derive("globex", "start", "order-1")


def test_a_keyed_start_gets_an_id_nobody_can_compute_from_the_key(container: Any) -> None:
    view, created = container.instances.start(
        StartInstance("acme", "one-wait", idempotency_key="order-1")
    )

    assert created
    assert UUID(view["id"]) != KeyedIds.legacy("acme", "start", "order-1")
    assert UUID(view["id"]).version == 8


def test_replicas_of_one_database_derive_the_same_keyed_ids(
    container: Any, database_url: str
) -> None:
    replica = build(database_url)
    try:
        first, created = container.instances.start(
            StartInstance("acme", "one-wait", idempotency_key="k")
        )
        again, again_created = replica.instances.start(
            StartInstance("acme", "one-wait", idempotency_key="k")
        )
    finally:
        replica.close()

    assert created and not again_created
    assert again["id"] == first["id"]


def test_an_instance_started_with_a_key_before_server_secrets_is_still_found(
    container: Any,
) -> None:
    legacy_id = KeyedIds.legacy("acme", "start", "old-key")
    model = container.instances.admission.admit("acme", "one-wait", None, {})

    def start_the_old_way(session: CommandAttempt) -> None:
        session.start(
            instance_id=legacy_id,
            tenant="acme",
            definition=model,
            input={},
            correlation_id=None,
            idempotency_key="old-key",
        )

    container.runner.run(start_the_old_way)

    view, created = container.instances.start(
        StartInstance("acme", "one-wait", idempotency_key="old-key")
    )

    assert not created
    assert view["id"] == str(legacy_id)
    # Only for its own tenant: another tenant's start with the same key is its own.
    container.definitions.publish("globex", WAIT)
    other, other_created = container.instances.start(
        StartInstance("globex", "one-wait", idempotency_key="old-key")
    )
    assert other_created and other["id"] != str(legacy_id)


def test_each_database_gets_its_own_secret_at_migration_time(database_url: str) -> None:
    from alembic import command

    from infrastructure.postgres.migrate import alembic_config, migrate

    def secret() -> str:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT value FROM server_secrets").fetchone()
        assert row is not None
        return str(row[0])

    before = secret()
    command.downgrade(alembic_config(database_url), "0001")
    migrate(database_url)

    after = secret()
    assert after != before
    assert len(bytes.fromhex(after)) == 32


def test_a_database_without_the_secret_is_refused_at_bootstrap(database_url: str) -> None:
    from infrastructure.postgres.server_secrets import ServerSecretMissingError

    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM server_secrets")
    with pytest.raises(ServerSecretMissingError):
        build(database_url)
