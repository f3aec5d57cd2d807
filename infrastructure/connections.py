"""The connections catalog from `WAYMARK_CONNECTIONS_FILE` (JSON or YAML).

```yaml
acme:                       # tenant
  mail:                     # connection name, as definitions spell it
    type: smtp
    host: smtp.sendgrid.net
    port: 587
    security: starttls
    username: apikey
    password: ${SENDGRID_API_KEY}
    from: "Acme <noreply@acme.example>"
```

`${NAME}` anywhere in a string value is replaced by the environment variable NAME when the
file is loaded (a missing variable is an error naming the variable, never its value), so
secrets can stay in the environment or a secret manager's mounted variables. The file is
read once at start. Errors name the tenant, connection and setting, never a value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from application.connections import CONNECTION_TYPES, Connection

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# The settings each connection type must have (one of the tuples, for alternatives).
REQUIRED_SETTINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "smtp": (("host",),),
    "slack": (("token",), ("webhook_url",)),
    "teams": (("webhook_url",),),
    "twilio": (("account_sid", "auth_token", "from"),),
    "http": ((),),
}


class ConnectionsFileError(ValueError):
    """The connections file cannot be used (the message names where, never a secret)."""


class FileConnections:
    """`{tenant: {name: {"type": ..., settings...}}}`, validated and env-expanded at load."""

    def __init__(self, data: Mapping[str, Any], environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self._by_tenant: dict[str, dict[str, Connection]] = {}
        if not isinstance(data, Mapping):
            raise ConnectionsFileError("the connections file must hold an object of tenants")
        for tenant, entries in data.items():
            if not isinstance(entries, Mapping):
                raise ConnectionsFileError(f"tenant {tenant!r}: expected an object of connections")
            parsed: dict[str, Connection] = {}
            for name, entry in entries.items():
                parsed[str(name)] = _connection(str(tenant), str(name), entry, env)
            self._by_tenant[str(tenant)] = parsed

    @classmethod
    def from_file(
        cls, path: str | Path, environ: Mapping[str, str] | None = None
    ) -> FileConnections:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConnectionsFileError(f"cannot read the connections file {file}: {exc}") from None
        try:
            data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConnectionsFileError(f"the connections file {file} is not valid: {exc}") from None
        return cls(data or {}, environ)

    def get(self, tenant: str, name: str) -> Connection | None:
        return self._by_tenant.get(tenant, {}).get(name)

    def names(self, tenant: str) -> list[tuple[str, str]]:
        return sorted((c.name, c.type) for c in self._by_tenant.get(tenant, {}).values())


def _connection(tenant: str, name: str, entry: Any, env: Mapping[str, str]) -> Connection:
    where = f"tenant {tenant!r} connection {name!r}"
    if not _NAME.fullmatch(name):
        raise ConnectionsFileError(f"{where}: a name is letters, digits, '.', '_' or '-'")
    if not isinstance(entry, Mapping):
        raise ConnectionsFileError(f"{where}: expected an object with a 'type'")
    kind = entry.get("type")
    if kind not in CONNECTION_TYPES:
        raise ConnectionsFileError(f"{where}: 'type' must be one of {', '.join(CONNECTION_TYPES)}")
    settings = {str(k): _expand(v, f"{where} setting {k!r}", env) for k, v in entry.items()}
    settings.pop("type")
    alternatives = REQUIRED_SETTINGS[kind]
    if not any(all(settings.get(key) for key in keys) for keys in alternatives):
        wanted = " or ".join("+".join(keys) for keys in alternatives)
        raise ConnectionsFileError(f"{where}: a {kind} connection needs {wanted}")
    return Connection(name=name, type=kind, settings=settings)


def _expand(value: Any, where: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def variable(match: re.Match[str]) -> str:
            if match.group(1) not in env:
                raise ConnectionsFileError(
                    f"{where}: environment variable {match.group(1)} is not set"
                )
            return env[match.group(1)]

        return _ENV_REFERENCE.sub(variable, value)
    if isinstance(value, Mapping):
        return {str(k): _expand(v, where, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where, env) for v in value]
    return value
