"""Dispatch of service-task actions by their `type` to built-in and plug-in handlers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from application.ports import ActionResult
from infrastructure.actions.breakers import CircuitBreakers, breaker_target
from infrastructure.actions.http import HttpAction
from infrastructure.actions.noop import noop_action
from infrastructure.actions.outbound import EgressPolicy, EgressRefusedError, egress_scope

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "waymark.actions"

# handler(action, idempotency_key, timeout_seconds) -> ActionResult
ActionHandler = Callable[[dict[str, Any], str, float], ActionResult]
# Run inside Waymark: no outside target whose outage a breaker should absorb.
_INTERNAL_TYPES = frozenset({"noop", "emit"})


class ActionRegistry:
    """ActionRunner dispatching on `action["type"]`: http, noop, registered and plug-in types."""

    def __init__(
        self,
        *,
        http: HttpAction | None = None,
        entry_point_group: str = ENTRY_POINT_GROUP,
        breakers: CircuitBreakers | None = None,
        egress: EgressPolicy | None = None,
    ):
        self._http = http or HttpAction(egress=egress)
        self.breakers = breakers
        # What `outbound.check_url` applies inside this registry's handler calls.
        self.egress = egress
        self._handlers: dict[str, ActionHandler] = {"http": self._http, "noop": noop_action}
        self._group = entry_point_group
        self._lock = threading.Lock()

    @property
    def http(self) -> HttpAction:
        """The built-in `http` handler (its egress policy, its client)."""
        return self._http

    def register(self, type_name: str, handler: ActionHandler) -> None:
        """Add (or replace) the handler of an action type."""
        with self._lock:
            self._handlers[type_name] = handler

    def run(self, action: dict[str, Any], *, idempotency_key: str, timeout: float) -> ActionResult:
        type_name = action.get("type") if isinstance(action, dict) else None
        try:
            handler = self._handler(type_name)
        except Exception as exc:
            # A broken plug-in will not mend itself between retries.
            logger.exception("cannot load action type %r", type_name)
            return _failure(f"cannot load action type {type_name!r}: {_describe(exc)}", False)
        if handler is None:
            return _failure(f"unknown action type {type_name!r}", False)
        target = None
        if self.breakers is not None and type_name not in _INTERNAL_TYPES:
            target = breaker_target(action)
        if target is not None:
            assert self.breakers is not None
            until = self.breakers.admit(target)
            if until is not None:
                return ActionResult(
                    ok=False,
                    error=f"circuit breaker open for {target}",
                    retryable=True,
                    deferred_until=until,
                )
        result = self._call(handler, str(type_name), action, idempotency_key, timeout)
        if target is not None:
            assert self.breakers is not None
            # A refusal that is not transient (a 4xx, an invalid field) is the target
            # answering: only transient failures count against it.
            self.breakers.record(target, failed=not result.ok and result.retryable)
        return result

    def _call(
        self,
        handler: ActionHandler,
        type_name: str,
        action: dict[str, Any],
        idempotency_key: str,
        timeout: float,
    ) -> ActionResult:
        try:
            with egress_scope(self.egress):
                result = handler(action, idempotency_key, timeout)
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
            handlers = list(dict.fromkeys(self._handlers.values()))
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


def _failure(message: str, retryable: bool) -> ActionResult:
    return ActionResult(ok=False, error=message, retryable=retryable)


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
