"""The expression sandbox: conditions, mappings and `{{ }}` templates, evaluated by an AST
interpreter of our own with step, size and depth limits (never Python `eval`)."""

from domain.expressions.evaluator import (
    compile_expression,
    evaluate,
    evaluate_mapping,
    render_value,
    template_expressions,
)
from domain.expressions.limits import ExpressionError

__all__ = [
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_mapping",
    "render_value",
    "template_expressions",
]
