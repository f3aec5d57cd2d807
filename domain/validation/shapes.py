"""The shapes the graph checks take (routing.py, splits.py, boundary.py, graph.py): what a
reporter, a node and a route look like to them, as protocols, so each check module depends
on these shapes and not on graph.py's concrete classes."""

from __future__ import annotations

from typing import Any, Protocol

from domain.validation.report import Path


class Reporter(Protocol):  # a domain.validation.report.Report
    def add(self, parts: Path, code: str, message: str) -> None: ...


class Node(Protocol):  # a domain.validation.graph.GraphNode
    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    @property
    def label(self) -> str: ...
    @property
    def path(self) -> Path: ...


class Edge(Protocol):  # a domain.validation.graph._Edge
    @property
    def index(self) -> int: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str | None: ...
    @property
    def target(self) -> str | None: ...
