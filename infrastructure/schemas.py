"""JSON Schema checks (Draft 2020-12) for input schemas and task forms."""

from __future__ import annotations

import json
import threading
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


class JsonSchemaValidator:
    """SchemaValidator backed by `jsonschema`; compiled validators are cached per schema."""

    def __init__(self, max_cached: int = 1024):
        self._cache: dict[str, Draft202012Validator | list[str]] = {}
        self._max_cached = max_cached
        # The API and the workers share one instance across threads.
        self._lock = threading.Lock()

    def check_schema(self, schema: dict[str, Any]) -> list[str]:
        if not isinstance(schema, dict | bool):
            return [f"a JSON Schema must be an object or a boolean, got {type(schema).__name__}"]
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            # check_schema raises only the "best" error; report every one instead.
            meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
            return [
                f"{error.json_path}: {error.message}"
                for error in sorted(meta.iter_errors(schema), key=_error_order)
            ] or ["invalid JSON Schema"]
        return []

    def validate(self, schema: dict[str, Any], data: Any) -> list[tuple[str, str]]:
        validator = self._validator(schema)
        if isinstance(validator, list):
            # Schemas are checked when published, so this is a stored schema gone bad: refuse
            # the data rather than raise from deep inside jsonschema.
            return [("$", f"the schema is invalid: {problem}") for problem in validator]
        return [
            (error.json_path, error.message)
            for error in sorted(validator.iter_errors(data), key=_error_order)
        ]

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator | list[str]:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            validator = self._cache.get(key)
            if validator is None:
                if len(self._cache) >= self._max_cached:
                    self._cache.clear()  # crude bound: schemas are few, this rarely triggers
                problems = self.check_schema(schema)
                # `format` (email, date, ...) is asserted, not just annotated: forms rely on it.
                validator = problems or Draft202012Validator(
                    schema, format_checker=Draft202012Validator.FORMAT_CHECKER
                )
                self._cache[key] = validator
            return validator


def _error_order(error: Any) -> tuple[str, str]:
    return (error.json_path, error.message)
