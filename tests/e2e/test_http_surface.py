"""Small HTTP courtesies: `/` leads to the docs, health probes answer HEAD, a 405 lists every
method the path serves, `waymark --version`, pagination cursors are signed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, Server, is_problem, publish, unique

pytestmark = pytest.mark.e2e


def test_the_root_redirects_to_the_docs(anonymous: httpx.Client) -> None:
    response = anonymous.get("/", follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
def test_health_probes_answer_head(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.head(path)

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/definitions", "GET, POST"),
        ("PUT", "/health/live", "GET, HEAD"),
        ("GET", "/v1/definitions/x/enable", "POST"),
    ],
)
def test_a_405_lists_every_method_of_the_path(
    server: Server, method: str, path: str, allow: str
) -> None:
    with server.client("k-acme") as client:
        response = client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"].startswith("application/problem+json")


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "api.cli", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0
    assert result.stdout.strip() == f"waymark {version('waymark')}" == "waymark 0.1.0"


def test_a_hand_made_cursor_is_refused_and_a_served_one_works(acme: httpx.Client) -> None:
    for _ in range(2):
        publish(acme, {"name": unique("page"), "nodes": [{"id": "e", "type": "end"}]})
    first = acme.get("/v1/definitions", params={"limit": 1})
    assert first.status_code == 200, first.text
    served = first.json()["next_cursor"]
    # Well-formed but unsigned: base64url JSON, the shape cursors had before signing.
    hand_made = base64.urlsafe_b64encode(json.dumps(["definitions", ""]).encode()).decode()

    assert acme.get("/v1/definitions", params={"limit": 1, "cursor": served}).status_code == 200
    refused = acme.get("/v1/definitions", params={"cursor": hand_made.rstrip("=")})
    is_problem(refused, 400, "invalid-cursor")
