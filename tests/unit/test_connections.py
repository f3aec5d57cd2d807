"""Connections: the file's format and env references, publish-time checks, and how the
action registry resolves a tenant's connection for a built-in action."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from application.connections import Connection, ConnectionService, missing_connections
from application.definitions import DefinitionService
from application.errors import InvalidDefinitionError
from application.ports import ActionResult
from infrastructure.actions import ActionRegistry
from infrastructure.actions.registry import _with_http_connection
from infrastructure.connections import ConnectionsFileError, FileConnections
from infrastructure.memory.definition_store import MemoryDefinitionStore
from infrastructure.memory.tables import MemoryTables
from infrastructure.schemas import JsonSchemaValidator

YAML = """
acme:
  mail:
    type: smtp
    host: smtp.sendgrid.net
    port: 587
    username: apikey
    password: ${SENDGRID_API_KEY}
    from: "Acme <noreply@acme.example>"
  ops:
    type: slack
    token: "xoxb-${SLACK_SUFFIX}"
globex:
  hook:
    type: teams
    webhook_url: https://example.webhook.office.com/x
"""


def test_a_yaml_file_with_environment_references(tmp_path: Path) -> None:
    path = tmp_path / "connections.yaml"
    path.write_text(YAML)

    catalog = FileConnections.from_file(path, {"SENDGRID_API_KEY": "SG.k", "SLACK_SUFFIX": "1-2"})

    mail = catalog.get("acme", "mail")
    assert mail is not None and mail.type == "smtp"
    assert mail.get("password") == "SG.k" and mail.get("port") == 587
    assert catalog.get("acme", "ops").get("token") == "xoxb-1-2"  # type: ignore[union-attr]
    assert catalog.get("globex", "mail") is None  # tenants never share
    assert catalog.names("acme") == [("mail", "smtp"), ("ops", "slack")]
    assert "SG.k" not in repr(mail)


def test_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps({"acme": {"api": {"type": "http", "base_url": "https://x"}}}))
    assert FileConnections.from_file(path).names("acme") == [("api", "http")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"acme": {"m": {"type": "smtp", "host": "h", "password": "${NOPE}"}}}, "NOPE is not set"),
        ({"acme": {"m": {"type": "fax"}}}, "'type' must be one of"),
        ({"acme": {"m": {"type": "smtp"}}}, "needs host"),
        ({"acme": {"s": {"type": "slack"}}}, "needs token or webhook_url"),
        ({"acme": {"t": {"type": "twilio", "account_sid": "AC", "from": "+1"}}}, "auth_token"),
        ({"acme": {"bad name": {"type": "http"}}}, "a name is"),
        ({"acme": ["x"]}, "expected an object"),
    ],
)
def test_a_broken_file_names_where_never_a_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectionsFileError, match=message) as caught:
        FileConnections(data, {"SECRET": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_an_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionsFileError, match="cannot read"):
        FileConnections.from_file(tmp_path / "missing.yaml")
    broken = tmp_path / "c.json"
    broken.write_text("{")
    with pytest.raises(ConnectionsFileError, match="not valid"):
        FileConnections.from_file(broken)


CATALOG = FileConnections(
    {
        "acme": {
            "mail": {"type": "smtp", "host": "h", "password": "pw"},
            "ops": {"type": "slack", "token": "xoxb"},
            "api": {
                "type": "http",
                "base_url": "https://api.example/v2/",
                "headers": {"Authorization": "Bearer t"},
            },
        }
    },
    {},
)


def service_task(action: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "n",
        "nodes": [
            {"id": "s", "type": "service_task", "action": action},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "s", "to": "done"}],
    }


def test_publish_checks_the_tenants_connections() -> None:
    service = DefinitionService(
        MemoryDefinitionStore(MemoryTables()), JsonSchemaValidator(), CATALOG
    )
    mail = {"type": "email", "to": "a@b.c", "subject": "s", "text": "t"}
    service.publish("acme", service_task({**mail, "connection": "mail"}))

    for tenant, name, code in (
        ("acme", "nope", "unknown_connection"),
        ("acme", "ops", "invalid_connection"),
        ("globex", "mail", "unknown_connection"),
    ):
        with pytest.raises(InvalidDefinitionError) as caught:
            service.publish(tenant, service_task({**mail, "connection": name}))
        assert [(p.path, p.code) for p in caught.value.problems] == [
            ("$.nodes[0].action.connection", code)
        ]


def test_plug_in_actions_and_http_without_a_connection_need_none() -> None:
    assert (
        missing_connections(CATALOG, "acme", service_task({"type": "fax", "connection": "x"})) == []
    )
    assert missing_connections(CATALOG, "acme", service_task({"type": "http", "url": "u"})) == []


def test_the_listing_has_names_and_types_only() -> None:
    assert ConnectionService(CATALOG).list("acme") == [
        {"name": "api", "type": "http"},
        {"name": "mail", "type": "smtp"},
        {"name": "ops", "type": "slack"},
    ]


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str, float, Connection]] = []

    def __call__(
        self, action: dict[str, Any], key: str, timeout: float, connection: Connection
    ) -> ActionResult:
        self.calls.append((action, key, timeout, connection))
        return ActionResult(ok=True, output={"sent": True})


def test_the_registry_hands_a_built_in_the_tenants_connection() -> None:
    email = Recording()
    registry = ActionRegistry(connections=CATALOG, email=email)
    action = {"type": "email", "connection": "mail", "to": "a@b.c"}

    assert registry.run(action, idempotency_key="k", timeout=3.0, tenant="acme").ok
    ((seen, key, timeout, connection),) = email.calls
    assert seen == action and key == "k" and timeout == 3.0
    assert connection.get("password") == "pw"

    for tenant, name, why in (
        ("globex", "mail", "no connection 'mail' is configured for tenant 'globex'"),
        (None, "mail", "no connection 'mail'"),
        ("acme", "ops", "a email action needs a 'smtp' connection"),
    ):
        result = registry.run(
            {**action, "connection": name}, idempotency_key="k", timeout=1, tenant=tenant
        )
        assert not result.ok and not result.retryable and why in (result.error or "")
    assert len(email.calls) == 1


def test_an_http_connection_supplies_base_url_and_headers() -> None:
    merged = _with_http_connection(
        {"type": "http", "connection": "api", "url": "orders/1", "headers": {"X-A": "1"}},
        CATALOG.get("acme", "api"),  # type: ignore[arg-type]
    )
    assert merged == {
        "type": "http",
        "url": "https://api.example/v2/orders/1",
        "headers": {"Authorization": "Bearer t", "X-A": "1"},
    }
    absolute = _with_http_connection(
        {"type": "http", "url": "https://other/x"}, CATALOG.get("acme", "api")
    )  # type: ignore[arg-type]
    assert absolute["url"] == "https://other/x"


def test_emit_is_never_run_by_a_worker() -> None:
    result = ActionRegistry().run({"type": "emit", "event": "x"}, idempotency_key="k", timeout=1)
    assert not result.ok and not result.retryable and "inside the engine" in (result.error or "")


def test_a_built_ins_own_timeout_overrides_the_nodes() -> None:
    email = Recording()
    registry = ActionRegistry(connections=CATALOG, email=email)
    action = {"type": "email", "connection": "mail", "to": "a@b.c"}
    registry.run({**action, "timeout": "PT5S"}, idempotency_key="k", timeout=120.0, tenant="acme")
    registry.run(action, idempotency_key="k", timeout=120.0, tenant="acme")
    assert [call[2] for call in email.calls] == [5.0, 120.0]
