"""Publish-time validation of a definition document: every problem at once, each with the
JSON path of the offending part and a stable code."""

from domain.validation.report import Problem
from domain.validation.validator import validate_document

__all__ = ["Problem", "validate_document"]
