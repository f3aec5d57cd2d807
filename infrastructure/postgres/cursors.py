"""Opaque keyset-pagination cursors: the sort key of a page's last row, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

MAX_LIMIT = 500


class InvalidCursorError(ValueError):
    """The cursor was not produced by this API (or was tampered with)."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor[:40]!r}")
        self.cursor = cursor


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def encode_cursor(kind: str, *key: Any) -> str:
    """`kind` names the list, so a tasks cursor is refused by the instance list."""
    values = [_encode_value(v) for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    """The key values of `cursor` (datetimes and UUIDs as strings, for SQL casts)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursorError(cursor) from error
    if not isinstance(decoded, list) or not decoded or decoded[0] != kind:
        raise InvalidCursorError(cursor)
    return decoded[1:]


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
