"""Dispatch of service-task actions by their `type` to built-in and plug-in handlers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from application.connections import Connection, ConnectionCatalog, NoConnections
from application.ports import ActionResult
from domain.durations import parse_duration
from domain.validation.document import ACTION_CONNECTION_TYPES
from infrastructure import metrics
from infrastructure.actions.breakers import CircuitBreakers, breaker_target
from infrastructure.actions.email import EmailAction
from infrastructure.actions.http import HttpAction
from infrastructure.actions.noop import noop_action
from infrastructure.actions.outbound import EgressPolicy, EgressRefusedError, egress_scope
from infrastructure.actions.slack import SlackAction
from infrastructure.actions.sms import SmsAction
from infrastructure.actions.teams import TeamsAction

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "waymark.actions"

# handler(action, idempotency_key, timeout_seconds) -> ActionResult
ActionHandler = Callable[[dict[str, Any], str, float], ActionResult]
# handler(action, idempotency_key, timeout_seconds, connection) -> ActionResult: built-ins
# that need the tenant's connection (resolved by the registry from `action["connection"]`).
ConnectedHandler = Callable[[dict[str, Any], str, float, Connection], ActionResult]
# Run inside Waymark: no outside target whose outage a breaker should absorb.
_INTERNAL_TYPES = frozenset({"noop", "emit"})


class ActionRegistry:
    """ActionRunner dispatching on `action["type"]`: http, noop, registered and plug-in types."""

    def __init__(
        self,
        *,
        http: HttpAction | None = None,
        entry_point_group: str = ENTRY_POINT_GROUP,
        connections: ConnectionCatalog | None = None,
        email: ConnectedHandler | None = None,
        slack: ConnectedHandler | None = None,
        teams: ConnectedHandler | None = None,
        sms: ConnectedHandler | None = None,
        breakers: CircuitBreakers | None = None,
        egress: EgressPolicy | None = None,
    ):
        self._http = http or HttpAction(egress=egress)
        self.breakers = breakers
        # What `outbound.check_url` applies inside this registry's handler calls.
        self.egress = egress
        self._handlers: dict[str, ActionHandler] = {
            "http": self._http,
            "noop": noop_action,
            "emit": _emit_outside_a_command,
        }
        self._connected: dict[str, ConnectedHandler] = {
            "email": email or EmailAction(),
            "slack": slack or SlackAction(),
            "teams": teams or TeamsAction(),
            "sms": sms or SmsAction(),
        }
        self._connections = connections or NoConnections()
        self._group = entry_point_group
        self._lock = threading.Lock()

    @property
    def http(self) -> HttpAction:
        """The built-in `http` handler (its egress policy, its client)."""
        return self._http

    def types(self) -> list[str]:
        """Every action type it runs now (built-ins, and those registered so far), sorted."""
        with self._lock:
            return sorted({*self._handlers, *self._connected})

    def register(self, type_name: str, handler: ActionHandler) -> None:
        """Add (or replace, built-ins included) the handler of an action type."""
        with self._lock:
            self._handlers[type_name] = handler
            metrics.ACTION_TYPES.add(type_name)  # a label value of the action metrics
            self._connected.pop(type_name, None)

    def run(
        self,
        action: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float,
        tenant: str | None = None,
    ) -> ActionResult:
        """Run the action behind its target's circuit breaker (per connection, else per host):
        while the breaker is open the call is deferred (`deferred_until`), not attempted."""
        type_name = action.get("type") if isinstance(action, dict) else None
        target = None
        if self.breakers is not None and type_name not in _INTERNAL_TYPES:
            target = breaker_target(action)
        if target is not None:
            assert self.breakers is not None  # noqa: S101 - checked just above
            until = self.breakers.admit(target)
            if until is not None:
                return ActionResult(
                    ok=False,
                    error=f"circuit breaker open for {target}",
                    retryable=True,
                    deferred_until=until,
                )
        result = self._dispatch(action, type_name, idempotency_key, timeout, tenant)
        if target is not None:
            assert self.breakers is not None  # noqa: S101
            # A refusal that is not transient (a 4xx, an invalid field) is the target
            # answering: only transient failures count against it.
            self.breakers.record(target, failed=not result.ok and result.retryable)
        return result

    def _dispatch(
        self,
        action: dict[str, Any],
        type_name: Any,
        idempotency_key: str,
        timeout: float,
        tenant: str | None,
    ) -> ActionResult:
        with self._lock:
            connected = self._connected.get(type_name) if isinstance(type_name, str) else None
        if connected is not None or (type_name == "http" and action.get("connection")):
            found = self._connection(action, str(type_name), tenant)
            if isinstance(found, ActionResult):
                return found
            if connected is None:  # http through a connection: its base URL and headers
                return self._dispatch(
                    _with_http_connection(action, found), "http", idempotency_key, timeout, None
                )
            try:
                seconds = _action_timeout(action.get("timeout"), timeout)
            except ValueError as exc:
                return _failure(f"{type_name} action 'timeout': {exc}", False)
            return self._call(type_name, lambda: connected(action, idempotency_key, seconds, found))
        try:
            handler = self._handler(type_name)
        except Exception as exc:
            # A broken plug-in will not mend itself between retries.
            logger.exception("cannot load action type %r", type_name)
            return _failure(f"cannot load action type {type_name!r}: {_describe(exc)}", False)
        if handler is None:
            return _failure(f"unknown action type {type_name!r}", False)
        return self._call(type_name, lambda: handler(action, idempotency_key, timeout))

    def _connection(
        self, action: dict[str, Any], type_name: str, tenant: str | None
    ) -> Connection | ActionResult:
        name = action.get("connection")
        if not isinstance(name, str) or not name:
            return _failure(f"a {type_name} action needs a 'connection'", False)
        found = self._connections.get(tenant or "", name) if tenant else None
        if found is None:
            return _failure(f"no connection {name!r} is configured for tenant {tenant!r}", False)
        wanted = ACTION_CONNECTION_TYPES.get(type_name)
        if found.type != wanted:
            return _failure(
                f"connection {name!r} is of type {found.type!r}; a {type_name} action needs "
                f"a {wanted!r} connection",
                False,
            )
        return found

    def _call(self, type_name: Any, call: Callable[[], ActionResult]) -> ActionResult:
        try:
            with egress_scope(self.egress):
                result = call()
        except EgressRefusedError as exc:
            # From a handler's own `check_url`: another try would be refused the same way.
            return _failure(f"action {type_name!r}: {exc}", False)
        except Exception as exc:
            # The contract is "never raises": the worker records the failure and the node's
            # retry policy decides what happens next.
            logger.exception("action %r raised", type_name)
            return _failure(f"action {type_name!r} raised {_describe(exc)}", True)
        if not isinstance(result, ActionResult):
            return _failure(
                f"action {type_name!r} returned {type(result).__name__}, not an ActionResult",
                False,
            )
        return result

    def close(self) -> None:
        """Close the shared HTTP client (and any handler that has a `close`)."""
        with self._lock:
            handlers: list[Any] = list(dict.fromkeys(self._handlers.values()))
            handlers += list(dict.fromkeys(self._connected.values()))
        for handler in handlers:
            close = None if isinstance(handler, type) else getattr(handler, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    logger.exception("closing action handler %r failed", handler)

    def _handler(self, type_name: Any) -> ActionHandler | None:
        if not isinstance(type_name, str):
            return None
        with self._lock:
            handler = self._handlers.get(type_name)
        if handler is not None:
            return handler
        # Plug-ins are imported on first use, so a process only pays for the ones it runs.
        # Misses are not cached: a package installed later is found without a restart.
        for entry_point in entry_points(group=self._group, name=type_name):
            loaded = entry_point.load()
            with self._lock:
                return self._handlers.setdefault(type_name, loaded)
        return None


def _emit_outside_a_command(
    action: dict[str, Any], idempotency_key: str, timeout: float
) -> ActionResult:
    # `emit` is settled by the command that schedules it (application/session.py); a worker
    # only meets one scheduled by a runner without event delivery (a misconfiguration).
    return _failure("the emit action runs inside the engine's command, not in a task worker", False)


def _action_timeout(value: Any, default: float) -> float:
    """The action's own `timeout` (an ISO-8601 duration) if it has one, else the node's."""
    if value is None:
        return default
    seconds = parse_duration(value).total_seconds()
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _with_http_connection(action: dict[str, Any], connection: Connection) -> dict[str, Any]:
    """The action with the connection's `base_url` (for a relative `url`) and `headers`
    (the action's own win) applied; `connection` removed."""
    merged = {k: v for k, v in action.items() if k != "connection"}
    url = str(action.get("url") or "")
    base = connection.get("base_url")
    if base and "://" not in url:
        merged["url"] = str(base).rstrip("/") + "/" + url.lstrip("/")
    headers = dict(connection.get("headers") or {})
    headers.update(action.get("headers") or {})
    if headers:
        merged["headers"] = headers
    return merged


def _failure(message: str, retryable: bool) -> ActionResult:
    return ActionResult(ok=False, error=message, retryable=retryable)


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
