"""Every template of the library, instantiated and run to its end on a real `waymark serve`,
with its side effects checked where they land: the local SMTP server (email), the local
target (http, and Slack, Teams and Twilio stand-ins). Tasks are completed over the API,
events and webhooks are sent as a client would, timers are short through parameters.

One server for the module; one scenario per template (`SCENARIOS`), and a check that there
is a scenario for every template the server lists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    TENANT_SECRETS,
    Server,
    Target,
    instance,
    open_bookmark,
    post_signed,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.template_support import (
    SLACK_ALERTS_HOOK,
    SLACK_REPLY,
    SLACK_TOKEN,
    TEAMS_HOOK,
    Run,
    Scenario,
    library_server,
    new_run,
    sms_form,
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


def completed(run: Run, instance_id: str) -> dict[str, Any]:
    view = wait_for_status(run.client, instance_id, "completed", "failed", timeout=30)
    assert view["status"] == "completed", view
    return view


# --- approvals -------------------------------------------------------------------------------


def purchase_approval(run: Run) -> None:
    po = unique("po")
    view = start(
        run.client, "purchase-approval", input={"amount": 25000, "po_id": po, "erp_url": run.sink}
    )
    run.complete(view["id"], "manager_approval", outcome="approved")
    run.complete(view["id"], "cfo_approval", outcome="approved")  # above 10,000
    assert completed(run, view["id"])["output"] == {"po_id": po, "amount": 25000}
    assert run.call(f"/po/{po}/approved").json() == {"po_id": po, "amount": 25000}


def expense_report(run: Run) -> None:
    report = unique("exp")
    view = start(
        run.client,
        "expense-report",
        input={
            "report_id": report,
            "employee_email": "emp@acme.example",
            "amount": 250,
            "manager_email": "boss@acme.example",
            "payroll_url": run.sink,
        },
    )
    # The manager is mailed a link to the task (notify.created)
    task = run.task(view["id"], "manager_approval")
    ask = run.mail(f"Expense report {report} waits")
    assert ask.recipients == ["boss@acme.example"]
    text = ask.message.get_body(("plain",)).get_content()
    assert f"/v1/tasks/{task['id']}" in text
    # ... and signed approve/reject links: the manager approves with no API key.
    approve = re.search(r"Approve: (\S+)", text)
    assert approve and re.search(r"Reject: /v1/task-links/\S+", text), text
    decided = httpx.post(str(run.client.base_url) + approve.group(1), timeout=30)
    assert decided.status_code == 200, decided.text
    done = completed(run, view["id"])
    assert done["output"]["report_id"] == report
    assert done["output"]["approved_by"] == "link:manager"
    assert run.call("/reimbursements").json()["amount"] == 250
    assert run.mail(f"Expense report {report} approved").recipients == ["emp@acme.example"]

    # A small report is approved without a manager
    small = unique("exp")
    view = start(
        run.client,
        "expense-report",
        input={
            "report_id": small,
            "employee_email": "e@acme.example",
            "amount": 40,
            "payroll_url": run.sink,
        },
    )
    assert completed(run, view["id"])["output"]["approved_by"] == "auto"
    run.mail(f"Expense report {small} approved")


def leave_request(run: Run) -> None:
    request = unique("leave")
    starts_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    view = start(
        run.client,
        "leave-request",
        input={
            "request_id": request,
            "employee_email": "emp@acme.example",
            "starts_at": starts_at,
            "days": 3,
            "hr_url": run.sink,
        },
    )
    run.complete(view["id"], "manager_approval", outcome="approved")
    done = completed(run, view["id"])  # the timer until the first day fired
    assert done["output"]["request_id"] == request
    assert done["output"]["started_at"] >= starts_at
    assert run.call("/absences").json()["kind"] == "vacation"
    run.mail(f"Leave request {request} approved")


def invoice_approval(run: Run) -> None:
    invoice = unique("inv")
    run.target.reply(run.sink_path + "/invoices/", {"matched": False, "difference": 12.5})
    view = start(
        run.client,
        "invoice-approval",
        input={"invoice_id": invoice, "vendor": "Initech", "amount": 1200, "erp_url": run.sink},
    )
    # Not matched: accounts payable decides
    run.complete(view["id"], "ap_approval", outcome="approved")
    done = completed(run, view["id"])
    assert done["output"]["matched"] is False
    assert run.call("/payments").json() == {
        "invoice_id": invoice,
        "vendor": "Initech",
        "amount": 1200,
    }
    card = wait_for(
        lambda: [r for r in run.target.received(TEAMS_HOOK) if invoice in r.body.decode()]
    )
    assert card[0].json()["title"] == f"Invoice {invoice} scheduled for payment"

    # Matched (the ERP's answer says so) and under the limit: paid without a task
    matched = unique("inv")
    sink = run.sink + "/matched"
    run.target.reply(sink.removeprefix(run.target.base_url) + "/invoices/", {"matched": True})
    view = start(
        run.client,
        "invoice-approval",
        input={"invoice_id": matched, "vendor": "Initech", "amount": 300, "erp_url": sink},
    )
    assert completed(run, view["id"])["output"]["matched"] is True
    assert run.call("/matched/payments").json()["invoice_id"] == matched


def access_request(run: Run) -> None:
    request = unique("acc")
    view = start(
        run.client,
        "access-request",
        input={
            "request_id": request,
            "requester": "ann",
            "requester_phone": "+15557654321",
            "system": "billing",
            "owner": "olga",
            "level": "admin",
            "iam_url": run.sink,
        },
    )
    assert run.task(view["id"], "owner_approval")["assignee"] == "olga"
    run.complete(view["id"], "owner_approval", outcome="approved")
    run.complete(view["id"], "security_approval", outcome="approved")  # admin access
    done = completed(run, view["id"])
    assert done["output"] == {"request_id": request, "system": "billing", "level": "admin"}
    assert run.call("/grants").json()["user"] == "ann"
    sms = wait_for(
        lambda: [r for r in run.target.received("/twilio/") if request in sms_form(r)["Body"]]
    )
    assert sms_form(sms[0])["To"] == "+15557654321"

    # Withdrawn by the requester while the owner decides (an interrupting event boundary)
    withdrawn = unique("acc")
    view = start(
        run.client,
        "access-request",
        input={
            **view["input"],
            "request_id": withdrawn,
            "level": "read",
            "iam_url": run.sink + "/withdrawn",
        },
    )
    task = run.task(view["id"], "owner_approval")
    assert run.event("access.withdrawn", withdrawn, {"reason": "not needed"})["resumed"]
    assert completed(run, view["id"])["output"] == {
        "request_id": withdrawn,
        "withdrawn": True,
        "reason": "not needed",
    }
    late = run.client.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
    assert late.status_code == 409, late.text
    assert run.calls("/withdrawn") == []


# --- people ----------------------------------------------------------------------------------


def employee_onboarding(run: Run) -> None:
    view = start(
        run.client,
        "employee-onboarding",
        input={
            "employee_name": "Ada",
            "email": "ada@acme.example",
            "equipment": ["laptop", "monitor", "headset"],
        },
    )
    run.complete(
        view["id"], "hr_paperwork", data={"start_date": "2026-03-02", "contract_signed": True}
    )
    run.complete(view["id"], "manager_approval", outcome="approved")
    output = completed(run, view["id"])["output"]
    # One equipment order per item, collected in item order
    assert output.pop("equipment") == [
        {"item": item, "line": index, "for": "ada@acme.example"}
        for index, item in enumerate(["laptop", "monitor", "headset"])
    ]
    assert output == {"employee": "Ada", "username": "ada@acme.example", "start_date": "2026-03-02"}
    items = [
        e["data"]["index"] for e in run.history(view["id"]) if e["type"] == "ForEachItemCompleted"
    ]
    assert sorted(items) == [0, 1, 2]


def split_routes(run: Run, instance_id: str) -> list[int]:
    """The routes the instance's inclusive gateway took (its `InclusiveSplit`)."""
    [split] = [e for e in run.history(instance_id) if e["type"] == "InclusiveSplit"]
    return list(split["data"]["routes"])


def vendor_onboarding(run: Run) -> None:
    def onboard(vendor: str, sink: str, **extra: Any) -> dict[str, Any]:
        return start(
            run.client,
            "vendor-onboarding",
            input={
                "vendor_id": vendor,
                "name": f"Initech {vendor}",
                "tax_id": "DE123456789",
                "contact_email": "ap@initech.example",
                "registry_url": sink + "/registry",
                "erp_url": sink + "/erp",
                **extra,
            },
        )

    # A high-risk vendor abroad: all four checks, closed by the join
    vendor = unique("ven")
    procurement = f"{unique('procurement')}@acme.example"
    view = onboard(vendor, run.sink, risk="high", country="US", procurement_email=procurement)
    data = {"bank_account": "DE89370400440532013000", "insurance_certificate": True}
    run.complete(view["id"], "collect_documents", data=data)
    run.complete(view["id"], "due_diligence", data={"cleared": True})
    assert run.call("/registry/sanctions").json()["country"] == "US"
    # The daily reminder (a non-interrupting boundary) mails procurement; the task stays
    task = run.task(view["id"], "procurement_approval")
    resume_early(run, view["id"], boundary_bookmark(run, view["id"], "procurement_approval"))
    assert run.mail(f"Reminder: vendor {vendor}").recipients == [procurement]
    assert run.task(view["id"], "procurement_approval")["id"] == task["id"]
    run.complete(view["id"], "procurement_approval", outcome="approved")
    done = completed(run, view["id"])["output"]
    assert (done["vendor_id"], done["screened"], done["due_diligence"]) == (vendor, True, True)
    assert split_routes(run, view["id"]) == [0, 1, 2, 3]
    assert run.call("/registry/verifications").json()["tax_id"] == "DE123456789"
    assert run.call("/erp/vendors").json()["bank_account"] == data["bank_account"]
    assert run.mail(f"Welcome as a supplier, Initech {vendor}").recipients == ["ap@initech.example"]

    # A low-risk German vendor: only the two checks every vendor gets
    local = unique("ven")
    view = onboard(local, run.sink + "/local")
    run.complete(view["id"], "collect_documents", data=data)
    run.complete(view["id"], "procurement_approval", outcome="approved")
    done = completed(run, view["id"])["output"]
    assert (done["screened"], done["due_diligence"]) == (False, False)
    assert run.calls("/local/registry/sanctions") == []
    assert split_routes(run, view["id"]) == [0, 1]  # tax id and documents only


def customer_onboarding(run: Run) -> None:
    customer = unique("cust")
    view = start(
        run.client,
        "customer-onboarding",
        input={
            "customer_id": customer,
            "name": "Globex",
            "email": "cfo@globex.example",
            "kyc_url": run.sink,
        },
    )
    run.waiting_at(view["id"], "await_kyc")
    assert run.call("/checks").json()["reference"] == customer
    run.event("kyc.completed", customer, {"status": "review", "score": 61})
    run.complete(view["id"], "compliance_review", outcome="accept", data={"notes": "ok after call"})
    done = completed(run, view["id"])
    assert done["output"] == {"customer_id": customer, "kyc_status": "review"}
    assert run.mail("Welcome, Globex").recipients == ["cfo@globex.example"]


# --- commerce --------------------------------------------------------------------------------


def order_fulfilment(run: Run) -> None:
    def saga(sink: str, order: str, amount: float) -> dict[str, Any]:
        path = sink.removeprefix(run.target.base_url)
        run.target.reply(path + "/payments/charges", {"id": f"ch-{order}"})
        run.target.reply(path + "/shipping/shipments", {"id": f"sh-{order}"})
        urls = {f"{s}_url": f"{sink}/{s}" for s in ("inventory", "payments", "shipping")}
        return start(
            run.client,
            "order-fulfilment",
            input={"order_id": order, "amount": amount, "items": [{"sku": "A", "qty": 1}], **urls},
        )

    order = unique("order")
    view = saga(run.sink, order, 300)
    assert completed(run, view["id"])["output"] == {
        "order_id": order,
        "amount": 300,
        "shipping": "standard",
        "charge_id": f"ch-{order}",
        "shipment_id": f"sh-{order}",
    }
    assert run.call("/inventory/reservations").json()["order_id"] == order
    assert run.call("/payments/charges").json() == {"order_id": order, "amount": 300}
    assert run.call("/shipping/shipments").json()["service"] == "standard"
    assert run.calls("/payments/refunds") == []

    # The carrier refuses the shipment: the saga refunds the charge, then releases the
    # stock (newest first), each undo with its own idempotency key
    failing = unique("order")
    sink = run.sink + "/failing"
    path = sink.removeprefix(run.target.base_url)
    run.target.fail(path + "/shipping/", 422)
    view = saga(sink, failing, 1500)
    failed = wait_for_status(run.client, view["id"], "failed", "completed", timeout=30)
    assert failed["status"] == "failed", failed
    assert failed["error"]["message"] == (
        "order could not be fulfilled; completed steps were undone"
    )
    calls = run.target.received(path)
    assert [(r.method, r.path.removeprefix(path)) for r in calls] == [
        ("POST", "/inventory/reservations"),
        ("POST", "/payments/charges"),
        ("POST", "/shipping/shipments"),
        ("POST", "/payments/refunds"),
        ("DELETE", f"/inventory/reservations/{failing}"),
    ]
    refund_call, release_call = calls[3], calls[4]
    assert refund_call.json() == {"charge_id": f"ch-{failing}", "order_id": failing, "amount": 1500}
    keys = [r.headers["idempotency-key"] for r in (refund_call, release_call)]
    assert keys[0].startswith(f"{view['id']}:compensate:charge_payment:")
    assert keys[1].startswith(f"{view['id']}:compensate:reserve_stock:")


def refund(run: Run) -> None:
    # Started by its event trigger
    refund_id, order = unique("ref"), unique("order")
    payload = {
        "refund_id": refund_id,
        "order_id": order,
        "amount": 500,
        "customer_email": "buyer@example.com",
        "payments_url": run.sink,
    }
    delivered = run.event("refund.requested", None, payload)
    [started] = delivered["started"]
    instance_id = started if isinstance(started, str) else started["instance_id"]
    run.complete(instance_id, "lead_approval", outcome="approved")  # above 200
    done = completed(run, instance_id)
    assert done["output"] == {"refund_id": refund_id, "amount": 500, "approved": True}
    assert run.call("/refunds").json()["order_id"] == order
    run.mail(f"Your refund for order {order}")
    # refund.issued was delivered inside Waymark, in the emitting command
    history = run.history(instance_id)
    [emitted] = [
        e["data"]["result"]
        for e in history
        if e["type"] == "NodeCompleted" and e["data"]["node_id"] == "announce"
    ]
    assert emitted["type"] == "refund.issued", emitted


# --- operations ------------------------------------------------------------------------------


def pages(run: Run, suffix: str, *words: str) -> list[dict[str, Any]]:
    """Bodies the scenario's pager stand-in got under `suffix` whose summary has `words`."""
    bodies = [r.json() for r in run.calls(suffix)]
    return [b for b in bodies if all(w in b["summary"] for w in words)]


def boundary_bookmark(run: Run, instance_id: str, host: str) -> dict[str, Any]:
    """The open boundary bookmark of node `host` (once it is there)."""

    def probe() -> dict[str, Any] | None:
        view = instance(run.client, instance_id)
        found = [b for b in view["bookmarks"] if b.get("boundary_of") and b["node_id"] == host]
        return found[0] if found else None

    return wait_for(probe, what=f"a boundary bookmark of {host}")


def resume_early(run: Run, instance_id: str, bookmark: dict[str, Any]) -> None:
    """A timer bookmark fired now over the API instead of waiting for its due time."""
    resumed = run.client.post(
        f"/v1/instances/{instance_id}/bookmarks/{bookmark['id']}/resume", json={}
    )
    assert resumed.status_code == 200, resumed.text


def incident_escalation(run: Run) -> None:
    incident = unique("inc")
    view = start(
        run.client,
        "incident-escalation",
        input={
            "incident_id": incident,
            "title": "API down",
            "severity": "critical",
            "pager_url": run.sink,
        },
    )
    # The event gateway: the acknowledgement event wins over the 15-minute timer
    run.waiting_at(view["id"], "acknowledged", "ack_timeout")
    assert run.event("incident.acknowledged", incident, {"by": "ann"})["resumed"]
    run.complete(view["id"], "mitigate", outcome="approved")
    # The 30-minute watch: its timer bookmark is resumed early over the API
    resume_early(run, view["id"], open_bookmark(run.waiting_at(view["id"], "observe"), "observe"))
    # The hourly reminder (a non-interrupting boundary) posts and the task stays open
    reminder = boundary_bookmark(run, view["id"], "confirm_resolution")
    resume_early(run, view["id"], reminder)
    wait_for(lambda: pages(run, "/reminders", incident), what="the reminder")
    run.complete(view["id"], "confirm_resolution", outcome="approved")
    done = completed(run, view["id"])["output"]
    assert (done["priority"], done["escalated"]) == ("P1", False)
    assert run.calls("/pages") == []  # acknowledged in time: nobody was paged
    [decided] = [e for e in run.history(view["id"]) if e["type"] == "EventGatewayDecided"]
    assert decided["data"]["winner_node_id"] == "acknowledged"

    # Nobody acknowledges within the (here 1-second) deadline: the incident manager is paged
    # (the timer beats the wait this time)
    late = unique("inc")
    view = start(
        run.client,
        "incident-escalation",
        input={
            "incident_id": late,
            "title": "disk full",
            "severity": "high",
            "ack_timeout_seconds": 1,
            "pager_url": run.sink,
        },
    )
    [page] = wait_for(lambda: pages(run, "/pages", late), what="the escalation page")
    assert page["role"] == "incident-manager" and page["priority"] == "P2"
    assert page["summary"] == f"P2 incident {late} (disk full) was not acknowledged in time"
    run.complete(view["id"], "mitigate", outcome="rejected")
    failed = wait_for_status(run.client, view["id"], "failed")
    assert failed["error"]["message"] == "on-call could not mitigate the incident"


def change_request(run: Run) -> None:
    change = unique("chg")
    view = start(
        run.client,
        "change-request",
        input={"change_id": change, "title": "Upgrade PostgreSQL", "risk": "high"},
    )
    run.complete(view["id"], "cab_approval", outcome="approved")  # not a standard change
    run.complete(view["id"], "implement", data={"result": "success", "notes": "took 5 min"})
    done = completed(run, view["id"])
    assert done["output"]["thread"] == SLACK_REPLY["ts"]
    posts = [
        r.json()
        for r in run.target.received("/slack/api/chat.postMessage")
        if change in r.body.decode()
    ]
    assert posts[0]["channel"] == "#changes" and "thread_ts" not in posts[0]
    assert posts[1]["thread_ts"] == SLACK_REPLY["ts"]
    assert posts[1]["channel"] == SLACK_REPLY["channel"]
    assert posts[1]["text"] == f"Change {change} implemented (took 5 min)"
    for recorded in run.target.received("/slack/api/chat.postMessage"):
        assert recorded.headers["authorization"] == f"Bearer {SLACK_TOKEN}"


def alert_routing(run: Run) -> None:
    # Started by signed webhook deliveries, routed by severity
    def deliver(alert: dict[str, Any]) -> dict[str, Any]:
        response = post_signed(
            run.client, "/v1/webhooks/alert-routing", alert, secret=TENANT_SECRETS["acme"]
        )
        assert response.status_code == 201, response.text
        return response.json()

    critical = unique("alert")
    view = deliver(
        {"alert_id": critical, "severity": "critical", "service": "api", "summary": "5xx"}
    )
    done = completed(run, view["id"])
    [incident_id] = done["output"]["incidents"]  # incident.opened started incident-escalation
    incident = instance(run.client, incident_id)
    assert incident["definition"] == "incident-escalation"
    assert incident["input"]["incident_id"] == critical
    sms = [r for r in run.target.received("/twilio/") if critical in sms_form(r)["Body"]]
    assert sms_form(sms[0])["Body"] == f"CRITICAL api: 5xx ({critical})"
    posted = [r.json() for r in run.target.received("/slack/api/") if critical in r.body.decode()]
    assert posted[0]["channel"] == "#incidents"
    run.client.post(f"/v1/instances/{incident_id}/cancel", json={"reason": "test done"})

    warning = unique("alert")
    view = deliver({"alert_id": warning, "severity": "warning", "service": "db", "summary": "slow"})
    assert completed(run, view["id"])["output"] == {"alert_id": warning, "routed_to": "slack"}
    hooks = [r.json() for r in run.target.received(SLACK_ALERTS_HOOK) if warning in r.body.decode()]
    assert hooks == [{"text": f":warning: db: slow ({warning})"}]

    info = unique("alert")
    view = deliver({"alert_id": info, "severity": "info", "service": "db", "summary": "fine"})
    assert completed(run, view["id"])["output"] == {"alert_id": info, "routed_to": None}


def daily_report(run: Run) -> None:
    definition = run.client.get("/v1/definitions/daily-report").json()
    assert definition["document"]["triggers"][0]["type"] == "schedule"
    # A scheduled start has an empty input; by hand, the parameters point at the sinks
    run.target.reply(run.sink_path + "/daily", {"orders": 40, "revenue": 1234.5, "failed": 2})
    to = [f"{unique('reports')}@acme.example"]
    view = start(run.client, "daily-report", input={"metrics_url": run.sink, "recipients": to})
    output = completed(run, view["id"])["output"]
    assert output == {"orders": 40, "revenue": 1234.5, "failed_share": 5.0}
    [mail] = wait_for(lambda: [m for m in run.smtp.received() if m.recipients == to])
    assert mail.message["Subject"] == "Daily report: 40 orders"
    assert "Revenue: 1234.5" in mail.message.get_body(("plain",)).get_content()


# --- documents -------------------------------------------------------------------------------


def document_signature(run: Run) -> None:
    document = unique("doc")
    view = start(
        run.client,
        "document-signature",
        input={"document_id": document, "signer_email": "cfo@acme.example", "esign_url": run.sink},
    )
    run.waiting_at(view["id"], "await_signature")
    run.event(
        "esign.completed", document, {"status": "signed", "signed_at": "2026-12-01T10:00:00Z"}
    )
    assert completed(run, view["id"])["output"]["signed_at"] == "2026-12-01T10:00:00Z"
    assert run.call("/envelopes").json()["signer"] == "cfo@acme.example"


def document_review(run: Run) -> None:
    document = unique("doc")
    view = start(
        run.client,
        "document-review",
        input={
            "document_id": document,
            "title": f"NDA {document}",
            "author_email": "author@acme.example",
            "signer_email": "cfo@acme.example",
            "esign_url": run.sink,
        },
    )
    # Changes requested: the author is mailed, the review waits for the revision
    run.complete(view["id"], "review", outcome="request_changes", data={"comments": "fix clause 3"})
    mail = run.mail(f"Changes requested: NDA {document}")
    assert mail.message.get_body(("plain",)).get_content().strip() == "fix clause 3"
    run.waiting_at(view["id"], "await_revision")
    run.event("document.revised", document, {"revision": 2})
    # Approved: the document-signature sub-workflow sends it and waits for the signature
    run.complete(view["id"], "review", outcome="approve")
    child_id = open_bookmark(run.waiting_at(view["id"], "sign"), "sign")["child_id"]
    child = run.waiting_at(child_id, "await_signature")  # the event must find its wait
    assert child["definition"] == "document-signature"
    assert child["input"]["signer_email"] == "cfo@acme.example"
    assert run.call("/envelopes").json()["document_id"] == document
    run.event(
        "esign.completed", document, {"status": "signed", "signed_at": "2026-12-02T09:00:00Z"}
    )
    done = completed(run, view["id"])
    assert done["output"]["signed_at"] == "2026-12-02T09:00:00Z"
    assert instance(run.client, child_id)["status"] == "completed"

    # A declined signature fails the child, and the parent takes its error route
    declined = unique("doc")
    view = start(
        run.client,
        "document-review",
        input={**view["input"], "document_id": declined, "title": f"NDA {declined}"},
    )
    run.complete(view["id"], "review", outcome="approve")
    child_id = open_bookmark(run.waiting_at(view["id"], "sign"), "sign")["child_id"]
    run.waiting_at(child_id, "await_signature")
    run.event("esign.completed", declined, {"status": "declined", "reason": "no"})
    failed = wait_for_status(run.client, view["id"], "failed")
    assert failed["error"]["message"] == "the document was not signed"
    assert "the signer declined to sign" in failed["error"]["output"]["reason"]


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
