"""Signed approve/reject links end to end: `waymark serve`, a real local SMTP server, an
approval whose `notify.created` e-mail carries `{{ task.approve_url }}` and
`{{ task.reject_url }}`. GET shows a form and changes nothing; POST decides once (409 after);
a tampered token is a 401 problem; an expired link 410 (a server with a 1 s expiry)."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    instance,
    is_problem,
    open_tasks,
    publish,
    server_env,
    serving,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.smtp_server import Received, SmtpServer, smtp_server

pytestmark = pytest.mark.e2e

PUBLIC_URL = "https://waymark.example"
LINK = re.compile(r"(?P<decision>Approve|Reject|Task): (?P<url>\S+)")


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


def _env(database_url: str, workdir: Path, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    connections = {
        "acme": {
            "mail": {
                "type": "smtp",
                "host": smtp.host,
                "port": smtp.port,
                "security": "none",
                "from": "Waymark <noreply@acme.example>",
            }
        }
    }
    path = workdir / "connections.json"
    path.write_text(json.dumps(connections))
    return server_env(
        database_url,
        workdir,
        WAYMARK_CONNECTIONS_FILE=str(path),
        WAYMARK_PUBLIC_URL=PUBLIC_URL,
        **extra,
    )


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-links")
    with serving(_env(module_database_url, workdir, smtp), workdir) as running:
        yield running


def approval(name: str, **node: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "approve",
                "type": "approval",
                "approver_role": "managers",
                "result_var": "decision",
                **node,
                "notify": {
                    "created": {
                        "type": "email",
                        "connection": "mail",
                        "to": "boss@acme.example",
                        "subject": "Decide {{ input.ref }}",
                        "text": "Approve: {{ task.approve_url }}\nReject: {{ task.reject_url }}"
                        "\nTask: {{ task.url }}\n",
                    }
                },
            },
            {"id": "done", "type": "end", "output": {"by": "vars.decision.by"}},
            {"id": "no", "type": "end", "status": "failed"},
        ],
        "routes": [
            {"from": "approve", "to": "done", "outcome": "approved"},
            {"from": "approve", "to": "no", "outcome": "rejected"},
        ],
    }


def mailed_links(smtp: SmtpServer, ref: str) -> dict[str, str]:
    """The mail's links by name (`Approve`, `Reject`, `Task`), as paths on our server."""

    def probe() -> list[Received]:
        return [m for m in smtp.received() if m.message["Subject"] == f"Decide {ref}"]

    (mail,) = wait_for(probe, timeout=30, what=f"the mail about {ref}")
    text = mail.message.get_body(("plain",)).get_content()
    links = {m["decision"]: m["url"] for m in LINK.finditer(text)}
    assert set(links) == {"Approve", "Reject", "Task"}, text
    for url in links.values():
        assert url.startswith(PUBLIC_URL + "/v1/"), url  # built from WAYMARK_PUBLIC_URL
    return {k: v.removeprefix(PUBLIC_URL) for k, v in links.items()}


def started_with_links(
    client: httpx.Client, smtp: SmtpServer, name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    ref = unique("ref")
    view = start(client, name, input={"ref": ref})
    return view, mailed_links(smtp, ref)


@pytest.fixture(scope="module")
def definition(server: Server) -> str:
    name = unique("links")
    with server.client("k-acme") as client:
        publish(client, approval(name))
    return name


def test_the_mail_carries_signed_links_and_a_post_approves_once(
    server: Server, acme: httpx.Client, smtp: SmtpServer, definition: str
) -> None:
    view, links = started_with_links(acme, smtp, definition)
    (task,) = open_tasks(acme, view["id"])
    assert links["Task"] == f"/v1/tasks/{task['id']}"
    assert links["Approve"].startswith("/v1/task-links/")
    assert links["Approve"] != links["Reject"]

    # No API key anywhere below: the link is the credential.
    def settled() -> dict[str, Any] | None:  # the notification's result recorded
        now = instance(acme, view["id"])
        return now if all(a["status"] == "completed" for a in now["activities"]) else None

    before = wait_for(settled, what="the notification to be recorded")
    with server.client(None) as browser:
        # GET (what a mail scanner prefetches) shows a form and changes nothing, however often.
        for _ in range(3):
            page = browser.get(links["Approve"])
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert '<form method="post">' in page.text and "Approve" in page.text
        preview = browser.get(links["Approve"], headers={"Accept": "application/json"})
        assert preview.status_code == 200, preview.text
        assert preview.json()["decision"] == "approve"
        assert preview.json()["outcome"] == "approved"
        assert preview.json()["task"]["id"] == task["id"]
        assert [t["id"] for t in open_tasks(acme, view["id"])] == [task["id"]]
        assert instance(acme, view["id"]) == before
        assert before["status"] == "suspended"

        decided = browser.post(links["Approve"], headers={"Accept": "application/json"})
        assert decided.status_code == 200, decided.text
        done = wait_for_status(acme, view["id"], "completed", "failed")
        assert done["status"] == "completed", (done["error"], done["variables"])
        # Completed through the task use case, recorded as the link's role.
        assert done["output"] == {"by": "link:managers"}
        assert done["variables"]["decision"]["outcome"] == "approved"

        # Single use: the same link again, and its GET, are 409; the other link too.
        is_problem(browser.post(links["Approve"]), 409, "task-link-used")
        is_problem(browser.get(links["Approve"]), 409, "task-link-used")
        rejected = browser.post(links["Reject"])
        assert rejected.status_code == 409, rejected.text
        assert instance(acme, view["id"])["status"] == "completed"


def test_a_browser_post_gets_a_page(
    server: Server, acme: httpx.Client, smtp: SmtpServer, definition: str
) -> None:
    view, links = started_with_links(acme, smtp, definition)
    with server.client(None) as browser:
        page = browser.post(links["Reject"], headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert wait_for_status(acme, view["id"], "completed", "failed")["status"] == "failed"


def _swap_decision(token: str) -> str:
    """The reject link's payload rewritten to approve, with the reject link's MAC."""
    payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[3] = "approve"
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return forged.rstrip(b"=").decode() + "." + mac


def test_tampered_tokens_are_401_problems_and_change_nothing(
    server: Server, acme: httpx.Client, smtp: SmtpServer, definition: str
) -> None:
    view, links = started_with_links(acme, smtp, definition)
    token = links["Reject"].removeprefix("/v1/task-links/")
    payload, mac = token.split(".")
    flipped = mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")
    forged = [
        _swap_decision(token),  # reject → approve, the MAC kept
        f"{payload}.{flipped}",
        payload,  # no MAC
        token[:-5],
        "not-a-token",
        "a.b",
    ]
    with server.client(None) as browser:
        for bad in forged:
            for method in ("GET", "POST"):
                response = browser.request(method, f"/v1/task-links/{bad}")
                is_problem(response, 401, "invalid-task-link")
        assert instance(acme, view["id"])["status"] == "suspended"
        assert len(open_tasks(acme, view["id"])) == 1
        # The genuine link still works: the forgeries consumed nothing.
        assert browser.post(links["Reject"]).status_code == 200
    assert wait_for_status(acme, view["id"], "completed", "failed")["status"] == "failed"


def test_two_concurrent_posts_of_one_link_decide_once(
    server: Server, acme: httpx.Client, smtp: SmtpServer, definition: str
) -> None:
    view, links = started_with_links(acme, smtp, definition)
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        with server.client(None) as browser:
            barrier.wait()
            statuses.append(browser.post(links["Approve"]).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200, 409, 409, 409], statuses
    done = wait_for_status(acme, view["id"], "completed", "failed")
    history = acme.get(f"/v1/instances/{view['id']}/history").json()
    events = history["items"] if isinstance(history, dict) else history
    completed = [e for e in events if "TaskCompleted" in json.dumps(e)]
    assert len(completed) == 1, completed
    assert done["status"] == "completed"


def test_an_expired_link_is_gone(
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    smtp: SmtpServer,
    definition: str,
) -> None:
    workdir = tmp_path_factory.mktemp("waymark-links-short")
    env = _env(module_database_url, workdir, smtp, WAYMARK_TASK_LINK_TTL_SECONDS="1")
    with serving(env, workdir) as short, short.client("k-acme") as acme:
        view, links = started_with_links(acme, smtp, definition)
        with short.client(None) as browser:

            def gone() -> httpx.Response | None:
                response = browser.get(links["Approve"])
                return response if response.status_code == 410 else None

            is_problem(
                wait_for(gone, timeout=15, what="the link to expire"), 410, "task-link-expired"
            )
            is_problem(browser.post(links["Approve"]), 410, "task-link-expired")
        assert instance(acme, view["id"])["status"] == "suspended"
        assert len(open_tasks(acme, view["id"])) == 1


def test_a_link_sent_before_a_delegation_no_longer_decides(
    server: Server, acme: httpx.Client, smtp: SmtpServer
) -> None:
    name = unique("links-ann")
    publish(acme, approval(name, assignee="ann"))
    view, links = started_with_links(acme, smtp, name)
    (task,) = open_tasks(acme, view["id"])
    with server.client(None) as browser:
        # Before the delegation Ann's link shows its page; the use is recorded as Ann's.
        assert browser.get(links["Approve"]).status_code == 200
        delegated = acme.post(f"/v1/tasks/{task['id']}/delegate", json={"assignee": "bob"})
        assert delegated.status_code == 200, delegated.text
        for method in ("GET", "POST"):
            response = browser.request(method, links["Approve"])
            is_problem(response, 409, "task-link-superseded")
    assert [t["id"] for t in open_tasks(acme, view["id"])] == [task["id"]]
    # Delegated back to Ann, her link works again, and says who used it.
    assert acme.post(f"/v1/tasks/{task['id']}/delegate", json={"assignee": "ann"}).is_success
    with server.client(None) as browser:
        assert browser.post(links["Approve"]).status_code == 200
    done = wait_for_status(acme, view["id"], "completed", "failed")
    assert done["output"] == {"by": "link:ann"}
