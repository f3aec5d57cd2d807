"""The built-in template library over a real `waymark serve`: browse, instantiate (an
ordinary publish, per tenant), and run instantiated templates as they were designed."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from application.callbacks import sign
from tests.e2e.conftest import (
    TENANT_SECRETS,
    Server,
    Target,
    instance,
    is_problem,
    open_bookmark,
    open_tasks,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.template_ids import TEMPLATE_IDS

pytestmark = pytest.mark.e2e


def instantiate(client: httpx.Client, template_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/templates/{template_id}/instantiate", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()


def waiting_only_at(client: httpx.Client, instance_id: str, *node_ids: str) -> dict[str, Any]:
    """The instance once it is suspended with open bookmarks at exactly `node_ids`."""

    def probe() -> dict[str, Any] | None:
        view = instance(client, instance_id)
        at = sorted(b["node_id"] for b in view["bookmarks"])
        return view if view["status"] == "suspended" and at == sorted(node_ids) else None

    return wait_for(probe, what=f"instance {instance_id} waiting at {node_ids}")


# --- browsing -------------------------------------------------------------------------------


def test_list_and_fetch_templates(
    acme: httpx.Client, anonymous: httpx.Client, server: Server
) -> None:
    listed = acme.get("/v1/templates")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["next_cursor"] is None
    assert {t["id"] for t in body["items"]} == TEMPLATE_IDS
    for item in body["items"]:
        assert set(item) == {"id", "name", "description", "category", "parameters"}
        assert all(p["name"] and p["type"] for p in item["parameters"])

    # One template carries its definition document
    fetched = acme.get("/v1/templates/order-fulfilment")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["definition"]["name"] == "order-fulfilment"
    assert fetched.json()["category"] == "commerce"

    # Reading needs a key, any role
    is_problem(anonymous.get("/v1/templates"), 401, "unauthorized")
    with server.client("k-acme-viewer") as viewer:
        assert viewer.get("/v1/templates").status_code == 200
        forbidden = viewer.post("/v1/templates/order-fulfilment/instantiate")
        is_problem(forbidden, 403, "forbidden")
    is_problem(acme.get("/v1/templates/no-such-template"), 404, "not-found")


# --- instantiating --------------------------------------------------------------------------


def test_instantiate_publishes_versions(acme: httpx.Client) -> None:
    # Given a template instantiated under a name of our own
    name = unique("po-approval")
    first = instantiate(acme, "purchase-approval", name=name)
    second = instantiate(acme, "purchase-approval", name=name, new_version=True)

    # Then it is an ordinary definition, versioned like any publish
    assert (first["name"], first["version"], first["enabled"]) == (name, 1, True)
    assert first["document"]["name"] == name and first["created_at"]
    assert second["version"] == 2
    assert acme.get(f"/v1/definitions/{name}").json()["version"] == 2

    # And without a name it takes the template's own, the next version when asked for
    plain = instantiate(acme, "incident-escalation", new_version=True)
    again = acme.post("/v1/templates/incident-escalation/instantiate", json={"new_version": True})
    assert again.status_code == 201, again.text
    assert plain["name"] == again.json()["name"] == "incident-escalation"
    assert again.json()["version"] == plain["version"] + 1


def test_instantiate_never_publishes_over_a_definition_silently(acme: httpx.Client) -> None:
    # Given a definition of the tenant's own under a name
    name = unique("po-approval")
    instantiate(acme, "purchase-approval", name=name)

    # When the template is instantiated under that name again without asking
    refused = acme.post("/v1/templates/purchase-approval/instantiate", json={"name": name})

    # Then it is a 409 naming the definition, and no version was added
    problem = is_problem(refused, 409, "definition-exists")
    assert (problem["definition"], problem["version"]) == (name, 1)
    assert acme.get(f"/v1/definitions/{name}").json()["version"] == 1
    # (no body at all: the template's own name, refused the same way once it exists)
    instantiate(acme, "order-fulfilment", new_version=True)
    is_problem(acme.post("/v1/templates/order-fulfilment/instantiate"), 409, "definition-exists")


def test_instantiate_refusals(acme: httpx.Client) -> None:
    is_problem(acme.post("/v1/templates/no-such-template/instantiate"), 404, "not-found")
    bad_name = acme.post("/v1/templates/order-fulfilment/instantiate", json={"name": "Bad Name"})
    errors = is_problem(bad_name, 422, "invalid-definition")["errors"]
    assert [e["path"] for e in errors] == ["$.name"]
    extra = acme.post("/v1/templates/order-fulfilment/instantiate", json={"nmae": "x"})
    is_problem(extra, 422, "invalid-request")


def test_other_tenant_does_not_see_the_instantiated_definition(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    name = unique("onboarding")
    instantiate(acme, "employee-onboarding", name=name)

    is_problem(globex.get(f"/v1/definitions/{name}"), 404, "not-found")
    listed = globex.get("/v1/definitions", params={"limit": 500}).json()["items"]
    assert name not in {d["name"] for d in listed}
    refused = globex.post("/v1/instances", json={"definition": name, "input": {}})
    is_problem(refused, 404, "not-found")
    # The library itself is the same for every tenant
    assert {t["id"] for t in globex.get("/v1/templates").json()["items"]} == TEMPLATE_IDS


# --- instantiated templates run as designed -------------------------------------------------


def test_employee_onboarding_runs_in_parallel_then_signs_off(acme: httpx.Client) -> None:
    # Given the onboarding template, instantiated and started
    name = instantiate(acme, "employee-onboarding", name=unique("onboarding"))["name"]
    view = start(
        acme,
        name,
        input={"employee_name": "Ada Lovelace", "email": "ada@example.com", "department": "R&D"},
    )

    # Then the IT and equipment branches (noop) finish by themselves, the HR paperwork waits
    waiting_only_at(acme, view["id"], "hr_paperwork")
    [hr] = open_tasks(acme, view["id"])
    assert (hr["kind"], hr["role"]) == ("user_task", "hr")
    assert hr["form"]["required"] == ["start_date", "contract_signed"]

    # When HR submits the form (invalid first), the join passes on to the manager
    invalid = acme.post(f"/v1/tasks/{hr['id']}/complete", json={"data": {"start_date": 1}})
    is_problem(invalid, 422, "invalid-data")
    data = {"start_date": "2026-03-02", "contract_signed": True}
    submitted = acme.post(f"/v1/tasks/{hr['id']}/complete", json={"data": data})
    assert submitted.status_code == 200, submitted.text
    [manager] = open_tasks(acme, view["id"])
    assert (manager["node_id"], manager["role"]) == ("manager_approval", "manager")

    # And the manager's approval completes it with the accounts and the start date
    approved = acme.post(f"/v1/tasks/{manager['id']}/complete", json={"outcome": "approved"})
    assert approved.status_code == 200, approved.text
    done = wait_for_status(acme, view["id"], "completed")
    assert done["output"] == {
        "employee": "Ada Lovelace",
        "username": "ada@example.com",
        "start_date": "2026-03-02",
        "equipment": [{"item": "laptop", "line": 0, "for": "ada@example.com"}],
    }


def test_order_fulfilment_reserves_charges_and_ships_insured(
    acme: httpx.Client, target: Target
) -> None:
    # Given the order template pointed at local inventory, payment and carrier stand-ins
    name = instantiate(acme, "order-fulfilment", name=unique("orders"))["name"]
    base = f"{target.base_url}/{unique('shop')}"
    path = base.removeprefix(target.base_url)
    target.reply(path + "/payments/charges", {"id": "ch-1"})
    target.reply(path + "/shipping/shipments", {"id": "sh-1"})
    order_id = unique("order")
    items = [{"sku": "CHAIR", "qty": 4}]
    urls = {f"{s}_url": f"{base}/{s}" for s in ("inventory", "payments", "shipping")}
    view = start(acme, name, input={"order_id": order_id, "amount": 2500, "items": items, **urls})

    # Then stock is reserved, the amount charged and (>= 1000) an insured shipment booked
    done = wait_for_status(acme, view["id"], "completed", "failed")
    assert done["output"] == {
        "order_id": order_id,
        "amount": 2500,
        "shipping": "insured",
        "charge_id": "ch-1",
        "shipment_id": "sh-1",
    }
    [reserve] = target.received(path + "/inventory/reservations")
    assert (reserve.method, reserve.json()) == ("POST", {"order_id": order_id, "items": items})
    [ship] = target.received(path + "/shipping/shipments")
    assert ship.json()["service"] == "insured"
    # Nothing failed, so nothing was undone
    assert target.received(path + "/payments/refunds") == []


def test_document_signature_resumes_on_a_signed_callback(
    acme: httpx.Client, anonymous: httpx.Client, target: Target
) -> None:
    # Given the signature template, the provider stand-in accepting the envelope
    name = instantiate(acme, "document-signature", name=unique("signature"))["name"]
    provider = f"{target.base_url}/{unique('esign')}"
    document_id = unique("doc")
    view = start(
        acme,
        name,
        input={
            "document_id": document_id,
            "signer_email": "cfo@example.com",
            "esign_url": provider,
        },
    )
    waiting = waiting_only_at(acme, view["id"], "await_signature")
    assert target.received(provider.removeprefix(target.base_url) + "/envelopes")

    # When the provider calls back, signed with the tenant's secret
    token = open_bookmark(waiting, "await_signature")["token"]
    body = json.dumps({"status": "declined", "reason": "wrong amount"}).encode()
    signature = sign(TENANT_SECRETS["acme"], body, int(time.time()), f"/v1/callbacks/{token}")
    called_back = anonymous.post(
        f"/v1/callbacks/{token}",
        content=body,
        headers={"Content-Type": "application/json", "Waymark-Signature": signature},
    )
    assert called_back.status_code == 200, called_back.text

    # Then a declined signature ends the instance failed, saying why
    failed = wait_for_status(acme, view["id"], "failed")
    assert failed["error"]["message"] == "the signer declined to sign"
    assert failed["error"]["output"] == {"document_id": document_id, "reason": "wrong amount"}
