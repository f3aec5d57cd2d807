"""The audit log, rate limits, security headers and CORS over a real `waymark serve`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    _free_port,
    is_problem,
    publish,
    server_env,
    serving,
    start,
    terminate,
    unique,
    wait_for,
    waymark,
)

pytestmark = pytest.mark.e2e

UA = "audit-test/1.0"


def waiting(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
        "routes": [{"from": "wait", "to": "done"}],
    }


def audit(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_administrative_act_is_audited_with_who_when_what_and_from_where(
    server: Server,
) -> None:
    name = unique("audited")
    with server.client("k-acme") as acme:
        acme.headers["User-Agent"] = UA
        publish(acme, waiting(name))
        assert acme.post(f"/v1/definitions/{name}/disable").status_code == 200
        assert acme.post(f"/v1/definitions/{name}/enable").status_code == 200
        copy = unique("template-copy")
        response = acme.post("/v1/templates/purchase-approval/instantiate", json={"name": copy})
        assert response.status_code == 201, response.text
        instance_id = start(acme, name)["id"]
        cancelled = acme.post(f"/v1/instances/{instance_id}/cancel", json={"reason": "test"})
        assert cancelled.status_code == 200, cancelled.text
        # Reads and refused acts leave no entry.
        assert acme.get(f"/v1/definitions/{name}").status_code == 200
        assert acme.post("/v1/definitions/nope-missing/disable").status_code == 404

        mine = [
            e
            for e in audit(acme, limit=500)["items"]
            if e["target"] in {f"definition:{name}", f"definition:{copy}"}
            or e["target"] == f"instance:{instance_id}"
        ]
        # Newest first.
        assert [e["action"] for e in mine] == [
            "instance.cancelled",
            "template.instantiated",
            "definition.enabled",
            "definition.disabled",
            "definition.published",
        ]
        for entry in mine:
            assert entry["tenant"] == "acme"
            assert entry["actor"].startswith("key:")
            assert entry["client_ip"] == "127.0.0.1"
            assert entry["user_agent"] == UA
            assert entry["recorded_at"]
        assert mine[-1]["details"] == {"version": 1}
        assert mine[1]["details"] == {"template": "purchase-approval", "version": 1}
        assert mine[0]["details"] == {"reason": "test"}

        # Filters and pages.
        only = audit(acme, action="definition.disabled", target=f"definition:{name}")
        assert [e["action"] for e in only["items"]] == ["definition.disabled"]
        first = audit(acme, limit=2)
        assert len(first["items"]) == 2 and first["next_cursor"]
        second = audit(acme, limit=2, cursor=first["next_cursor"])
        assert {e["id"] for e in second["items"]}.isdisjoint({e["id"] for e in first["items"]})
        assert max(e["id"] for e in second["items"]) < min(e["id"] for e in first["items"])
        is_problem(acme.get("/v1/audit", params={"cursor": "forged"}), 400, "invalid-cursor")

    # Tenant-scoped: globex sees none of acme's acts; a viewer may not read the log.
    with server.client("k-globex") as globex:
        targets = {e["target"] for e in audit(globex, limit=500)["items"]}
        assert f"definition:{name}" not in targets
    with server.client("k-acme-viewer") as viewer:
        is_problem(viewer.get("/v1/audit"), 403, "forbidden")


def test_security_headers_on_answers_and_problems_and_no_cors_by_default(server: Server) -> None:
    with server.client("k-acme") as acme:
        for response in (
            acme.get("/v1/definitions"),
            acme.get("/v1/definitions/no-such-definition"),
            acme.get("/health/live"),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert "strict-transport-security" not in response.headers
        cross = acme.get("/v1/definitions", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in cross.headers


@pytest.fixture(scope="module")
def limited(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-limited")
    env = server_env(
        module_database_url,
        workdir,
        WAYMARK_RATE_LIMIT_PER_KEY="4/minute",
        WAYMARK_RATE_LIMIT_PER_IP="7/minute",
        WAYMARK_HSTS_MAX_AGE="31536000",
        WAYMARK_CORS_ORIGINS="https://app.example",
        WAYMARK_RUN_WORKERS_IN_PROCESS="false",
    )
    with serving(env, workdir) as running:
        yield running


def test_rate_limits_per_key_then_per_ip_answer_429_with_retry_after(limited: Server) -> None:
    with limited.client("k-acme") as acme, limited.client("k-globex") as globex:
        for _ in range(4):
            assert acme.get("/v1/definitions").status_code == 200
        refused = acme.get("/v1/definitions")
        body = is_problem(refused, 429, "rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert body["retry_after"] == int(refused.headers["retry-after"])
        assert refused.headers["x-frame-options"] == "DENY"
        # Another key from the same address has its own budget, until the address's runs out
        # (the 4 accepted acme requests count towards it; the refused one stopped at its key).
        for _ in range(3):
            assert globex.get("/v1/definitions").status_code == 200
        is_problem(globex.get("/v1/definitions"), 429, "rate-limited")
        # Probes are never limited.
        assert acme.get("/health/live").status_code == 200


def test_hsts_and_cors_when_configured(limited: Server) -> None:
    with httpx.Client(base_url=limited.base_url) as client:
        live = client.get("/health/live", headers={"Origin": "https://app.example"})
        assert live.headers["strict-transport-security"] == "max-age=31536000"
        assert live.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/health/live",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_waymark_serve_speaks_tls_with_the_given_certificate(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("waymark-tls")
    key, cert = workdir / "tls.key", workdir / "tls.crt"
    subprocess.run(  # noqa: S603
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",  # noqa: S607
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    env = server_env(module_database_url, workdir, WAYMARK_RUN_WORKERS_IN_PROCESS="false")
    args = ("serve", "--port", str(port), "--ssl-keyfile", str(key), "--ssl-certfile", str(cert))
    process = waymark(*args, env=env, log=workdir / "server.log")
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(cert)) as client:

            def ready() -> httpx.Response | None:
                assert process.poll() is None, (workdir / "server.log").read_text()[-3000:]
                try:
                    return client.get("/health/live")
                except httpx.TransportError:
                    return None

            response = wait_for(ready, timeout=60, what="the HTTPS server")
            assert response.status_code == 200
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
    finally:
        terminate(process)
