"""People and permissions over HTTP against a real `waymark serve` configured with a local
OIDC issuer (JWKS over HTTP): ann claims, mallory cannot complete; four eyes refuses the
earlier approver and the starter; an admin override and a service key acting on behalf of a
person are recorded in the history; the roles of keys are enforced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import jwks_server
from tests.e2e.conftest import (
    API_KEYS,
    Server,
    is_problem,
    open_tasks,
    publish,
    server_env,
    serving,
    unique,
)
from tests.jwks_server import AUDIENCE, ISSUER, Issuer, rsa_key

pytestmark = pytest.mark.e2e

KEYS = f"{API_KEYS},k-svc=acme:operator|impersonate,k-ops=acme:operator,k-design=acme:designer"
MANAGER = ["operator", "manager"]


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with jwks_server.serving(Issuer([rsa_key("k1")])) as running:
        yield running


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-authz")
    env = server_env(
        module_database_url,
        workdir,
        WAYMARK_API_KEYS=KEYS,
        WAYMARK_OIDC_ISSUER=ISSUER,
        WAYMARK_OIDC_AUDIENCE=AUDIENCE,
        WAYMARK_OIDC_JWKS_URL=issuer.jwks_url,
        WAYMARK_EGRESS_ALLOW="127.0.0.1,localhost",
    )
    with serving(env, workdir) as running:
        yield running


@pytest.fixture(scope="module")
def people(server: Server, issuer: Issuer) -> Iterator[dict[str, httpx.Client]]:
    def person(user: str, roles: list[str]) -> httpx.Client:
        return server.client(issuer.token(sub=user, roles=roles))

    clients = {
        "ann": person("ann", MANAGER),
        "mallory": person("mallory", MANAGER),
        "eve": person("eve", ["operator"]),
        "sam": person("sam", MANAGER),
        "admin": server.client("k-acme"),
        "svc": server.client("k-svc"),
        "ops": server.client("k-ops"),
        "design": server.client("k-design"),
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def four_eyes(people: dict[str, httpx.Client]) -> str:
    name = unique("four-eyes")
    end = {"id": "done", "type": "end"}
    no = {"id": "no", "type": "end", "status": "failed", "error": "rejected"}
    document = {
        "name": name,
        "nodes": [
            {"id": "manager_approval", "type": "approval", "approver_role": "manager"},
            {
                "id": "second_approval",
                "type": "approval",
                "approver_role": "manager",
                "distinct_from": ["manager_approval", "$starter"],
            },
            end,
            no,
        ],
        "routes": [
            {"from": "manager_approval", "to": "second_approval", "outcome": "approved"},
            {"from": "second_approval", "to": "done", "outcome": "approved"},
            {"from": "manager_approval", "to": "no", "outcome": "rejected"},
            {"from": "second_approval", "to": "no", "outcome": "rejected"},
        ],
    }
    # Publishing is for designers (and admins), not operators.
    is_problem(people["ops"].post("/v1/definitions", json=document), 403, "forbidden")
    publish(people["design"], document)
    return name


def start_as_sam(people: dict[str, httpx.Client], definition: str) -> str:
    started = people["svc"].post(
        "/v1/instances",
        json={"definition": definition, "input": {}},
        headers={"Waymark-On-Behalf-Of": "sam"},
    )
    assert started.status_code == 201, started.text
    assert started.json()["started_by"]["user"] == "sam"
    return str(started.json()["id"])


def task_of(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    [task] = open_tasks(client, instance_id)
    return task


def events(client: httpx.Client, instance_id: str, kind: str) -> list[dict[str, Any]]:
    history = client.get(f"/v1/instances/{instance_id}/history", params={"limit": 500})
    assert history.status_code == 200, history.text
    return [e["data"] for e in history.json()["items"] if e["type"].endswith(kind)]


def complete(client: httpx.Client, task_id: str) -> httpx.Response:
    return client.post(f"/v1/tasks/{task_id}/complete", json={"outcome": "approved"})


def test_ann_claims_mallory_cannot_complete_and_four_eyes_holds(
    people: dict[str, httpx.Client], four_eyes: str
) -> None:
    instance_id = start_as_sam(people, four_eyes)
    ann, mallory = people["ann"], people["mallory"]
    first = task_of(ann, instance_id)

    # eve holds no candidate role: no claim
    is_problem(people["eve"].post(f"/v1/tasks/{first['id']}/claim"), 403, "task-forbidden")
    claimed = ann.post(f"/v1/tasks/{first['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    # mallory, a manager too, cannot complete ann's task
    refused = is_problem(complete(mallory, first["id"]), 409, "task-claimed-by-another")
    assert refused["claimed_by"] == "ann"
    assert complete(ann, first["id"]).status_code == 200
    done = ann.get(f"/v1/tasks/{first['id']}").json()
    assert (done["status"], done["completed_by"]) == ("completed", "ann")

    # the second approval: not ann (approved the first), not sam (started it)
    second = task_of(ann, instance_id)
    sod = is_problem(complete(ann, second["id"]), 403, "separation-of-duties")
    assert sod["conflicts"] == ["approver of manager_approval"]
    is_problem(people["sam"].post(f"/v1/tasks/{second['id']}/claim"), 403, "separation-of-duties")
    assert complete(mallory, second["id"]).status_code == 200

    completed = events(ann, instance_id, "TaskCompleted")
    assert [(e["completed_by"], e["actor"]) for e in completed] == [
        ("ann", {"kind": "user", "id": "ann"}),
        ("mallory", {"kind": "user", "id": "mallory"}),
    ]
    assert ann.get(f"/v1/instances/{instance_id}").json()["status"] == "completed"


def test_an_admin_override_is_recorded_in_the_history(
    people: dict[str, httpx.Client], four_eyes: str
) -> None:
    instance_id = start_as_sam(people, four_eyes)
    task = task_of(people["ann"], instance_id)
    assert people["ann"].post(f"/v1/tasks/{task['id']}/claim").status_code == 200
    overridden = complete(people["admin"], task["id"])
    assert overridden.status_code == 200, overridden.text
    [event] = events(people["admin"], instance_id, "TaskCompleted")
    assert event["actor"]["override"] == "admin"
    assert event["actor"]["kind"] == "key"
    assert event["completed_by"] == event["actor"]["id"]  # the key's name, not a person


def test_a_service_key_acting_for_a_person_is_recorded_with_the_key(
    people: dict[str, httpx.Client], four_eyes: str, issuer: Issuer
) -> None:
    instance_id = start_as_sam(people, four_eyes)
    task = task_of(people["ann"], instance_id)
    # k-svc has only the operator role: acting for ann, it is no manager, so it may not
    as_ann = {"Waymark-On-Behalf-Of": "ann"}
    refused = people["svc"].post(f"/v1/tasks/{task['id']}/claim", headers=as_ann)
    is_problem(refused, 403, "task-forbidden")
    # a delegation by an admin to ann makes her the assignee: now the key may act for her
    delegated = people["admin"].post(f"/v1/tasks/{task['id']}/delegate", json={"assignee": "ann"})
    assert delegated.status_code == 200, delegated.text
    done = people["svc"].post(
        f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"}, headers=as_ann
    )
    assert done.status_code == 200, done.text
    [delegation] = events(people["admin"], instance_id, "TaskDelegated")
    assert delegation["assignee"] == "ann" and delegation["actor"]["kind"] == "key"
    [event] = events(people["admin"], instance_id, "TaskCompleted")
    assert event["completed_by"] == "ann"
    assert event["actor"]["kind"] == "user" and event["actor"]["id"] == "ann"
    assert event["actor"]["via_key"].startswith("key-")
    # a key without `impersonate` may not send the header
    plain = people["ops"].get("/v1/tasks", headers=as_ann)
    is_problem(plain, 403, "forbidden")


def test_bad_tokens_are_401_problems(server: Server, issuer: Issuer) -> None:
    import time

    expired = issuer.token(sub="ann", exp=int(time.time()) - 3600)
    wrong_aud = issuer.token(sub="ann", aud="someone-else")
    for token, reason in ((expired, "expired"), (wrong_aud, "audience")):
        with server.client(token) as client:
            body = is_problem(client.get("/v1/tasks"), 401, "unauthorized")
            assert reason in body["detail"]
