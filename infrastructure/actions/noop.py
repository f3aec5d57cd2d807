"""The `noop` action: does nothing and hands its input back (tests, demos, placeholders)."""

from __future__ import annotations

from typing import Any

from application.ports import ActionResult


def noop_action(action: dict[str, Any], idempotency_key: str, timeout: float) -> ActionResult:
    """Succeed with `action["input"]`, or with the action's own fields minus `type`."""
    if "input" in action:
        return ActionResult(ok=True, output=action["input"])
    return ActionResult(ok=True, output={k: v for k, v in action.items() if k != "type"})
