"""Opaque keyset-pagination cursors: the sort key of a page's last row, base64url JSON,
signed (HMAC-SHA256 with the server's cursor secret) so that an altered or hand-made cursor
is refused (`InvalidCursorError`, 400) instead of steering the query.

Format: `<base64url JSON [kind, *key]>.<base64url first 16 bytes of the HMAC>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from application.errors import InvalidCursorError
from application.read_models import Page

__all__ = ["clamp_limit", "decode_cursor", "encode_cursor"]

MAX_LIMIT = 500
SIGNATURE_BYTES = 16


def new_cursor_secret() -> bytes:
    """A random key: cursors then only work with the object that made them (tests, tools)."""
    return os.urandom(32)


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def encode_cursor(kind: str, *key: Any, secret: bytes) -> str:
    """`kind` names the list, so a tasks cursor is refused by the instance list."""
    values = [_encode_value(v) for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    payload = _b64(raw)
    return f"{payload}.{_b64(_signature(secret, payload))}"


def decode_cursor(kind: str, cursor: str, *, size: int, secret: bytes) -> list[Any]:
    """The `size` key values of `cursor` (datetimes and UUIDs still as strings)."""
    payload, _, signature = cursor.rpartition(".")
    try:
        signed = hmac.compare_digest(_unb64(signature), _signature(secret, payload))
        if not signed:
            raise InvalidCursorError(cursor)
        decoded = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursorError(cursor) from error
    if not isinstance(decoded, list) or len(decoded) != size + 1 or decoded[0] != kind:
        raise InvalidCursorError(cursor)
    # Every key we encode is a string (a timestamp, a UUID, a name) or null: anything else,
    # or a string PostgreSQL cannot take (NUL), is an altered cursor, not a query to run.
    values = decoded[1:]
    for value in values:
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise InvalidCursorError(cursor)
    return values


def _signature(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, payload.encode("ascii", "replace"), hashlib.sha256).digest()[
        :SIGNATURE_BYTES
    ]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def parse_datetime(cursor: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as error:
        raise InvalidCursorError(cursor) from error


def parse_uuid(cursor: str, value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError as error:
        raise InvalidCursorError(cursor) from error


def page_of(rows: list[Any], limit: int, cursor_of: Callable[[Any], str]) -> Page:
    """A page of `limit` rows; the one extra row fetched tells whether another page exists."""
    if len(rows) > limit:
        items = rows[:limit]
        return Page(items=items, next_cursor=cursor_of(items[-1]))
    return Page(items=rows, next_cursor=None)
