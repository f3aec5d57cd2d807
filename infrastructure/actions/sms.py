"""The `sms` action: one text message through a Twilio-compatible REST API (httpx).

The connection (`type: twilio`) holds `account_sid`, `auth_token`, `from` (the sending
number or messaging service) and optionally `base_url` (default `https://api.twilio.com`;
any provider speaking Twilio's Messages API, or a local test server). The action holds `to`,
`body` and optionally `from`.

The request is `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json` (form-encoded
`To`, `From`, `Body`; HTTP Basic auth with the SID and token), carrying the SPEC §3
idempotency key as `I-Twilio-Idempotency-Token` (Twilio's) and `Idempotency-Key`. The
result is `{sid, status, to}` from the provider's answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from application.connections import Connection
from application.ports import ActionResult
from infrastructure.actions import outbound
from infrastructure.actions.clients import PooledClient
from infrastructure.actions.http import DEFAULT_TIMEOUT_SECONDS

DEFAULT_BASE_URL = "https://api.twilio.com"


class SmsAction:
    """`{"type": "sms", "connection", "to", "body", "from"}`."""

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self._client = PooledClient(transport)

    def __call__(
        self,
        action: dict[str, Any],
        idempotency_key: str,
        timeout: float,
        connection: Connection,
    ) -> ActionResult:
        sid = str(connection.get("account_sid"))
        base_url = str(connection.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        url = f"{base_url}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        try:
            outbound.check_url(url)
        except Exception as exc:
            return ActionResult(ok=False, error=f"outbound call refused: {exc}", retryable=False)
        sender = action.get("from") or connection.get("from")
        form = {
            "To": str(action.get("to") or ""),
            "From": str(sender),
            "Body": str(action.get("body") or ""),
        }
        seconds = float(timeout or DEFAULT_TIMEOUT_SECONDS)
        where = f"the SMS provider at {base_url} (connection {connection.name!r})"
        try:
            response = self._client.get().post(
                url,
                data=form,
                auth=(sid, str(connection.get("auth_token"))),
                headers={
                    "I-Twilio-Idempotency-Token": idempotency_key,
                    "Idempotency-Key": idempotency_key,
                },
                timeout=httpx.Timeout(seconds),
            )
        except httpx.TimeoutException:
            return ActionResult(ok=False, error=f"timed out after {seconds:g} s calling {where}")
        except httpx.HTTPError as exc:
            return ActionResult(
                ok=False, error=f"cannot reach {where}: {type(exc).__name__}: {exc}"
            )
        status = response.status_code
        try:
            answer: Any = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if 200 <= status < 300:
            return ActionResult(
                ok=True,
                output={
                    "sid": answer.get("sid"),
                    "status": answer.get("status"),
                    "to": answer.get("to", form["To"]),
                },
            )
        detail = answer.get("message") or response.text[:200]
        detail = detail if isinstance(detail, str) else json.dumps(detail)
        return ActionResult(
            ok=False,
            error=f"HTTP {status} from {where}: {detail}",
            retryable=status >= 500 or status in (408, 429),
        )

    def close(self) -> None:
        self._client.close()
