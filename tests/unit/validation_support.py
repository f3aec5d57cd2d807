"""Small document builders shared by the validate_document tests (test_validation_*.py)."""

from domain.validation import validate_document


def minimal() -> dict:
    """start (set) -> done (end): the smallest valid document."""
    return {
        "name": "demo",
        "nodes": [
            {"id": "start", "type": "set", "variables": {"x": "1"}},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "start", "to": "done"}],
    }


def with_node(node: dict, *routes: dict, after: str = "start") -> dict:
    """`minimal()` with `node` spliced in between `after` and `done` (unless routes given)."""
    doc = minimal()
    doc["nodes"].insert(1, node)
    doc["routes"] = [{"from": after, "to": node["id"]}]
    doc["routes"] += list(routes) or [{"from": node["id"], "to": "done"}]
    return doc


def found(doc) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in validate_document(doc)]


def assert_only(doc, code: str, path: str) -> None:
    assert found(doc) == [(code, path)]
