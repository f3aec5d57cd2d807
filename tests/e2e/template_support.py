"""What the template-library scenarios share: a `waymark serve` with the connections the
templates name (a real SMTP server for `mail`, the local target standing in for Slack,
Teams and Twilio), and small helpers to drive tasks, events and sinks."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import (
    Server,
    Target,
    instance,
    open_tasks,
    server_env,
    serving,
    unique,
    wait_for,
    wait_for_status,
)
from tests.smtp_server import Received, SmtpServer

SLACK_TOKEN = "xoxb-templates-0123"  # noqa: S105 - a test value
SLACK_ALERTS_HOOK = "/slack-alerts/T000/B000/hook"
TEAMS_HOOK = "/teams/finance/hook"
SLACK_REPLY = {"ok": True, "channel": "C0CHANGES", "ts": "1700000000.000200"}
SMS_REPLY = {"sid": "SM0042", "status": "queued", "to": "+15557654321"}


def connections_for(target: Target, smtp: SmtpServer) -> dict[str, Any]:
    """The connections every template of the library names, for tenant acme."""
    return {
        "acme": {
            "mail": {
                "type": "smtp",
                "host": smtp.host,
                "port": smtp.port,
                "security": "none",
                "from": "Acme Workflows <workflows@acme.example>",
            },
            "slack": {
                "type": "slack",
                "token": SLACK_TOKEN,
                "base_url": target.base_url + "/slack/api/",
            },
            "slack-alerts": {"type": "slack", "webhook_url": target.base_url + SLACK_ALERTS_HOOK},
            "teams": {"type": "teams", "webhook_url": target.base_url + TEAMS_HOOK},
            "sms": {
                "type": "twilio",
                "account_sid": "AC42",
                "auth_token": "twilio-templates-token",
                "from": "+15550009999",
                "base_url": target.base_url + "/twilio",
            },
        }
    }


@contextlib.contextmanager
def library_server(
    database_url: str, workdir: Path, target: Target, smtp: SmtpServer
) -> Iterator[Server]:
    """`waymark serve` with the library's connections (the module's `server` fixture)."""
    path = workdir / "connections.json"
    path.write_text(json.dumps(connections_for(target, smtp)))
    env = server_env(database_url, workdir, WAYMARK_CONNECTIONS_FILE=str(path))
    target.reply("/slack/api/", SLACK_REPLY)
    target.reply("/twilio/", SMS_REPLY)
    with serving(env, workdir) as running:
        yield running


@dataclass
class Run:
    """One scenario's handles: the API client, the sinks, a unique base URL for its calls."""

    client: httpx.Client
    target: Target
    smtp: SmtpServer
    sink: str  # f"{target.base_url}/<unique>": pass as the template's *_url parameter

    @property
    def sink_path(self) -> str:
        return self.sink.removeprefix(self.target.base_url)

    def calls(self, suffix: str = "") -> list[Any]:
        """Requests the scenario's own sink got under `suffix`."""
        return self.target.received(self.sink_path + suffix)

    def call(self, suffix: str) -> Any:
        """The one request under `suffix` (waits for it: actions run after the commit)."""
        found = wait_for(lambda: self.calls(suffix), what=f"a request to {suffix}")
        assert len(found) == 1, found
        return found[0]

    def mail(self, text: str) -> Received:
        """The one message whose subject contains `text`."""

        def probe() -> list[Received]:
            return [m for m in self.smtp.received() if text in str(m.message["Subject"])]

        found = wait_for(probe, what=f"a mail about {text!r}")
        assert len(found) == 1, [m.message["Subject"] for m in found]
        return found[0]

    def task(self, instance_id: str, node_id: str) -> dict[str, Any]:
        """The open task of `instance_id` at `node_id` (once it is there)."""

        def probe() -> dict[str, Any] | None:
            tasks = [t for t in open_tasks(self.client, instance_id) if t["node_id"] == node_id]
            return tasks[0] if tasks else None

        return wait_for(probe, what=f"a task at {node_id} of {instance_id}")

    def complete(self, instance_id: str, node_id: str, **body: Any) -> dict[str, Any]:
        task = self.task(instance_id, node_id)
        response = self.client.post(f"/v1/tasks/{task['id']}/complete", json=body)
        assert response.status_code == 200, response.text
        return task

    def waiting_at(self, instance_id: str, *node_ids: str) -> dict[str, Any]:
        """The instance once suspended with open bookmarks at exactly `node_ids`."""

        def probe() -> dict[str, Any] | None:
            view = instance(self.client, instance_id)
            at = sorted(b["node_id"] for b in view["bookmarks"])
            return view if view["status"] == "suspended" and at == sorted(node_ids) else None

        return wait_for(probe, what=f"instance {instance_id} waiting at {node_ids}")

    def event(self, event_type: str, correlation: str | None, payload: Any) -> dict[str, Any]:
        body = {"type": event_type, "correlation": correlation, "payload": payload}
        response = self.client.post("/v1/events", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/instances/{instance_id}/history", params={"limit": 500})
        assert response.status_code == 200, response.text
        body = response.json()
        return body["items"] if isinstance(body, dict) else body


def sms_form(recorded: Any) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(recorded.body.decode()))


def new_run(client: httpx.Client, target: Target, smtp: SmtpServer, prefix: str) -> Run:
    return Run(client, target, smtp, f"{target.base_url}/{unique(prefix)}")


Scenario = Callable[[Run], None]


def completed(run: Run, instance_id: str) -> dict[str, Any]:
    view = wait_for_status(run.client, instance_id, "completed", "failed", timeout=30)
    assert view["status"] == "completed", view
    return view


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
