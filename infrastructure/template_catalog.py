"""The template library shipped as package data: `infrastructure/templates/*.json`."""

from __future__ import annotations

import builtins
import json
import threading
from importlib import resources
from typing import Any

from application.templates import Template

TEMPLATES_PACKAGE = "infrastructure.templates"
_FIELDS = ("id", "name", "description", "category", "parameters", "definition")


class TemplateFileError(Exception):
    """A shipped template file is malformed (a packaging bug, caught by the unit tests)."""

    def __init__(self, file_name: str, reason: str):
        super().__init__(f"template file {file_name}: {reason}")
        self.file_name = file_name


class PackagedTemplateCatalog:
    """TemplateCatalog reading the JSON files of a package once, on first use."""

    def __init__(self, package: str = TEMPLATES_PACKAGE):
        self.package = package
        self._templates: dict[str, Template] | None = None
        self._lock = threading.Lock()

    def list(self) -> builtins.list[Template]:
        return list(self._loaded().values())

    def get(self, template_id: str) -> Template | None:
        return self._loaded().get(template_id)

    def _loaded(self) -> dict[str, Template]:
        with self._lock:
            if self._templates is None:
                self._templates = self._load()
            return self._templates

    def _load(self) -> dict[str, Template]:
        files = [
            entry
            for entry in resources.files(self.package).iterdir()
            if entry.is_file() and entry.name.endswith(".json")
        ]
        templates = [_parse(entry.name, json.loads(entry.read_text("utf-8"))) for entry in files]
        return {t.id: t for t in sorted(templates, key=lambda t: t.id)}


def _parse(file_name: str, raw: Any) -> Template:
    if not isinstance(raw, dict):
        raise TemplateFileError(file_name, "expected a JSON object")
    missing = [f for f in _FIELDS if f not in raw]
    if missing:
        raise TemplateFileError(file_name, f"missing field(s) {', '.join(missing)}")
    # The file name is the id, so two files can never claim one id.
    if f"{raw['id']}.json" != file_name:
        raise TemplateFileError(file_name, f"id {raw['id']!r} does not match the file name")
    if not isinstance(raw["definition"], dict) or not isinstance(raw["parameters"], list):
        raise TemplateFileError(file_name, "'definition' must be an object, 'parameters' a list")
    return Template(
        id=raw["id"],
        name=raw["name"],
        description=raw["description"],
        category=raw["category"],
        parameters=raw["parameters"],
        definition=raw["definition"],
    )
