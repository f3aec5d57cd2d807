"""The `teams` action: a message to a Microsoft Teams incoming webhook (httpx).

The connection (`type: teams`) holds `webhook_url` (an Office 365 connector or a Workflows
webhook URL; it is a secret). The action holds either `card` — an Adaptive Card
(`{"type": "AdaptiveCard", ...}`, wrapped in the `message` attachment envelope Teams
expects), or a complete body (a `MessageCard`, or a `message` with attachments) sent as is —
or `text` with an optional `title` and `theme_color`, sent as a MessageCard.

Teams webhooks take no idempotency key; the SPEC §3 key is sent as `Idempotency-Key` anyway
(proxies and the test server see it). The result is `{status, body}`.
"""

from __future__ import annotations

from typing import Any

import httpx

from application.connections import Connection
from application.ports import ActionResult
from infrastructure.actions import outbound
from infrastructure.actions.clients import PooledClient
from infrastructure.actions.http import DEFAULT_TIMEOUT_SECONDS

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def teams_body(action: dict[str, Any]) -> dict[str, Any]:
    card = action.get("card")
    if isinstance(card, dict):
        if card.get("type") == "AdaptiveCard":
            return {
                "type": "message",
                "attachments": [
                    {"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}
                ],
            }
        return card  # a MessageCard or a complete message: the author's own body
    text = str(action.get("text") or "")
    body: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": str(action.get("title") or text[:80]),
        "text": text,
    }
    if action.get("title"):
        body["title"] = str(action["title"])
    if action.get("theme_color"):
        body["themeColor"] = str(action["theme_color"])
    return body


class TeamsAction:
    """`{"type": "teams", "connection", "text"|"card", "title", "theme_color"}`."""

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self._client = PooledClient(transport)

    def __call__(
        self,
        action: dict[str, Any],
        idempotency_key: str,
        timeout: float,
        connection: Connection,
    ) -> ActionResult:
        url = str(connection.get("webhook_url"))
        try:
            outbound.check_url(url)
        except Exception as exc:
            return ActionResult(ok=False, error=f"outbound call refused: {exc}", retryable=False)
        seconds = float(timeout or DEFAULT_TIMEOUT_SECONDS)
        where = f"the Teams webhook of connection {connection.name!r}"  # the URL is a secret
        try:
            response = self._client.get().post(
                url,
                json=teams_body(action),
                headers={"Idempotency-Key": idempotency_key},
                timeout=httpx.Timeout(seconds),
            )
        except httpx.TimeoutException:
            return ActionResult(ok=False, error=f"timed out after {seconds:g} s calling {where}")
        except httpx.HTTPError as exc:
            return ActionResult(ok=False, error=f"cannot reach {where}: {type(exc).__name__}")
        status = response.status_code
        if 200 <= status < 300:
            return ActionResult(ok=True, output={"status": status, "body": response.text})
        return ActionResult(
            ok=False,
            error=f"HTTP {status} from {where}: {response.text[:200]}",
            retryable=status >= 500 or status in (408, 429),
        )

    def close(self) -> None:
        self._client.close()
