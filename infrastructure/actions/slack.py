"""The `slack` action: a message by `chat.postMessage` (bot token) or an incoming webhook.

Built on `slack-sdk` (`WebClient`, `WebhookClient`). The connection (`type: slack`) holds
either `token` (a bot token, `xoxb-...`; optional `channel` default and `base_url`, default
`https://slack.com/api/`) or `webhook_url`. The action holds `text` and/or `blocks`, and
`channel` and `thread_ts` for the bot-token variant.

Slack's API takes no idempotency key: the SPEC §3 key goes out as an `X-Idempotency-Key`
header (a proxy or a fake server can deduplicate on it; Slack ignores it), so a worker
crashing between posting and recording may post the same message twice.

The SDK's own connection-error retries are off: retries within an attempt and across
attempts are Waymark's (the node's retry policy). Redirects are not followed
(`slack_clients.py`): a `3xx` answer fails the attempt, not retryable, naming the `Location`.
"""

from __future__ import annotations

from typing import Any
from urllib.error import URLError

from slack_sdk.errors import SlackApiError, SlackRequestError

from application.connections import Connection
from application.ports import ActionResult
from infrastructure.actions import outbound
from infrastructure.actions.http import DEFAULT_TIMEOUT_SECONDS
from infrastructure.actions.slack_clients import (
    NoRedirectWebClient,
    NoRedirectWebhookClient,
    SlackRedirectRefusedError,
)

DEFAULT_BASE_URL = "https://slack.com/api/"
# Slack's error codes that a later try may not meet.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "service_unavailable", "request_timeout", "fatal_error"}
)


class SlackAction:
    """`{"type": "slack", "connection", "text"|"blocks", "channel", "thread_ts"}`."""

    def __call__(
        self,
        action: dict[str, Any],
        idempotency_key: str,
        timeout: float,
        connection: Connection,
    ) -> ActionResult:
        seconds = max(1, round(float(timeout or DEFAULT_TIMEOUT_SECONDS)))
        headers = {"X-Idempotency-Key": idempotency_key}
        message: dict[str, Any] = {}
        if action.get("text") is not None:
            message["text"] = str(action["text"])
        if action.get("blocks") is not None:
            message["blocks"] = action["blocks"]
        if not message:
            return _failure("slack action needs 'text' or 'blocks'", retryable=False)
        if connection.get("webhook_url") and not connection.get("token"):
            return self._webhook(str(connection.get("webhook_url")), message, headers, seconds)
        return self._post(action, connection, message, headers, seconds)

    def _post(
        self,
        action: dict[str, Any],
        connection: Connection,
        message: dict[str, Any],
        headers: dict[str, str],
        seconds: int,
    ) -> ActionResult:
        channel = action.get("channel") or connection.get("channel")
        if not channel:
            return _failure(
                f"slack action needs a 'channel' (connection {connection.name!r} has no default)",
                retryable=False,
            )
        base_url = str(connection.get("base_url") or DEFAULT_BASE_URL)
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        refused = _refused(base_url + "chat.postMessage")
        if refused:
            return refused
        client = NoRedirectWebClient(
            token=str(connection.get("token")),
            base_url=base_url,
            timeout=seconds,
            headers=headers,
            retry_handlers=[],
        )
        if action.get("thread_ts"):
            message["thread_ts"] = str(action["thread_ts"])
        try:
            response = client.chat_postMessage(channel=str(channel), **message)
        except SlackRedirectRefusedError as exc:
            return _failure(f"Slack chat.postMessage at {base_url}: {exc}", retryable=False)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            status = exc.response.status_code
            transient = error in _TRANSIENT_ERRORS or status == 429 or status >= 500
            return _failure(f"Slack chat.postMessage failed: HTTP {status} {error}", transient)
        except (SlackRequestError, URLError, OSError) as exc:
            return _failure(f"cannot reach Slack at {base_url}: {type(exc).__name__}: {exc}")
        return ActionResult(
            ok=True,
            output={"ok": True, "channel": response.get("channel"), "ts": response.get("ts")},
        )

    def _webhook(
        self, url: str, message: dict[str, Any], headers: dict[str, str], seconds: int
    ) -> ActionResult:
        refused = _refused(url)
        if refused:
            return refused
        client = NoRedirectWebhookClient(
            url, timeout=seconds, default_headers=headers, retry_handlers=[]
        )
        try:
            response = client.send(**message)
        except SlackRedirectRefusedError as exc:
            return _failure(f"the Slack webhook answered with a redirect: {exc}", retryable=False)
        except (URLError, OSError) as exc:
            return _failure(f"cannot reach the Slack webhook: {type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return ActionResult(ok=True, output={"status": status, "body": response.body})
        transient = status == 429 or status >= 500
        return _failure(
            f"the Slack webhook answered HTTP {status}: {response.body[:200]}", transient
        )


def _refused(url: str) -> ActionResult | None:
    try:
        outbound.check_url(url)
    except Exception as exc:
        return _failure(f"outbound call refused: {exc}", retryable=False)
    return None


def _failure(message: str, retryable: bool = True) -> ActionResult:
    return ActionResult(ok=False, error=message, retryable=retryable)
