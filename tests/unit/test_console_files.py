"""The console's files and the two routes it adds: served public with a strict CSP, shipped
in the package, built without HTML parsing; `GET /v1/whoami` reports the caller."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from api.routes.console import ASSETS, STATIC
from tests.api_stub import AsgiClient, stub_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client() -> AsgiClient:
    return AsgiClient(stub_app())


def test_the_page_and_its_files_are_served_without_a_key_under_a_csp(client: AsgiClient) -> None:
    for path in ("/console", "/console/"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"  # the API's headers too
    for name in ASSETS:
        assert client.get(f"/console/{name}").status_code == 200, name
    head = client.request("HEAD", "/console/app.js")
    assert head.status_code == 200 and head.text == ""


def test_nothing_but_the_console_files_is_served(client: AsgiClient) -> None:
    for path in ("/console/missing.js", "/console/..%2F__init__.py", "/console/%2e%2e"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    assert "__init__.py" not in ASSETS  # negative control: the file exists beside static/
    assert (STATIC.parent / "__init__.py").exists()


def test_every_console_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.console"]
    files = [p for p in STATIC.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    for path in files:
        relative = path.relative_to(STATIC.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_the_console_never_parses_data_as_html() -> None:
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for path in STATIC.glob("*.js"):
        assert not sinks.search(path.read_text()), path.name
    page = (STATIC / "index.html").read_text()
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))  # no inline script
    assert not re.search(r"\son[a-z]+=", page)  # no inline handlers (the CSP would block them)


def test_whoami_reports_the_callers_tenant_and_roles(client: AsgiClient) -> None:
    answer = client.get("/v1/whoami", headers={"Authorization": "Bearer k-viewer"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenant": "acme",
        "roles": ["viewer"],
        "kind": "key",
        "name": "key-viewer",
        "user": None,
    }
    refused = client.get("/v1/whoami", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the API key is not valid"
    assert client.get("/v1/whoami").status_code == 401
