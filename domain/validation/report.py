"""Collecting validation problems: `Problem`, the `Report` that gathers them, message helpers.

A problem's path is the JSON path of the offending part (`$.nodes[2].action.url`); problems
come out de-duplicated and ordered by where their path appears in the document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Problem:
    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class Report:
    def __init__(self, document: Any) -> None:
        self.document = document
        self._items: list[tuple[Path, str, str]] = []

    def add(self, parts: Path, code: str, message: str) -> None:
        self._items.append((tuple(parts), code, message))

    def about(self, parts: Path, code: str, text: str) -> None:
        """Report `text` about the part at `parts`, prefixed by what that part is."""
        self.add(parts, code, f"{self.where(parts)}: {text}")

    def where(self, parts: Path) -> str:
        """`node 'notify' field 'action.url'`, `route #3 (a -> b)`, `field 'triggers[0]'`."""
        if len(parts) >= 2 and parts[0] in ("nodes", "routes") and isinstance(parts[1], int):
            base, rest = self._label(str(parts[0]), parts[1]), parts[2:]
        else:
            base, rest = "definition", parts
        return f"{base} field '{_dotted(rest)}'" if rest else base

    def _label(self, kind: str, index: int) -> str:
        items = self.document.get(kind)
        item = items[index] if isinstance(items, list) and index < len(items) else None
        item = item if isinstance(item, dict) else {}
        if kind == "nodes":
            node_id = item.get("id")
            return f"node '{node_id}'" if isinstance(node_id, str) else f"node #{index}"
        source, target = item.get("from"), item.get("to")
        if isinstance(source, str) and isinstance(target, str):
            return f"route #{index} ({source} -> {target})"
        return f"route #{index}"

    def problems(self) -> list[Problem]:
        unique = list(dict.fromkeys(self._items))  # de-duplicated, first occurrence kept
        unique.sort(key=lambda item: _position(self.document, item[0]))  # stable
        return [Problem(_render(parts), code, message) for parts, code, message in unique]


def _render(parts: Path) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _dotted(parts: Path) -> str:
    return _render(parts)[1:].lstrip(".")


def _position(document: Any, parts: Path) -> tuple[int, ...]:
    """Where `parts` appears in the document; a missing key sorts after its siblings."""
    key: list[int] = []
    current = document
    for part in parts:
        if isinstance(current, dict):
            keys = list(current)
            key.append(keys.index(part) if part in current else len(keys))
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            key.append(part)
            current = current[part] if 0 <= part < len(current) else None
        else:
            key.append(0)
            current = None
    return tuple(key)


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    """The JSON name of a value's type: null, boolean, number, string, object, array."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", dict: "object", list: "array"}
    return names.get(type(value), type(value).__name__)
