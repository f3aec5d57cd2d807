"""The template-library scenarios of the commerce, operations and document templates (order
fulfilment, refund; incident escalation, change request, alert routing, daily report;
document signature and review): each drives one instance of its template to its end on
the server of tests/e2e/test_template_library.py."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    TENANT_SECRETS,
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
    Run,
    boundary_bookmark,
    completed,
    resume_early,
    sms_form,
)

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
