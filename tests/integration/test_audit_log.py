"""The audit log is written in the acts' own transactions (application/audit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import PersistenceError

from application import audit
from application.audit import AuditEntry
from application.commands import CancelInstance, StartInstance
from application.errors import InstanceNotFoundError

pytestmark = pytest.mark.integration

WAIT = {
    "name": "one-wait",
    "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "wait", "to": "done"}],
}


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            tenant_secrets="acme=s1",
            db_pool_size=2,
        )
    )
    try:
        yield built
    finally:
        built.close()


def entries(container: Any, tenant: str = "acme", **filters: Any) -> list[AuditEntry]:
    return list(container.audit.list(tenant, 500, None, **filters).items)


def test_an_act_whose_audit_entry_cannot_be_written_is_not_done(container: Any) -> None:
    broken = AuditEntry(tenant="acme", action="definition.published", target="x", actor=None)  # type: ignore[arg-type]
    with pytest.raises(PersistenceError):
        container.core.definition_store.publish("acme", "one-wait", WAIT, audit=broken)
    # The publish rolled back with its entry.
    assert container.core.definition_store.get("acme", "one-wait") is None
    assert entries(container) == []
    # Positive control: the same publish with a good entry is done, entry and all.
    with audit.acting_as("key:ops", "10.0.0.7", "curl/8"):
        container.definitions.publish("acme", WAIT)
    (entry,) = entries(container)
    assert (entry.actor, entry.client_ip, entry.user_agent) == ("key:ops", "10.0.0.7", "curl/8")
    assert (entry.action, entry.target, entry.details) == (
        "definition.published",
        "definition:one-wait",
        {"version": 1},
    )


def test_cancel_and_erase_are_audited_and_a_failed_cancel_leaves_no_entry(
    container: Any,
) -> None:
    container.definitions.publish("acme", WAIT)
    view, _ = container.instances.start(StartInstance("acme", "one-wait"))
    instance_id = UUID(view["id"])
    with audit.acting_as("key:ops"):
        container.instances.cancel(CancelInstance("acme", instance_id, "obsolete"))
        with pytest.raises(InstanceNotFoundError):
            container.instances.cancel(CancelInstance("globex", instance_id, "not theirs"))
    container.cleanup.erase(instance_id, tenant="acme", erased_by="dpo", reason="gdpr")
    target = f"instance:{instance_id}"
    assert [(e.action, e.actor, e.details) for e in entries(container, target=target)] == [
        ("instance.erased", "dpo", {"reason": "gdpr"}),
        ("instance.cancelled", "key:ops", {"reason": "obsolete"}),
    ]
    assert entries(container, "globex") == []


def test_the_app_role_cannot_rewrite_the_audit_trail(container: Any) -> None:
    container.definitions.publish("acme", WAIT)
    with (
        pytest.raises(PersistenceError, match="permission denied"),
        container.core.datastore.transaction(commit=True) as curs,
    ):
        curs.execute("DELETE FROM audit_log")
    assert len(entries(container)) == 1
