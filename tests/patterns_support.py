"""Node documents the workflow-pattern tests share, unit (through the engine) and e2e
(published over HTTP) alike."""

from __future__ import annotations

from typing import Any


def task(node_id: str, **extra: Any) -> dict[str, Any]:
    """A user task for role clerk."""
    return {"id": node_id, "type": "user_task", "role": "clerk", **extra}


def wait(node_id: str) -> dict[str, Any]:
    """A wait node resumed by event `<node_id>.done`."""
    return {"id": node_id, "type": "wait", "event": f"{node_id}.done"}
