"""Every template of the library, instantiated and run to its end on a real `waymark serve`,
with its side effects checked where they land: the local SMTP server (email), the local
target (http, and Slack, Teams and Twilio stand-ins). Tasks are completed over the API,
events and webhooks are sent as a client would, timers are short through parameters.

One server for the module; one scenario per template (`SCENARIOS`, written in
template_scenarios_people.py and template_scenarios_ops.py), and a check that there is a
scenario for every template the server lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
)
from tests.e2e.template_scenarios_ops import (
    alert_routing,
    change_request,
    daily_report,
    document_review,
    document_signature,
    incident_escalation,
    order_fulfilment,
    refund,
)
from tests.e2e.template_scenarios_people import (
    access_request,
    customer_onboarding,
    employee_onboarding,
    expense_report,
    invoice_approval,
    leave_request,
    purchase_approval,
    vendor_onboarding,
)
from tests.e2e.template_support import (
    Scenario,
    library_server,
    new_run,
)
from tests.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


@pytest.fixture(scope="module")
def server(
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    target: Target,
    smtp: SmtpServer,
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-templates")
    with library_server(module_database_url, workdir, target, smtp) as running:
        yield running


@pytest.fixture(scope="module")
def library(server: Server) -> dict[str, dict[str, Any]]:
    """Every template instantiated once for acme under its own name (document-review starts
    document-signature by name; alert-routing's incident.opened starts incident-escalation)."""
    with server.client("k-acme") as client:
        listed = client.get("/v1/templates")
        assert listed.status_code == 200, listed.text
        published = {}
        for item in listed.json()["items"]:
            response = client.post(
                f"/v1/templates/{item['id']}/instantiate", json={"new_version": True}
            )
            assert response.status_code == 201, response.text
            published[item["id"]] = response.json()
        return published


SCENARIOS: dict[str, Scenario] = {
    "access-request": access_request,
    "alert-routing": alert_routing,
    "change-request": change_request,
    "customer-onboarding": customer_onboarding,
    "daily-report": daily_report,
    "document-review": document_review,
    "document-signature": document_signature,
    "employee-onboarding": employee_onboarding,
    "expense-report": expense_report,
    "incident-escalation": incident_escalation,
    "invoice-approval": invoice_approval,
    "leave-request": leave_request,
    "order-fulfilment": order_fulfilment,
    "purchase-approval": purchase_approval,
    "refund": refund,
    "vendor-onboarding": vendor_onboarding,
}


def test_every_listed_template_has_a_scenario(library: dict[str, dict[str, Any]]) -> None:
    assert set(library) == set(SCENARIOS)
    assert len(SCENARIOS) == 16


@pytest.mark.parametrize("template_id", sorted(SCENARIOS))
def test_template_runs_to_its_end(
    template_id: str,
    library: dict[str, dict[str, Any]],
    acme: httpx.Client,
    target: Target,
    smtp: SmtpServer,
) -> None:
    assert library[template_id]["name"] == template_id
    SCENARIOS[template_id](new_run(acme, target, smtp, template_id))
