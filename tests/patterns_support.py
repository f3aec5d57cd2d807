"""Node and route documents the workflow-pattern tests share, unit (through the engine) and
e2e (published over HTTP) alike."""

from __future__ import annotations

from typing import Any


def task(node_id: str, **extra: Any) -> dict[str, Any]:
    """A user task for role clerk."""
    return {"id": node_id, "type": "user_task", "role": "clerk", **extra}


def wait(node_id: str) -> dict[str, Any]:
    """A wait node resumed by event `<node_id>.done`."""
    return {"id": node_id, "type": "wait", "event": f"{node_id}.done"}


def routes(*parts: str | dict[str, Any]) -> list[dict[str, Any]]:
    """Route documents in the order given: a string holds routes `from>to` (or
    `from>to:outcome`, a route taken on that outcome) separated by white space; a dict is
    one route as it stands (a condition, a default, ...).

    `routes("fork>a fork>b", {"from": "a", "to": "b", "default": True}, "ask>done:approved")`
    """
    built: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, dict):
            built.append(part)
            continue
        for arrow in part.split():
            source, _, target = arrow.partition(">")
            target, colon, outcome = target.partition(":")
            assert source and target, f"not a route: {arrow!r}"
            route: dict[str, Any] = {"from": source, "to": target}
            if colon:
                route["outcome"] = outcome
            built.append(route)
    return built


def skipping_gateway() -> list[dict[str, Any]]:
    """Nodes of a branch that may skip its join: gateway `check` and branch end `skip`."""
    return [{"id": "check", "type": "gateway"}, {"id": "skip", "type": "end", "terminate": False}]


def skipping_routes(join: str) -> list[dict[str, Any]]:
    """`check` goes on to `join` when input.go, else to `skip` (the join never hears of it)."""
    return [
        {"from": "check", "to": join, "condition": "input.go"},
        {"from": "check", "to": "skip", "default": True},
    ]
