"""The web console (`/console`, docs/console.md) in a real browser: Debian's Chromium driven
by Playwright, against a real `waymark serve`. Each test does what a person does (sign in,
open the inbox, fill a form, press a button) and asserts what the page then shows.

One browser and one server per module; every test opens its own browser context (its own
sessionStorage). A JavaScript error or a Content-Security-Policy violation on a page fails
the test that caused it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, Target, publish, start, unique, wait_for_status

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "the console's browser tests need Debian's Chromium at /usr/bin/chromium: run "
    "`make chromium` as root (apt-get install -y --no-install-recommends chromium)"
)
XSS = "<img src=x onerror=\"window.__xss='fired'\">"
TIMEOUT_MS = 15_000

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = None
    if sync_playwright is None:
        missing = "playwright is not installed (pip install -e '.[test]')"
    elif not Path(CHROMIUM).exists():
        missing = INSTALL_HINT
    if missing:
        if os.environ.get("CI"):  # in CI `make test` installs both: a skip would hide it
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    troubles: list[str] = []
    opened.on("pageerror", lambda error: troubles.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            troubles.append(
                f"console {message.type} at {message.location} on {opened.url}: {message.text[:60]}"
            )
            if message.type == "error" and "status of 4" not in message.text
            else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert troubles == [], troubles


def sign_in(page: Page, key: str = "k-acme") -> None:
    page.goto("/console")
    page.get_by_label("Key or token").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#identity-tenant")).to_be_visible()


def approval_definition(name: str, task_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "review",
                "type": "approval",
                "name": task_name,
                "approver_role": "manager",
                "sla_hours": 24,
                "result_var": "decision",
                "form": {
                    "type": "object",
                    "required": ["cost_center"],
                    "properties": {"cost_center": {"type": "string", "maxLength": 20}},
                },
            },
            {"id": "done", "type": "end"},
            {"id": "refused", "type": "end", "status": "failed"},
        ],
        "routes": [
            {"from": "review", "to": "done", "outcome": "approved"},
            {"from": "review", "to": "refused", "outcome": "rejected"},
        ],
    }


def user_task_definition(name: str, task_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "note", "type": "set", "variables": {"note": "input.note"}},
            {
                "id": "profile",
                "type": "user_task",
                "name": task_name,
                "role": "hr",
                "outcomes": ["submitted", "withdrawn"],
                "result_var": "profile",
                "form": {
                    "type": "object",
                    "required": ["full_name"],
                    "properties": {
                        "full_name": {"type": "string", "maxLength": 100},
                        "age": {"type": "integer", "minimum": 18},
                    },
                },
            },
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "note", "to": "profile"}, {"from": "profile", "to": "done"}],
    }


def open_task_row(page: Page, task_name: str) -> None:
    page.goto("/console#/inbox")
    page.get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, exact=True)).to_be_visible()


# --- sign-in --------------------------------------------------------------------------------


def test_the_console_is_served_public_with_its_csp(server: Server) -> None:
    for path in ("/console", "/console/"):
        page = httpx.get(server.base_url + path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert 'src="/console/app.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"  # the API's headers stay
    script = httpx.get(server.base_url + "/console/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    # only the console's own files: nothing outside the directory, nothing unknown
    assert httpx.get(server.base_url + "/console/..%2Fapp.py").status_code == 404
    assert httpx.get(server.base_url + "/console/nothing.js").status_code == 404


def test_sign_in_shows_who_the_api_says_and_sign_out_forgets_the_key(page: Page) -> None:
    sign_in(page, "k-acme")
    expect(page.locator("#identity-tenant")).to_have_text("acme")
    expect(page.locator("#identity-roles")).to_have_text("admin")
    expect(page.get_by_role("heading", name="Task inbox")).to_be_visible()
    assert page.evaluate("Object.values(sessionStorage)") == ["k-acme"]

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    # a reload stays signed out
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # another key, another identity (the page does not guess: it asks the API)
    sign_in(page, "k-acme-viewer")
    expect(page.locator("#identity-roles")).to_have_text("viewer")


def test_a_wrong_key_shows_the_sign_in_error(page: Page) -> None:
    page.goto("/console")
    page.get_by_label("Key or token").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    problems = page.locator("#sign-in-problems")
    expect(problems).to_contain_text("Sign-in failed: the API did not accept this key or token")
    expect(problems).to_contain_text("401")
    expect(problems).to_contain_text("the API key is not valid")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_key_refused_mid_session_returns_to_sign_in_with_the_reason(page: Page) -> None:
    sign_in(page)
    # the key stops working (revoked): the next view's request is answered 401
    page.evaluate("sessionStorage.setItem('waymark.console.credential', 'revoked-key')")
    page.get_by_role("link", name="Instances").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#sign-in-problems")).to_contain_text("the API key is not valid")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


# --- people who approve ---------------------------------------------------------------------


def test_an_approval_is_decided_in_the_inbox_and_the_instance_shows_completed(
    page: Page, acme: httpx.Client
) -> None:
    name, task_name = unique("console-approval"), unique("Approve purchase")
    publish(acme, approval_definition(name, task_name))
    started = start(acme, name, input={"amount": 420})
    sign_in(page)

    # the inbox lists the task; its page shows node, instance, SLA and the form's field
    row = page.locator("tr", has_text=task_name)
    expect(row).to_contain_text("approval")
    expect(row).to_contain_text(started["id"][:8])
    open_task_row(page, task_name)
    expect(page.locator(".facts")).to_contain_text("review")
    expect(page.locator(".facts")).to_contain_text(started["id"])
    expect(page.locator(".facts")).to_contain_text("manager")
    expect(page.get_by_text("Due", exact=True)).to_be_visible()
    expect(page.locator(".facts")).not_to_contain_text("no due time")

    # claim it: the page says so and shows who holds it now
    page.get_by_role("button", name="Claim").click()
    expect(page.locator(".flash")).to_contain_text("Task claimed.")
    expect(page.locator(".facts")).to_contain_text("claimed")
    expect(page.get_by_role("button", name="Claim")).to_have_count(0)
    claimed = acme.get("/v1/tasks", params={"status": "claimed", "limit": 500}).json()["items"]
    assert [t["node_id"] for t in claimed if t["instance_id"] == started["id"]] == ["review"]

    # a missing required field: the API's problem, with its path, next to the form
    page.get_by_role("button", name="Approve").click()
    problem = page.locator(".task-actions .problem")
    expect(problem).to_contain_text("422")
    expect(problem).to_contain_text("$")
    expect(problem).to_contain_text("cost_center")
    assert acme.get(f"/v1/instances/{started['id']}").json()["status"] == "suspended"

    page.get_by_label("cost_center").fill("CC-42")
    page.get_by_label("Comment").fill("fine by me")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash")).to_contain_text(f"{task_name}” completed: approved")
    expect(page.get_by_role("heading", name="Task inbox")).to_be_visible()
    expect(page.locator("tr", has_text=task_name)).to_have_count(0)  # the list refreshed

    # Instances: filtered by definition, completed, with its history and the decision
    wait_for_status(acme, started["id"], "completed")
    page.get_by_role("link", name="Instances").click()
    page.get_by_label("Definition").fill(name)
    page.get_by_role("button", name="Apply").click()
    listed = page.locator("tr", has_text=name)
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("completed")
    listed.get_by_role("link").click()
    expect(page.locator("#instance-status")).to_have_text("completed")
    expect(page.locator("#instance-variables")).to_contain_text("CC-42")
    expect(page.locator("#instance-variables")).to_contain_text('"approved"')
    events = page.locator("#history .event-type")
    expect(events.first).to_be_visible()
    types = events.all_text_contents()
    stored = [e["type"] for e in acme.get(f"/v1/instances/{started['id']}/history").json()["items"]]
    assert types == stored
    assert any("TaskCompleted" in t for t in types), types


def test_a_bad_form_value_shows_the_problem_with_its_path_and_the_task_stays_open(
    page: Page, acme: httpx.Client
) -> None:
    name, task_name = unique("console-form"), unique("Fill profile")
    publish(acme, user_task_definition(name, task_name))
    started = start(acme, name, input={"note": "plain"})
    sign_in(page)
    # the inbox's filters are the API's: a role nobody has lists nothing, `hr` the task
    page.get_by_label("Candidate role").fill(unique("nobody"))
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No tasks match these filters.")).to_be_visible()
    page.get_by_label("Candidate role").fill("hr")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, exact=True)).to_be_visible()
    labels = page.locator(".form-fields label").all_text_contents()
    assert labels == ["full_name *", "age"]  # required first

    page.get_by_label("full_name").fill("Ada Lovelace")
    page.get_by_label("age").fill("12")
    page.get_by_role("button", name="Complete: submitted").click()
    problem = page.locator(".task-actions .problem")
    expect(problem).to_contain_text("422")
    expect(problem.locator(".problem-path")).to_have_text(["$.age"])
    expect(problem).to_contain_text("18")
    task = next(
        t
        for t in acme.get("/v1/tasks", params={"limit": 500}).json()["items"]
        if t["instance_id"] == started["id"]
    )
    assert task["status"] == "open"

    # fixed: the task completes with the outcome of the button pressed
    page.get_by_label("age").fill("36")
    page.get_by_role("button", name="Complete: submitted").click()
    expect(page.locator(".flash")).to_contain_text("completed: submitted")
    done = wait_for_status(acme, started["id"], "completed")
    assert done["variables"]["profile"]["data"] == {"full_name": "Ada Lovelace", "age": 36}
    assert done["variables"]["profile"]["outcome"] == "submitted"


def test_a_viewer_sees_the_refusal_next_to_the_form(page: Page, acme: httpx.Client) -> None:
    name, task_name = unique("console-viewer"), unique("Approve as viewer")
    publish(acme, approval_definition(name, task_name))
    started = start(acme, name)
    sign_in(page, "k-acme-viewer")
    open_task_row(page, task_name)
    page.get_by_label("cost_center").fill("CC-1")
    page.get_by_role("button", name="Approve").click()
    problem = page.locator(".task-actions .problem")
    expect(problem).to_contain_text("403")
    expect(problem).to_contain_text("operator")
    assert acme.get(f"/v1/instances/{started['id']}").json()["status"] == "suspended"


def test_a_task_is_delegated_then_withdrawn(page: Page, acme: httpx.Client) -> None:
    name, task_name = unique("console-delegate"), unique("Hand over")
    publish(acme, approval_definition(name, task_name))
    started = start(acme, name)
    sign_in(page)
    open_task_row(page, task_name)
    page.get_by_text("Delegate or withdraw").click()
    page.get_by_label("Delegate to").fill("bob")
    page.get_by_role("button", name="Delegate", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("Task delegated to bob.")
    expect(page.locator(".facts")).to_contain_text("bob")

    page.get_by_text("Delegate or withdraw").click()
    page.get_by_label("Withdraw reason").fill("no longer needed")
    page.get_by_role("button", name="Withdraw task").click()
    expect(page.locator(".flash")).to_contain_text("Task withdrawn.")
    expect(page.get_by_role("heading", name="Task inbox")).to_be_visible()
    tasks = acme.get("/v1/tasks", params={"status": "cancelled", "limit": 500}).json()["items"]
    assert [t["assignee"] for t in tasks if t["instance_id"] == started["id"]] == ["bob"]


def test_names_and_variables_with_markup_render_as_text(page: Page, acme: httpx.Client) -> None:
    name = unique("console-xss")
    publish(acme, user_task_definition(name, XSS))
    started = start(acme, name, input={"note": XSS})
    sign_in(page)
    page.goto("/console#/inbox")
    link = page.get_by_role("link", name=XSS, exact=True).first
    expect(link).to_have_text(XSS)
    link.click()
    expect(page.get_by_role("heading", name=XSS, exact=True)).to_be_visible()

    page.goto(f"/console#/instances/{started['id']}")
    expect(page.locator("#instance-variables")).to_contain_text(XSS.replace('"', '\\"'))
    # the markup is text, not an element: no <img> anywhere, the handler never ran
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None
    # negative control: the same string, rendered as HTML in a page without the console's
    # CSP, is an element and its handler runs (so the checks above can fail)
    bare = page.context.new_page()
    bare.set_content(f"<div>{XSS}</div>")
    assert bare.locator("img").count() == 1
    bare.wait_for_function("window.__xss === 'fired'")
    bare.close()


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
