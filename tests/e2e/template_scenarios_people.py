"""The template-library scenarios of the approval and people templates (purchase, expense,
leave, invoice, access; employee, vendor and customer onboarding): each drives one
instance of its template to its end on the server of tests/e2e/test_template_library.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.conftest import (
    start,
    unique,
    wait_for,
)
from tests.e2e.template_support import (
    TEAMS_HOOK,
    Run,
    boundary_bookmark,
    completed,
    resume_early,
    sms_form,
)

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
