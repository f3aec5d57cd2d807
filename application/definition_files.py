"""Definitions kept as files (GitOps): validate a folder of them, publish the changed ones.

`apply` publishes a file's definition only when it differs from the latest published
version of its name (compared as JSON documents), so running it twice publishes nothing the
second time. It validates every file first and publishes nothing when any has a problem:
a folder is applied whole or not at all (up to the publishing itself, one definition at a
time; a failure midway leaves the earlier ones published, and a rerun skips them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from application.definitions import DefinitionService
from domain.validation import Problem


@dataclass(frozen=True)
class DefinitionFile:
    """One file's content: its document, or why it could not be read as one."""

    path: str
    document: Any = None
    read_error: str | None = None  # unreadable, not JSON/YAML, or not JSON-compatible


@dataclass(frozen=True)
class FileProblem:
    path: str  # the file
    problem: Problem  # with the JSON path inside the document

    def __str__(self) -> str:
        p = self.problem
        return f"{self.path}: {p.path}: {p.message} ({p.code})"


@dataclass(frozen=True)
class Applied:
    path: str
    name: str
    version: int
    action: str  # "published" (new name), "updated" (a new version), "unchanged"


@dataclass
class ApplyReport:
    problems: list[FileProblem] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class DefinitionFiles:
    """`waymark definitions validate` and `apply` over already-read files."""

    def __init__(self, definitions: DefinitionService):
        self.definitions = definitions

    def validate(self, files: list[DefinitionFile]) -> list[FileProblem]:
        """Every problem of every file (and names used by two files)."""
        problems: list[FileProblem] = []
        names: dict[str, str] = {}
        for file in files:
            if file.read_error is not None:
                problems.append(FileProblem(file.path, Problem("$", "unreadable", file.read_error)))
                continue
            problems.extend(
                FileProblem(file.path, p) for p in self.definitions.validate(file.document)
            )
            name = file.document.get("name") if isinstance(file.document, dict) else None
            if isinstance(name, str):
                if name in names:
                    message = f"definition {name!r} is also defined in {names[name]}"
                    problems.append(
                        FileProblem(file.path, Problem("$.name", "duplicate_name", message))
                    )
                names.setdefault(name, file.path)
        return problems

    def apply(self, tenant: str, files: list[DefinitionFile]) -> ApplyReport:
        """Validate all, then publish each changed definition for `tenant`."""
        report = ApplyReport(problems=self.validate(files))
        if not report.ok:
            return report
        for file in files:
            document = file.document
            name = document["name"]
            latest = self.definitions.store.get(tenant, name, None)
            if latest is not None and latest.document == document:
                report.applied.append(Applied(file.path, name, latest.version, "unchanged"))
                continue
            published = self.definitions.publish(tenant, document)
            action = "published" if latest is None else "updated"
            report.applied.append(Applied(file.path, name, published.version, action))
        return report
