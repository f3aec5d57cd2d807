"""The web console (`/console`, docs/console.md) in a real browser: Debian's Chromium driven
by Playwright, against a real `waymark serve`. Each test does what a person does (sign in,
open the inbox, fill a form, press a button) and asserts what the page then shows. This
module: serving, sign-in, and the people who approve (the inbox and one task);
tests/e2e/test_console_operations.py: the people who operate.

One browser and one server per module; every test opens its own browser context (its own
sessionStorage). A JavaScript error or a Content-Security-Policy violation on a page fails
the test that caused it (tests/e2e/console_support.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.conftest import Server, publish, start, unique, wait_for_status
from tests.e2e.console_support import (  # noqa: F401 - the fixtures console_browser, console_page
    XSS,
    approval_definition,
    console_browser,
    console_page,
    expect,
    open_task_row,
    sign_in,
    user_task_definition,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


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
