"""Small workflow documents the benchmarks start, as builders taking the definition's name:
the integration tests publish the same shapes under their own names."""

from __future__ import annotations

from typing import Any


def noop_call(node_id: str) -> dict[str, Any]:
    """A service task running the no-op action."""
    return {"id": node_id, "type": "service_task", "action": {"type": "noop"}}


def service_flow(name: str) -> dict[str, Any]:
    """One no-op service task `call`, then the end."""
    return {
        "name": name,
        "nodes": [noop_call("call"), {"id": "done", "type": "end"}],
        "routes": [{"from": "call", "to": "done"}],
    }


def approval_flow(name: str) -> dict[str, Any]:
    """An approval for role boss: approved completes, rejected ends failed."""
    return {
        "name": name,
        "nodes": [
            {"id": "approve", "type": "approval", "approver_role": "boss"},
            {"id": "no", "type": "end", "status": "failed"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "approve", "to": "done", "outcome": "approved"},
            {"from": "approve", "to": "no", "outcome": "rejected"},
        ],
    }


def three_noops(name: str) -> dict[str, Any]:
    """Three no-op service tasks s1, s2, s3 in a row, then the end."""
    steps = ("s1", "s2", "s3")
    return {
        "name": name,
        "nodes": [*(noop_call(s) for s in steps), {"id": "done", "type": "end"}],
        "routes": [{"from": a, "to": b} for a, b in zip(steps, (*steps[1:], "done"), strict=True)],
    }
