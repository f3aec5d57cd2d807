"""Connections: the named, per-tenant credentials and endpoints that actions use.

A definition names a connection (`"connection": "slack-ops"`), never a secret. The catalog
(`ConnectionCatalog`, implemented in `infrastructure/connections.py` from
`WAYMARK_CONNECTIONS_FILE`) maps (tenant, name) to a `Connection`. Publishing checks that
every connection a definition names exists for the tenant and has the type its action
needs (`missing_connections`), so a typo is a 422 at publish, not a failure at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from domain.validation import Problem
from domain.validation.document import ACTION_CONNECTION_TYPES

CONNECTION_TYPES = ("smtp", "slack", "teams", "twilio", "http")


@dataclass(frozen=True)
class Connection:
    name: str
    type: str
    # Settings and secrets (host, token, password, ...): never shown by the API or logged.
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


class ConnectionCatalog(Protocol):
    def get(self, tenant: str, name: str) -> Connection | None: ...

    def names(self, tenant: str) -> list[tuple[str, str]]:
        """(name, type) of the tenant's connections, sorted by name."""


class NoConnections:
    """The catalog when no connections file is configured."""

    def get(self, tenant: str, name: str) -> Connection | None:
        return None

    def names(self, tenant: str) -> list[tuple[str, str]]:
        return []


class ConnectionService:
    """`GET /v1/connections`: names and types, never settings or secrets."""

    def __init__(self, catalog: ConnectionCatalog):
        self.catalog = catalog

    def list(self, tenant: str) -> list[dict[str, str]]:
        return [{"name": name, "type": kind} for name, kind in self.catalog.names(tenant)]


def missing_connections(
    catalog: ConnectionCatalog, tenant: str, document: dict[str, Any]
) -> list[Problem]:
    """A problem for every service task naming a connection the tenant lacks (or of the
    wrong type for its action), with the JSON path `$.nodes[i].action.connection`."""
    problems: list[Problem] = []
    nodes = document.get("nodes")
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        action = node.get("action") if isinstance(node, dict) else None
        if not isinstance(action, dict) or not isinstance(action.get("connection"), str):
            continue
        kind, name = action.get("type"), action["connection"]
        wanted = ACTION_CONNECTION_TYPES.get(kind) if isinstance(kind, str) else None
        if wanted is None:
            continue  # plug-in action types resolve their own connections
        path = f"$.nodes[{index}].action.connection"
        node_id = node.get("id")
        where = f"node '{node_id}'" if isinstance(node_id, str) else f"node #{index}"
        found = catalog.get(tenant, name)
        if found is None:
            problems.append(
                Problem(
                    path,
                    "unknown_connection",
                    f"{where} field 'action.connection': no connection {name!r} is configured "
                    f"for this tenant",
                )
            )
        elif found.type != wanted:
            problems.append(
                Problem(
                    path,
                    "invalid_connection",
                    f"{where} field 'action.connection': connection {name!r} is of type "
                    f"{found.type!r}, a {kind} action needs a {wanted!r} connection",
                )
            )
    return problems
