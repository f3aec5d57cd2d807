"""The expression language's whitelist, and compiling source into a checked tree.

Source is parsed with `ast.parse(mode="eval")` and every node is checked against the whitelist
once, at compile time (`compile_expression`, cached); `node_problem` is also the interpreter's
re-check for calls, since a `CompiledExpression` can be built by hand.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from domain.expressions.functions import FUNCTIONS
from domain.expressions.limits import (
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_NODES,
    MAX_SOURCE_LENGTH,
    ExpressionError,
)


@dataclass(frozen=True)
class CompiledExpression:
    """A parsed, whitelist-checked expression, ready for `evaluate`."""

    source: str
    tree: ast.Expression | None = field(default=None, compare=False, repr=False)


# operator node type -> (symbol for messages, implementation)
OPERATORS: dict[type, tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
    ast.USub: ("unary -", operator.neg),
    ast.UAdd: ("unary +", operator.pos),
    ast.Not: ("not", operator.not_),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}
_REFUSED_OPERATORS = {
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.MatMult: "@",
    ast.Invert: "~",
}
_REFUSED_SYNTAX = {
    ast.Lambda: "lambda expressions",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Starred: "starred expressions",
}
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_ALLOWED_NODES = (
    *(ast.Expression, ast.Constant, ast.Name, ast.List, ast.Tuple, ast.Set, ast.Dict),
    *(ast.Attribute, ast.Subscript, ast.Slice, ast.Compare, ast.BoolOp, ast.UnaryOp),
    *(ast.BinOp, ast.IfExp, ast.Call, ast.keyword, ast.expr_context, ast.And, ast.Or),
    *OPERATORS,
)


def node_problem(node: ast.AST) -> str | None:
    """Why this single node is refused, or None if it is allowed."""
    if isinstance(node, _COMPREHENSIONS):
        return "comprehensions are not allowed"
    if type(node) in _REFUSED_SYNTAX:
        return f"{_REFUSED_SYNTAX[type(node)]} are not allowed"
    if type(node) in _REFUSED_OPERATORS:
        return f"operator '{_REFUSED_OPERATORS[type(node)]}' is not allowed"
    if not isinstance(node, _ALLOWED_NODES):
        return f"syntax '{type(node).__name__}' is not allowed"
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            return f"integer literal is larger than {MAX_INT_BITS} bits"
        if isinstance(value, float) and not math.isfinite(value):
            return "float literal is out of range"
        if value is not None and not isinstance(value, (str, int, float)):
            return f"{type(value).__name__} literals are not allowed"
    elif isinstance(node, ast.Name) and node.id.startswith("_"):
        return f"name '{node.id}' is not allowed"
    elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        return f"attribute '{node.attr}' is not allowed"
    elif isinstance(node, ast.Dict) and None in node.keys:
        return "dict unpacking (**) is not allowed"
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            return "only calls to built-in functions are allowed (no method calls)"
        if node.func.id not in FUNCTIONS:
            return f"function '{node.func.id}' is not allowed"
        if any(node.func.id != "get" or kw.arg != "default" for kw in node.keywords):
            return "keyword arguments are only allowed as get(..., default=...)"
    return None


def _check_tree(tree: ast.Expression, source: str) -> None:
    # An explicit stack, not recursion: the tree is still untrusted here.
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count, depth = count + 1, depth + 1
            if count > MAX_NODES:
                raise ExpressionError(f"expression has more than {MAX_NODES} nodes", source)
            if depth > MAX_DEPTH:
                raise ExpressionError(f"expression is nested deeper than {MAX_DEPTH}", source)
        problem = node_problem(node)
        if problem:
            raise ExpressionError(problem, source)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))


def compile_expression(source: str) -> CompiledExpression:
    """Parse and whitelist-check an expression (cached); raises ExpressionError."""
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, not {type(source).__name__}")
    return _parse_checked(source)


@lru_cache(maxsize=4096)
def _parse_checked(source: str) -> CompiledExpression:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_SOURCE_LENGTH} characters")
    stripped = source.strip()  # ast.parse rejects leading whitespace as an indent
    if not stripped:
        raise ExpressionError("expression is empty", source)
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        if not exc.offset:  # the parser reports errors at the end of input as offset 0
            raise ExpressionError(f"{exc.msg} at end of expression", source) from None
        column = exc.offset + len(source) - len(source.lstrip())
        raise ExpressionError(f"{exc.msg} at column {column}", source) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse expression: {exc}", source) from None
    _check_tree(tree, source)
    return CompiledExpression(source, tree)
