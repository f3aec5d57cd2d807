"""Publishing, versioning and validating definitions; the API's own guard rails (auth,
limits, problem+json) over a real `waymark serve`."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import Server, Target, is_problem, publish, purchase_approval, unique

pytestmark = pytest.mark.e2e


def test_publishing_again_creates_the_next_version(acme: httpx.Client, target: Target) -> None:
    # Given the purchase approval of SPEC §2
    name = unique("purchase-approval")
    document = purchase_approval(name, target.base_url)

    # When it is published, then changed and published again
    first = publish(acme, document)
    second = publish(acme, {**document, "description": "Now with a CFO"})

    # Then the versions are 1 and 2, both fetchable, the latest by default
    assert (first["name"], first["version"], first["enabled"]) == (name, 1, True)
    assert second["version"] == 2
    assert first["created_at"] and first["document"]["nodes"] == document["nodes"]
    latest = acme.get(f"/v1/definitions/{name}")
    assert latest.status_code == 200
    assert latest.json()["version"] == 2
    assert latest.json()["document"]["description"] == "Now with a CFO"
    v1 = acme.get(f"/v1/definitions/{name}", params={"version": 1})
    assert v1.status_code == 200
    assert v1.json()["document"]["description"] == "Multi-level PO approval"
    listed = acme.get("/v1/definitions", params={"limit": 500}).json()
    assert [d["version"] for d in listed["items"] if d["name"] == name] == [2]
    assert "next_cursor" in listed
    is_problem(acme.get(f"/v1/definitions/{name}", params={"version": 3}), 404, "not-found")


def broken_definition(name: str) -> dict:
    return {
        "name": name,
        "nodes": [
            {"id": "check", "type": "gateway"},
            {"id": "mystery", "type": "teleport"},
            {"id": "spin_a", "type": "set", "variables": {"n": "1"}},
            {"id": "spin_b", "type": "set", "variables": {"m": "2"}},
            {"id": "orphan", "type": "set", "variables": {"z": "3"}},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "check", "to": "spin_a"},
            {"from": "check", "to": "mystery"},
            {"from": "mystery", "to": "ghost"},
            {"from": "spin_a", "to": "spin_b", "condition": "vars.n >"},
            {"from": "spin_b", "to": "spin_a"},
            {"from": "orphan", "to": "done"},
        ],
    }


EXPECTED_PROBLEMS = {
    ("$.nodes[1].type", "unknown_node_type"),  # unknown node type
    ("$.routes[2].to", "unknown_route_target"),  # route to a missing node
    ("$.nodes[4]", "unreachable_node"),  # nothing leads to 'orphan'
    ("$.nodes[0]", "gateway_without_default"),  # gateway: no default, no conditions
    ("$.routes[3].condition", "invalid_expression"),  # unparsable expression
    ("$.nodes[2]", "no_path_to_end"),  # spin_a <-> spin_b never ends
    ("$.nodes[3]", "no_path_to_end"),
}


def test_an_invalid_definition_is_refused_with_every_problem(acme: httpx.Client) -> None:
    name = unique("broken")

    response = acme.post("/v1/definitions", json=broken_definition(name))

    body = is_problem(response, 422, "invalid-definition")
    found = {(e["path"], e["code"]) for e in body["errors"]}
    assert found >= EXPECTED_PROBLEMS, found
    assert all(e["message"] for e in body["errors"])
    is_problem(acme.get(f"/v1/definitions/{name}"), 404, "not-found")


def test_validate_lists_the_problems_without_publishing(acme: httpx.Client) -> None:
    name = unique("broken")

    response = acme.post("/v1/definitions/validate", json=broken_definition(name))

    assert response.status_code == 200, response.text
    assert response.json()["valid"] is False
    found = {(e["path"], e["code"]) for e in response.json()["errors"]}
    assert found >= EXPECTED_PROBLEMS
    valid = acme.post("/v1/definitions/validate", json=purchase_approval(name, "http://x"))
    assert valid.json() == {"valid": True, "errors": []}
    is_problem(acme.get(f"/v1/definitions/{name}"), 404, "not-found")


def test_an_unknown_top_level_field_is_refused(acme: httpx.Client, target: Target) -> None:
    document = {**purchase_approval(unique("typo"), target.base_url), "colour": "blue"}

    body = is_problem(acme.post("/v1/definitions", json=document), 422, "invalid-definition")

    assert [(e["path"], e["code"]) for e in body["errors"]] == [("$.colour", "unknown_field")]


def test_bodies_over_the_limit_are_refused(acme: httpx.Client) -> None:
    # The server runs with WAYMARK_MAX_BODY_BYTES=65536.
    huge = {"name": unique("huge"), "description": "x" * 70_000, "nodes": []}

    declared = acme.post("/v1/definitions", json=huge)
    is_problem(declared, 413, "payload-too-large")

    def chunks():  # no Content-Length: the body is streamed and counted
        data = json.dumps(huge).encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    streamed = acme.post(
        "/v1/definitions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    is_problem(streamed, 413, "payload-too-large")


def test_malformed_json_is_a_problem(acme: httpx.Client) -> None:
    response = acme.post(
        "/v1/definitions", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    is_problem(response, 400, "invalid-json")


def test_requests_need_a_known_key_and_the_right_role(server: Server) -> None:
    with server.client(None) as anonymous:
        missing = anonymous.get("/v1/definitions")
    body = is_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "Traceback" not in json.dumps(body)
    with server.client("not-a-key") as stranger:
        is_problem(stranger.get("/v1/definitions"), 401, "unauthorized")
    with server.client("k-acme-viewer") as viewer:
        assert viewer.get("/v1/definitions").status_code == 200
        refused = viewer.post("/v1/definitions", json={"name": unique("nope")})
        is_problem(refused, 403, "forbidden")


def test_unknown_routes_are_problems_too(acme: httpx.Client) -> None:
    is_problem(acme.get("/v1/nothing-here"), 404, "not-found")
    is_problem(acme.delete("/v1/definitions"), 405, "method-not-allowed")


def test_health_and_docs_need_no_key(anonymous: httpx.Client) -> None:
    ready = anonymous.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    database = body["components"]["database"]
    assert (database["status"], database["description"]) == ("up", "the database answers")
    assert database["duration_ms"] >= 0
    assert anonymous.get("/health/live").json() == {"status": "ok"}
    full = anonymous.get("/health")
    assert full.status_code == 200
    workers = full.json()["components"]["workers"]["workers"]
    assert set(workers) == {"task-worker", "timer-worker", "scheduler"}
    assert all(w["status"] == "up" and w["consecutive_failures"] == 0 for w in workers.values())
    assert anonymous.get("/docs").status_code == 200
    assert "/v1/instances" in anonymous.get("/openapi.json").json()["paths"]
    # The OpenAPI document declares the bearer scheme, so /docs can send a key.
    spec = anonymous.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in spec["paths"]["/v1/instances"]["post"]["security"]
    assert "security" not in spec["paths"]["/v1/callbacks/{token}"]["post"]


def test_a_schedule_that_cannot_run_is_refused_at_its_json_path(acme: httpx.Client) -> None:
    document = {
        "name": unique("cron"),
        "nodes": [{"id": "done", "type": "end"}],
        "triggers": [
            {"type": "schedule", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"},
            {"type": "schedule", "cron": "0 0 30 2 *"},
            {"type": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Atlantis"},
        ],
    }

    body = is_problem(acme.post("/v1/definitions", json=document), 422, "invalid-definition")

    found = {(e["path"], e["code"]) for e in body["errors"]}
    assert found == {
        ("$.triggers[1].cron", "invalid_value"),
        ("$.triggers[2].timezone", "invalid_value"),
    }
