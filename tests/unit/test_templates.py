"""The built-in template library: every shipped template is a valid definition that behaves
as its description says, the catalog loads them lazily, and instantiating publishes a copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.definitions import DefinitionService
from application.errors import (
    DefinitionExistsError,
    InvalidDefinitionError,
    TemplateNotFoundError,
)
from application.ports import PublishedDefinition
from application.templates import Template, TemplateService
from domain import engine
from domain.definition import Definition
from domain.instance import WorkflowInstance
from domain.validation import validate_document
from infrastructure.schemas import JsonSchemaValidator
from infrastructure.template_catalog import (
    PackagedTemplateCatalog,
    TemplateFileError,
    _parse,
)
from tests.template_ids import TEMPLATE_IDS
from tests.unit.engine_support import FakeEnv, complete_bookmark, only_open, start

TEMPLATES = PackagedTemplateCatalog().list()


def by_id(template_id: str) -> Template:
    return next(t for t in TEMPLATES if t.id == template_id)


def definition_of(template_id: str) -> Definition:
    return Definition.from_document(by_id(template_id).definition, version=1)


# --- the catalog ----------------------------------------------------------------------------


def test_catalog_lists_the_sixteen_templates_by_id() -> None:
    ids = [t.id for t in TEMPLATES]
    assert set(ids) == TEMPLATE_IDS
    assert len(ids) == len(set(ids)) == 16
    assert ids == sorted(ids)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_every_template_validates(template: Template) -> None:
    assert validate_document(template.definition) == []
    # The same checks as publishing, including the JSON Schemas inside (input, forms).
    publishing = DefinitionService(MemoryDefinitionStore(), JsonSchemaValidator())
    assert publishing.validate(template.definition) == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_every_template_describes_itself(template: Template) -> None:
    assert template.definition["name"] == template.id
    assert template.name and template.description and template.category
    assert template.parameters
    for parameter in template.parameters:
        assert set(parameter) == {"name", "type", "required", "description"}
    # The required parameters are exactly what the input schema requires.
    required = {p["name"] for p in template.parameters if p["required"]}
    assert required == set(template.definition["input_schema"]["required"])
    assert {p["name"] for p in template.parameters} <= set(
        template.definition["input_schema"]["properties"]
    )


def test_catalog_gets_by_id_and_none_for_unknown() -> None:
    catalog = PackagedTemplateCatalog()
    template = catalog.get("order-fulfilment")
    assert template is not None and template.category == "commerce"
    assert catalog.get("no-such-template") is None


def test_catalog_does_no_work_until_first_use() -> None:
    catalog = PackagedTemplateCatalog("no_such_package.templates")  # nothing is imported yet
    with pytest.raises(ModuleNotFoundError):
        catalog.list()


def test_malformed_template_files_are_refused() -> None:
    with pytest.raises(TemplateFileError, match="expected a JSON object"):
        _parse("a.json", [])
    with pytest.raises(TemplateFileError, match="missing field"):
        _parse("a.json", {"id": "a"})
    good: dict[str, Any] = {"id": "a", "name": "A", "description": "d", "category": "c"}
    good |= {"parameters": [], "definition": {}}
    with pytest.raises(TemplateFileError, match="does not match the file name"):
        _parse("b.json", good)
    assert _parse("a.json", good).id == "a"


# --- the service ----------------------------------------------------------------------------


class MemoryDefinitionStore:
    """Just enough of DefinitionStore for publish: versions count up per (tenant, name)."""

    def __init__(self) -> None:
        self.published: list[PublishedDefinition] = []

    def publish(
        self, tenant: str, name: str, document: dict[str, Any], *, audit: Any = None
    ) -> PublishedDefinition:
        version = 1 + sum(1 for p in self.published if (p.tenant, p.name) == (tenant, name))
        published = PublishedDefinition(
            tenant, name, version, document, True, datetime(2026, 1, 1, tzinfo=UTC)
        )
        self.published.append(published)
        return published

    def get(self, tenant: str, name: str, version: int | None = None) -> Any:
        found = [p for p in self.published if (p.tenant, p.name) == (tenant, name)]
        if version is not None:
            found = [p for p in found if p.version == version]
        return found[-1] if found else None


def service() -> tuple[TemplateService, MemoryDefinitionStore]:
    store = MemoryDefinitionStore()
    definitions = DefinitionService(store, JsonSchemaValidator())
    return TemplateService(PackagedTemplateCatalog(), definitions), store


def test_instantiate_publishes_the_next_version_of_the_template_name() -> None:
    templates, _ = service()
    first = templates.instantiate("acme", "purchase-approval")
    second = templates.instantiate("acme", "purchase-approval", new_version=True)
    other_tenant = templates.instantiate("globex", "purchase-approval")
    assert (first.name, first.version, second.version) == ("purchase-approval", 1, 2)
    assert (other_tenant.tenant, other_tenant.version) == ("globex", 1)
    assert first.document == templates.get("purchase-approval").definition


def test_instantiate_refuses_to_publish_over_an_existing_definition() -> None:
    templates, store = service()
    templates.instantiate("acme", "purchase-approval")
    with pytest.raises(DefinitionExistsError) as refused:
        templates.instantiate("acme", "purchase-approval")
    assert (refused.value.name, refused.value.version, refused.value.code) == (
        "purchase-approval",
        1,
        "definition-exists",
    )
    assert store.get("acme", "purchase-approval").version == 1  # nothing was published
    # Another name is another definition
    assert templates.instantiate("acme", "purchase-approval", name="po-eu").version == 1


def test_instantiate_under_another_name_leaves_the_template_untouched() -> None:
    templates, _ = service()
    published = templates.instantiate("acme", "order-fulfilment", name="orders-eu")
    assert (published.name, published.document["name"]) == ("orders-eu", "orders-eu")
    assert templates.get("order-fulfilment").definition["name"] == "order-fulfilment"


def test_instantiate_refuses_unknown_templates_and_invalid_names() -> None:
    templates, store = service()
    with pytest.raises(TemplateNotFoundError) as unknown:
        templates.instantiate("acme", "nope")
    assert unknown.value.template_id == "nope"
    with pytest.raises(InvalidDefinitionError) as invalid:
        templates.instantiate("acme", "order-fulfilment", name="Not A Slug")
    assert [p.path for p in invalid.value.problems] == ["$.name"]
    assert store.published == []


# --- the templates run as designed (domain engine, no I/O) ---------------------------------


def decide(instance: WorkflowInstance, d: Definition, fake: FakeEnv, outcome: str, **kw: Any):
    task = only_open(instance, "task")
    complete_bookmark(instance, d, task.id, fake, outcome=outcome, data=kw.get("data"), by="u1")
    return task


def finish_activity(instance: WorkflowInstance, d: Definition, fake: FakeEnv, **result: Any):
    [activity] = instance.scheduled_activities()
    engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=activity.attempt,
        ok=result.get("ok", True),
        output=result.get("output"),
        error=result.get("error"),
        retryable=result.get("retryable", True),
        env=fake.env(),
    )
    return activity


def test_incident_escalation_loops_until_resolved() -> None:
    d, fake = definition_of("incident-escalation"), FakeEnv()
    instance = start(d, fake, {"incident_id": "INC-1", "title": "db down", "severity": "high"})

    # The event gateway waits for the acknowledgement and a 15-minute timer at once
    ack, timeout = only_open(instance, "wait"), only_open(instance, "timer")
    assert (ack.node_id, ack.event_type, ack.correlation) == (
        "acknowledged",
        "incident.acknowledged",
        "INC-1",
    )
    assert (timeout.node_id, timeout.due_at - fake.now) == ("ack_timeout", timedelta(minutes=15))
    engine.resume(instance, d, ack.id, payload={"by": "oncall"}, source="t", env=fake.env())
    assert instance.bookmarks[timeout.id].status == "cancelled"  # the timer lost

    # On-call gets a critical task with a 30-minute SLA, escalating to the incident manager
    mitigate = decide(instance, d, fake, "approved")
    assert (mitigate.node_id, mitigate.role, mitigate.urgency) == (
        "mitigate",
        "on-call",
        "critical",
    )
    assert mitigate.escalate_to_role == "incident-manager"
    assert instance.variables["priority"] == "P2"

    # The watch timer, then a rejected resolution sends it back to on-call
    engine.fire_timer(instance, d, only_open(instance, "timer").id, fake.env())
    assert decide(instance, d, fake, "rejected").node_id == "confirm_resolution"
    decide(instance, d, fake, "approved")
    engine.fire_timer(instance, d, only_open(instance, "timer").id, fake.env())

    # While the confirmation waits, an hourly reminder (a non-interrupting boundary) posts
    reminder = only_open(instance, "timer")
    assert reminder.due_at - fake.now == timedelta(hours=1)
    engine.fire_timer(instance, d, reminder.id, fake.env())
    posted = finish_activity(instance, d, fake, output={"ok": True})
    assert posted.node_id == "remind" and "INC-1" in posted.action["body"]["summary"]
    assert posted.action["url"] == "https://pager.example/reminders"
    assert only_open(instance, "task").node_id == "confirm_resolution"  # still waiting
    decide(instance, d, fake, "approved")

    assert instance.status == "completed"
    assert instance.output is not None
    assert (instance.output["incident_id"], instance.output["priority"]) == ("INC-1", "P2")
    assert instance.output["escalated"] is False
    assert instance.output["resolved_at"]


def test_incident_escalation_escalates_when_nobody_acknowledges_in_time() -> None:
    d, fake = definition_of("incident-escalation"), FakeEnv()
    instance = start(
        d,
        fake,
        {"incident_id": "INC-2", "title": "x", "severity": "critical", "ack_timeout_seconds": 60},
    )
    timer = only_open(instance, "timer")
    assert timer.due_at - fake.now == timedelta(seconds=60)
    engine.fire_timer(instance, d, timer.id, fake.env())
    assert [b for b in instance.open_bookmarks() if b.kind == "wait"] == []
    posted = finish_activity(instance, d, fake, output={"ok": True})
    assert (posted.node_id, posted.action["url"]) == ("escalate", "https://pager.example/pages")
    assert posted.action["body"]["role"] == "incident-manager"
    assert posted.action["body"]["summary"].startswith("P1 incident INC-2 (x) was not")
    assert instance.variables["escalated"] is True
    decide(instance, d, fake, "rejected")
    assert instance.status == "failed"
    assert instance.error is not None
    assert instance.error["message"] == "on-call could not mitigate the incident"
    assert instance.error["output"]["priority"] == "P1"


ORDER = {"order_id": "O-1", "amount": 50, "items": [{"sku": "A", "qty": 1}]}


def test_order_fulfilment_reserves_charges_and_ships() -> None:
    d, fake = definition_of("order-fulfilment"), FakeEnv()
    instance = start(d, fake, ORDER)
    reserve = finish_activity(instance, d, fake, output={"status": 201, "body": {}})
    assert reserve.action["url"] == "https://inventory.example/reservations"
    assert reserve.action["body"] == {"order_id": "O-1", "items": ORDER["items"]}
    charge = finish_activity(instance, d, fake, output={"status": 201, "body": {"id": "ch_1"}})
    assert charge.action["body"] == {"order_id": "O-1", "amount": 50}
    ship = finish_activity(instance, d, fake, output={"status": 201, "body": {"id": "sh_1"}})
    assert ship.action["body"]["service"] == "standard"
    assert instance.status == "completed"
    assert instance.output == {
        "order_id": "O-1",
        "amount": 50,
        "shipping": "standard",
        "charge_id": "ch_1",
        "shipment_id": "sh_1",
    }


def test_order_fulfilment_undoes_the_done_steps_newest_first_when_shipping_fails() -> None:
    d, fake = definition_of("order-fulfilment"), FakeEnv()
    instance = start(d, fake, {**ORDER, "amount": 1500})
    finish_activity(instance, d, fake, output={"status": 201, "body": {}})
    finish_activity(instance, d, fake, output={"status": 201, "body": {"id": "ch_9"}})
    ship = finish_activity(instance, d, fake, ok=False, error="HTTP 422", retryable=False)
    assert ship.action["body"]["service"] == "insured"
    # The refund first (its template sees the charge's result), then the stock release
    refund = finish_activity(instance, d, fake, output={"status": 201, "body": {}})
    assert (refund.node_id, refund.action["method"]) == ("charge_payment", "POST")
    assert refund.action["url"] == "https://payments.example/refunds"
    assert refund.action["body"] == {"charge_id": "ch_9", "order_id": "O-1", "amount": 1500}
    release = finish_activity(instance, d, fake, output={"status": 204, "body": ""})
    assert (release.node_id, release.action["method"]) == ("reserve_stock", "DELETE")
    assert release.action["url"] == "https://inventory.example/reservations/O-1"
    assert refund.idempotency_key != release.idempotency_key
    assert ":compensate:" in refund.idempotency_key
    assert instance.status == "failed"
    assert instance.error is not None
    assert instance.error["message"] == "order could not be fulfilled; completed steps were undone"


def test_order_fulfilment_undoes_nothing_when_stock_cannot_be_reserved() -> None:
    d, fake = definition_of("order-fulfilment"), FakeEnv()
    instance = start(d, fake, {"order_id": "O-2", "amount": 5, "items": [1]})
    finish_activity(instance, d, fake, ok=False, error="HTTP 409", retryable=False)
    assert instance.scheduled_activities() == []
    assert instance.status == "failed"
    assert instance.error is not None
    assert instance.error["output"] == {"order_id": "O-2"}


def test_document_signature_declined_and_signed() -> None:
    d = definition_of("document-signature")
    outcomes = {}
    for status in ("declined", "signed"):
        fake = FakeEnv()
        instance = start(d, fake, {"document_id": "D-1", "signer_email": "a@example.com"})
        finish_activity(instance, d, fake, output={"status": 201, "body": {"envelope": "E"}})
        wait = only_open(instance, "wait")
        assert (wait.event_type, wait.correlation) == ("esign.completed", "D-1")
        assert wait.due_at - fake.now == timedelta(days=14)
        payload = {"status": status, "signed_at": "2026-01-02T10:00:00+00:00", "reason": "no"}
        engine.resume(instance, d, wait.id, payload=payload, source="t", env=fake.env())
        outcomes[status] = instance
    assert outcomes["declined"].status == "failed"
    assert outcomes["signed"].status == "completed"
    assert outcomes["signed"].output == {
        "document_id": "D-1",
        "signer": "a@example.com",
        "signed_at": "2026-01-02T10:00:00+00:00",
    }
