"""The web console (`/console`, docs/console.md) in a real browser, for the people who
operate: the instances list's filters and paging, one instance (cancel, resume a wait, an
incident retried and skipped) and the definitions list. Sign-in and the people who approve:
tests/e2e/test_console.py; the browser and page fixtures: tests/e2e/console_support.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.conftest import Target, publish, start, unique, wait_for_status
from tests.e2e.console_support import (  # noqa: F401 - the fixtures console_browser, console_page
    approval_definition,
    console_browser,
    console_page,
    expect,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


# --- people who operate ---------------------------------------------------------------------


def test_instances_are_filtered_and_paged(page: Page, acme: httpx.Client) -> None:
    name = unique("console-paged")
    publish(acme, approval_definition(name, unique("Paged")))
    ids = [start(acme, name)["id"] for _ in range(3)]
    acme.post(f"/v1/instances/{ids[0]}/cancel", json={})
    sign_in(page)
    page.goto("/console?page_size=2#/instances")
    page.get_by_label("Definition").fill(name)
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("tr[data-instance]")
    expect(rows).to_have_count(2)
    more = page.get_by_role("button", name="More")
    more.click()
    expect(rows).to_have_count(3)
    expect(more).to_be_hidden()
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.instance)")) == sorted(ids)
    # and by status: only the cancelled one
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("cancelled")
    assert rows.get_attribute("data-instance") == ids[0]


def test_an_operator_cancels_an_instance(page: Page, acme: httpx.Client) -> None:
    name = unique("console-cancel")
    publish(acme, approval_definition(name, unique("Never decided")))
    started = start(acme, name)
    sign_in(page)
    page.goto(f"/console#/instances/{started['id']}")
    expect(page.locator("#instance-status")).to_have_text("suspended")
    expect(page.locator("#bookmarks")).to_contain_text("review")
    assert page.get_by_text("null", exact=True).count() == 0  # no error/output: nothing shown
    page.get_by_role("button", name="Cancel instance…").click()
    page.get_by_label("Reason").fill("duplicate order")
    page.get_by_role("button", name="Confirm cancel").click()
    expect(page.locator(".flash")).to_contain_text("Instance cancelled.")
    expect(page.locator("#instance-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel instance…")).to_have_count(0)
    assert acme.get(f"/v1/instances/{started['id']}").json()["status"] == "cancelled"


def test_a_wait_is_resumed_with_a_payload(page: Page, acme: httpx.Client) -> None:
    name = unique("console-wait")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "shipment", "type": "wait", "result_var": "shipped"},
                {"id": "done", "type": "end", "output": {"carrier": "vars.shipped.carrier"}},
            ],
            "routes": [{"from": "shipment", "to": "done"}],
        },
    )
    started = start(acme, name)
    sign_in(page)
    page.goto(f"/console#/instances/{started['id']}")
    waiting = page.locator("tr[data-bookmark]")
    expect(waiting).to_contain_text("shipment")
    waiting.locator("textarea").fill("{not json")
    waiting.get_by_role("button", name="Resume").click()
    expect(page.locator(".form-problems .problem")).to_contain_text("$.payload")
    waiting.locator("textarea").fill('{"carrier": "DHL"}')
    waiting.get_by_role("button", name="Resume").click()
    expect(page.locator(".flash")).to_contain_text("Resumed shipment.")
    expect(page.locator("#instance-status")).to_have_text("completed")
    expect(page.locator("#instance-variables")).to_contain_text("DHL")
    assert acme.get(f"/v1/instances/{started['id']}").json()["output"] == {"carrier": "DHL"}


def test_an_incident_is_listed_and_retried_from_the_instance(
    page: Page, acme: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("console-pay"), unique("console-charge")
    target.fail(path, 500)
    publish(
        acme,
        {
            "name": name,
            "on_failure": "incident",
            "nodes": [
                {
                    "id": "charge",
                    "type": "service_task",
                    "retry": {"max_attempts": 1},
                    "timeout": "PT5S",
                    "result_var": "receipt",
                    "action": {"type": "http", "method": "POST", "url": target.base_url + path},
                },
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "charge", "to": "done"}],
        },
    )
    started = start(acme, name)
    wait_for_status(acme, started["id"], "incident")
    sign_in(page)
    page.goto(f"/console#/instances/{started['id']}")
    expect(page.locator("#instance-status")).to_have_text("incident")
    incident = page.locator("tr[data-incident]")
    expect(incident).to_have_count(1)
    expect(incident).to_contain_text("charge")
    expect(incident).to_contain_text("500")

    target.fail(path, 200)  # the target is fixed
    incident.get_by_role("button", name="Retry").click()
    expect(page.locator(".flash")).to_contain_text("Node retried.")
    wait_for_status(acme, started["id"], "completed")
    page.reload()
    expect(page.locator("#instance-status")).to_have_text("completed")
    expect(page.locator("tr[data-incident]")).to_have_count(0)
    expect(page.locator("#history")).to_contain_text("IncidentRetried")

    # another one, skipped with a result given as JSON
    target.fail(path, 500)
    other = start(acme, name)
    wait_for_status(acme, other["id"], "incident")
    page.goto(f"/console#/instances/{other['id']}")
    incident = page.locator("tr[data-incident]")
    expect(incident).to_have_count(1)
    incident.locator("textarea").fill('{"paid": "by hand"}')
    incident.get_by_placeholder("reason (recorded)").fill("paid at the desk")
    incident.get_by_role("button", name="Skip").click()
    expect(page.locator(".flash")).to_contain_text("Node skipped.")
    skipped = wait_for_status(acme, other["id"], "completed")
    assert skipped["variables"]["receipt"] == {"paid": "by hand"}
    page.reload()
    expect(page.locator("#instance-variables")).to_contain_text("by hand")
    expect(page.locator("#history")).to_contain_text("IncidentSkipped")


def test_definitions_are_listed_with_version_and_enabled(page: Page, acme: httpx.Client) -> None:
    name = unique("console-defs")
    publish(acme, approval_definition(name, "x"))
    publish(acme, approval_definition(name, "y"))
    assert acme.post(f"/v1/definitions/{name}/disable").status_code == 200
    sign_in(page)
    page.get_by_role("link", name="Definitions").click()
    row = page.locator(f'tr[data-definition="{name}"]')
    expect(row).to_contain_text("2")
    expect(row).to_contain_text("disabled")
