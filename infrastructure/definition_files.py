"""Reading workflow definitions from JSON and YAML files (`waymark definitions ...`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml  # no stubs installed (types-PyYAML)

from application.definition_files import DefinitionFile

SUFFIXES = (".json", ".yaml", ".yml")


def definition_paths(path: Path) -> list[Path]:
    """`path` itself when it is a file, else every JSON/YAML file under it, sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_definition_files(path: Path) -> list[DefinitionFile]:
    """Each file's document, or why it is not one (never raises for a bad file)."""
    return [read_definition_file(p) for p in definition_paths(path)]


def read_definition_file(path: Path) -> DefinitionFile:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return DefinitionFile(name, read_error=f"cannot read the file: {exc}")
    is_json = path.suffix.lower() == ".json"
    try:
        document = json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if is_json else "YAML"
        return DefinitionFile(name, read_error=f"not valid {kind}: {_one_line(exc)}")
    try:
        # What the database stores and compares: JSON values only (YAML may hold dates).
        document = json.loads(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return DefinitionFile(name, read_error=f"not JSON-compatible: {exc}")
    return DefinitionFile(name, document=document)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
