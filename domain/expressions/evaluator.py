"""Sandboxed expressions for workflow conditions, input mappings and `{{ }}` templates.

The language is a small, safe subset of Python expression syntax over JSON-like data. Source
is parsed with `ast.parse(mode="eval")`, checked against a whitelist once (compile time) and
then interpreted by walking the AST; nothing is ever handed to eval, exec or compile.

This replaces simpleeval: simpleeval 1.0.8 spends about 7 s of CPU on
`(9**4000000)*(9**4000000)` and has no step limit. Here every operation that could blow up
(`**`, `*`, `+`, repetition) is checked *before* it runs, and the limits bound every
evaluation. Any failure is an ExpressionError; no other exception escapes `evaluate`.

This module is the interpreter and the public face of the language; the parts live in
`expression_limits` (limits, ExpressionError, size guards), `expression_functions` (the
built-in function table), `expression_syntax` (whitelist and compiler) and
`expression_templates` (splitting and formatting `{{ }}` templates).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any, cast

from domain.expressions.functions import FUNCTIONS
from domain.expressions.limits import (
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_INT_STRING,
    MAX_LENGTH,
    MAX_NODES,
    MAX_ROUND_DIGITS,
    MAX_SOURCE_LENGTH,
    MAX_STEPS,
    ExpressionError,
    charge_repetition,
    checked,
    precheck,
)
from domain.expressions.syntax import (
    OPERATORS,
    CompiledExpression,
    compile_expression,
    node_problem,
)
from domain.expressions.templates import format_value, split_template, template_expressions

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_INT_STRING",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_ROUND_DIGITS",
    "MAX_SOURCE_LENGTH",
    "MAX_STEPS",
    "CompiledExpression",
    "ExpressionError",
    "compile_expression",
    "evaluate",
    "evaluate_mapping",
    "render_template",
    "render_value",
    "template_expressions",
]

_ALIASES = {"true": True, "false": False, "null": None}
_DISPLAYS: dict[type, Callable[[Any], Any]] = {ast.List: list, ast.Tuple: tuple, ast.Set: set}


def _apply(symbol: str, func: Callable[..., Any], *operands: Any) -> Any:
    try:
        return func(*operands)
    except TypeError:
        names = " and ".join(f"'{type(operand).__name__}'" for operand in operands)
        raise ExpressionError(f"unsupported operand types for {symbol}: {names}") from None
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except OverflowError:
        raise ExpressionError(f"numeric overflow in '{symbol}'") from None


def _describe(node: ast.AST) -> str:
    """A readable path for error messages, e.g. `nodes.check.result`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_describe(node.value)}.{node.attr}"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return f"{_describe(node.value)}[{node.slice.value!r}]"
    return "value"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Interpreter:
    """Walks one whitelisted tree against a context, counting steps."""

    def __init__(self, context: Mapping[str, Any]):
        self.context = context
        self.steps = 0
        self.repeated = 0  # elements produced by `*` repetition so far

    def visit(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExpressionError(f"evaluation exceeded {MAX_STEPS} steps")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in _ALIASES:
                return _ALIASES[node.id]
            if node.id.startswith("_") or node.id not in self.context:
                raise ExpressionError(f"unknown name '{node.id}'")
            return self.context[node.id]
        if type(node) in _DISPLAYS:
            display = cast("ast.List | ast.Tuple | ast.Set", node)
            return _DISPLAYS[type(node)]([self.visit(item) for item in display.elts])
        if isinstance(node, ast.Dict):
            # A None key (`**` unpacking) is refused by visit() as unknown syntax.
            keys = cast("list[ast.AST]", node.keys)
            return {self.visit(k): self.visit(v) for k, v in zip(keys, node.values, strict=True)}
        if isinstance(node, ast.Attribute):
            return self.field(node)
        if isinstance(node, ast.Subscript):
            return self.item(node)
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(None if part is None else self.visit(part) for part in parts))
        if isinstance(node, ast.BoolOp):
            for operand in node.values:
                value = self.visit(operand)
                if bool(value) != isinstance(node.op, ast.And):  # and: first falsy; or: truthy
                    return value
            return value
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                result = _apply(*OPERATORS[type(op)], left, right)
                if not result:
                    return result
                left = right
            return result
        if isinstance(node, ast.UnaryOp):
            return checked(_apply(*OPERATORS[type(node.op)], self.visit(node.operand)))
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            precheck(type(node.op), left, right)
            if isinstance(node.op, ast.Mult):
                self.repeated = charge_repetition(self.repeated, left, right)
            return checked(_apply(*OPERATORS[type(node.op)], left, right))
        if isinstance(node, ast.IfExp):
            return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise ExpressionError(f"syntax '{type(node).__name__}' is not allowed")

    def field(self, node: ast.Attribute) -> Any:
        obj, path = self.visit(node.value), _describe(node.value)
        if node.attr.startswith("_"):  # re-checked: a CompiledExpression can be hand-built
            raise ExpressionError(f"attribute '{node.attr}' is not allowed")
        if not isinstance(obj, Mapping):
            kind = type(obj).__name__
            raise ExpressionError(f"'{path}' has no field '{node.attr}' ({kind}, not an object)")
        if node.attr not in obj:
            raise ExpressionError(f"'{path}' has no field '{node.attr}'")
        return obj[node.attr]

    def item(self, node: ast.Subscript) -> Any:
        obj, key, path = self.visit(node.value), self.visit(node.slice), _describe(node.value)
        try:
            return obj[key]
        except KeyError:
            raise ExpressionError(f"'{path}' has no key {_short(key)}") from None
        except IndexError:
            raise ExpressionError(f"index {_short(key)} is out of range for '{path}'") from None
        except TypeError:
            kinds = f"{type(obj).__name__} by {type(key).__name__}"
            raise ExpressionError(f"cannot index '{path}' ({kinds})") from None

    def call(self, node: ast.Call) -> Any:
        problem = node_problem(node)  # re-checked: a CompiledExpression can be hand-built
        if problem:
            raise ExpressionError(problem)
        name = node.func.id  # type: ignore[attr-defined]
        func, arg_type = FUNCTIONS[name]
        args = [self.visit(arg) for arg in node.args]
        # node_problem() allows only `default=`, so no keyword is `**` (arg None).
        kwargs = {cast(str, kw.arg): self.visit(kw.value) for kw in node.keywords}
        if arg_type and not all(isinstance(arg, arg_type) for arg in args):
            kinds = ", ".join(type(arg).__name__ for arg in args)
            raise ExpressionError(f"{name}() expects {arg_type.__name__} arguments, got {kinds}")
        try:
            return checked(func(*args, **kwargs))
        except ExpressionError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise ExpressionError(f"{name}(): {exc}") from None


def evaluate(expression: str | CompiledExpression, context: Mapping[str, Any]) -> Any:
    """Evaluate an expression against a mapping of names to values; raises ExpressionError."""
    if isinstance(expression, CompiledExpression):
        compiled = expression if expression.tree else compile_expression(expression.source)
    else:
        compiled = compile_expression(expression)
    source = compiled.source
    if not isinstance(context, Mapping):
        raise ExpressionError("the evaluation context must be a mapping", source)
    try:
        return _Interpreter(context).visit(compiled.tree.body)  # type: ignore[union-attr]
    except ExpressionError as exc:
        raise ExpressionError(exc.message, exc.expression or source) from None
    except RecursionError:
        raise ExpressionError("data is nested too deeply to evaluate", source) from None
    except Exception as exc:  # the contract: nothing but ExpressionError escapes
        raise ExpressionError(f"evaluation failed: {exc}", source) from exc


def _render(parts: list[tuple[bool, str]], context: Mapping[str, Any]) -> str:
    return "".join(
        format_value(evaluate(text, context)) if is_expr else text for is_expr, text in parts
    )


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace each `{{ expr }}` with its value as text; other text is kept verbatim."""
    return _render(split_template(template), context)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render templates in strings inside dicts/lists; a lone `{{ expr }}` keeps its raw value."""
    if isinstance(value, str):
        parts = split_template(value)
        if len(parts) == 1 and parts[0][0]:
            return evaluate(parts[0][1], context)
        return _render(parts, context)
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        rendered = [render_value(item, context) for item in value]
        return rendered if isinstance(value, list) else tuple(rendered)
    return value


def evaluate_mapping(mapping: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate each expression in mapping; returns a dict with the same keys."""
    result: dict[str, Any] = {}
    for key, source in mapping.items():
        try:
            result[key] = evaluate(source, context)
        except ExpressionError as exc:
            raise ExpressionError(f"{key}: {exc.message}", exc.expression) from None
    return result
