"""Issue 5, item 1 over HTTP: one tenant's large command never stalls another tenant's writes.

A 900 KB input used to hang `insert_events` for ever while it held the events table's
lock (psycopg's pipeline, see docs/upstream/psycopg-pipeline-large-composite.md). Now:
with the default storage limits it is refused with 413 before the database is touched;
with limits raised it is stored, and writes of other tenants go on meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, is_problem, publish, server_env, serving, start, unique

pytestmark = pytest.mark.e2e

BIG = 900_000
BODY_LIMIT = str(4 * 1_048_576)


def _flow(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "mark", "type": "set", "variables": {"seen": "true"}},
            {"id": "done", "type": "end", "output": {"seen": "vars.seen"}},
        ],
        "routes": [{"from": "mark", "to": "done"}],
    }


def _big_input() -> dict[str, str]:
    return {"blob": "x" * BIG}


@pytest.fixture(scope="module")
def roomy_server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Storage limits raised, so a 900 KB command really reaches the database."""
    workdir: Path = tmp_path_factory.mktemp("waymark-e2e-large")
    env = server_env(
        module_database_url,
        workdir,
        WAYMARK_MAX_BODY_BYTES=BODY_LIMIT,
        WAYMARK_MAX_EVENT_BYTES=str(8 * 1_048_576),
        WAYMARK_MAX_COMMAND_BYTES=str(16 * 1_048_576),
    )
    with serving(env, workdir) as running:
        yield running


@pytest.fixture(scope="module")
def default_limits_server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The default storage limits; only the body limit is raised past the input's size."""
    workdir: Path = tmp_path_factory.mktemp("waymark-e2e-default-limits")
    env = server_env(module_database_url, workdir, WAYMARK_MAX_BODY_BYTES=BODY_LIMIT)
    with serving(env, workdir) as running:
        yield running


def test_another_tenants_write_succeeds_while_a_900_kb_command_is_in_flight(
    roomy_server: Server,
) -> None:
    big_flow, small_flow = unique("big"), unique("small")
    with roomy_server.client("k-acme") as acme, roomy_server.client("k-globex") as globex:
        publish(acme, _flow(big_flow))
        publish(globex, _flow(small_flow))
        for _ in range(3):  # the hang was seen 6 times out of 6
            answers: list[httpx.Response] = []
            posted = threading.Event()

            def post_big() -> None:
                with roomy_server.client("k-acme") as client:
                    posted.set()
                    body = {"definition": big_flow, "input": _big_input()}
                    answers.append(client.post("/v1/instances", json=body))

            sender = threading.Thread(target=post_big, daemon=True)
            sender.start()
            assert posted.wait(5)
            t0 = time.monotonic()
            small = globex.post(
                "/v1/instances", json={"definition": small_flow, "input": {}}, timeout=2.0
            )
            assert small.status_code == 201, small.text
            assert time.monotonic() - t0 < 2
            sender.join(30)
            assert not sender.is_alive(), "the 900 KB command never answered"
            assert answers[0].status_code == 201, answers[0].text[:500]
            big = answers[0].json()
            assert big["status"] == "completed"
            assert len(big["input"]["blob"]) == BIG


def test_a_900_kb_command_is_refused_with_413_naming_the_limit(
    default_limits_server: Server,
) -> None:
    flow = unique("big")
    with default_limits_server.client("k-acme") as acme:
        publish(acme, _flow(flow))
        key = unique("key")
        answer = acme.post(
            "/v1/instances",
            json={"definition": flow, "input": _big_input(), "idempotency_key": key},
        )
        problem = is_problem(answer, 413, "command-too-large")
        assert problem["limit"] == "WAYMARK_MAX_EVENT_BYTES"
        assert problem["maximum"] == 262_144 and problem["size"] > BIG
        assert "WAYMARK_MAX_EVENT_BYTES" in problem["detail"]
        # Nothing was stored: the same key starts a small instance afterwards.
        listed = acme.get("/v1/instances", params={"definition": flow})
        assert listed.status_code == 200 and listed.json()["items"] == []
        small = start(acme, flow, input={}, idempotency_key=key)
        assert small["status"] == "completed"
