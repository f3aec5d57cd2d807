"""Sandboxed expressions for workflow conditions, input mappings and `{{ }}` templates.

The language is a small, safe subset of Python expression syntax over JSON-like data. Source
is parsed with `ast.parse(mode="eval")`, checked against a whitelist once (compile time) and
then interpreted by walking the AST; nothing is ever handed to eval, exec or compile.

This replaces simpleeval: simpleeval 1.0.8 spends about 7 s of CPU on
`(9**4000000)*(9**4000000)` and has no step limit. Here every operation that could blow up
(`**`, `*`, `+`, repetition) is checked *before* it runs, and the limits below bound every
evaluation. Any failure is an ExpressionError; no other exception escapes `evaluate`.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

MAX_SOURCE_LENGTH = 2_000  # characters of expression source
MAX_NODES = 500  # expression nodes in the parsed tree
MAX_DEPTH = 50  # nesting of expression nodes; also bounds the interpreter's recursion
MAX_STEPS = 10_000  # nodes visited during one evaluation
MAX_INT_BITS = 4_096
MAX_LENGTH = 100_000  # characters of a produced string / elements of a produced container
MAX_ROUND_DIGITS = 300  # round(n, -k) computes 10**k internally
MAX_INT_STRING = 5_000  # str -> int conversion is quadratic in the number of digits


class ExpressionError(ValueError):
    """An expression that cannot be compiled, or that failed or hit a limit while evaluating."""

    def __init__(self, message: str, expression: str = ""):
        super().__init__(message, expression)
        self.message = message
        self.expression = expression

    def __str__(self) -> str:
        return f"{self.message} (in {self.expression!r})" if self.expression else self.message


@dataclass(frozen=True)
class CompiledExpression:
    """A parsed, whitelist-checked expression, ready for `evaluate`."""

    source: str
    tree: ast.Expression | None = field(default=None, compare=False, repr=False)


_ALIASES = {"true": True, "false": False, "null": None}
_DISPLAYS: dict[type, Callable[[Any], Any]] = {ast.List: list, ast.Tuple: tuple, ast.Set: set}
_OPERATORS: dict[type, tuple[str, Callable[..., Any]]] = {
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
    *_OPERATORS,
)


def _int(value: Any = 0, *base: int) -> int:
    if isinstance(value, str) and len(value) > MAX_INT_STRING:
        raise ExpressionError("int(): string is too long to convert")
    return int(value, *base)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ExpressionError(f"round(): ndigits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(number, ndigits)


def _sum(values: Any, start: Any = 0) -> Any:
    items = list(values)
    # Only numbers: sum() over lists or tuples is quadratic and would dodge the size checks.
    if not all(isinstance(item, (int, float)) for item in [*items, start]):
        raise ExpressionError("sum(): only numbers can be summed")
    return sum(items, start)


def _get(obj: Any, key: Any, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    if isinstance(obj, (list, tuple)) and isinstance(key, int) and -len(obj) <= key < len(obj):
        return obj[key]
    return default


# name -> (implementation, the type every positional argument must have, or None)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], type | None]] = {
    **{f.__name__: (f, None) for f in (len, str, float, bool, abs, min, max, any, all, sorted)},
    **{f.__name__: (f, str) for f in (str.lower, str.upper, str.startswith, str.endswith)},
    "int": (_int, None),
    "round": (_round, None),
    "sum": (_sum, None),
    "get": (_get, None),
    "contains": (lambda container, item: item in container, None),
    "keys": (lambda obj: list(obj.keys()), Mapping),
    "values": (lambda obj: list(obj.values()), Mapping),
}


def _node_problem(node: ast.AST) -> str | None:
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
        if node.func.id not in _FUNCTIONS:
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
        problem = _node_problem(node)
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


def _weight(value: Any, limit: int) -> int:
    """Characters plus elements in value, nested containers included; stops counting past limit."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset, Mapping)):
            total += len(item)
            if total <= limit:
                stack.extend(item.values() if isinstance(item, Mapping) else item)
    return total


def _precheck(op: type, left: Any, right: Any) -> None:
    """Refuse arithmetic whose result would exceed the limits, before computing it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if op is ast.Pow and ints and right > 0:
        # (bit_length - 1) * exponent is a lower bound on the result's bits; _checked catches
        # the rest after computing at most about twice the allowed size.
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise ExpressionError(f"integer result of '**' would exceed {MAX_INT_BITS} bits")
    elif op is ast.Mult and ints:
        if left.bit_length() + right.bit_length() - 1 > MAX_INT_BITS:
            raise ExpressionError(f"integer result of '*' would exceed {MAX_INT_BITS} bits")
    elif op is ast.Add and isinstance(left, (str, list, tuple)) and type(left) is type(right):
        if len(left) + len(right) > MAX_LENGTH:
            raise ExpressionError(f"concatenation would exceed {MAX_LENGTH} elements")
    elif op is ast.Mod and isinstance(left, str):
        raise ExpressionError("'%' string formatting is not allowed")


def _checked(value: Any) -> Any:
    """Refuse a produced value that exceeds the limits."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"integer result exceeds {MAX_INT_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("float overflow" if math.isinf(value) else "float result is NaN")
    if isinstance(value, complex):
        raise ExpressionError("complex numbers are not supported")
    if isinstance(value, (str, list, tuple, dict, set)) and len(value) > MAX_LENGTH:
        raise ExpressionError(f"result exceeds {MAX_LENGTH} elements")
    return value


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
            return _DISPLAYS[type(node)]([self.visit(item) for item in node.elts])
        if isinstance(node, ast.Dict):
            return {
                self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values, strict=True)
            }
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
                result = _apply(*_OPERATORS[type(op)], left, right)
                if not result:
                    return result
                left = right
            return result
        if isinstance(node, ast.UnaryOp):
            return _checked(_apply(*_OPERATORS[type(node.op)], self.visit(node.operand)))
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            _precheck(type(node.op), left, right)
            if isinstance(node.op, ast.Mult):
                self.charge_repetition(left, right)
            return _checked(_apply(*_OPERATORS[type(node.op)], left, right))
        if isinstance(node, ast.IfExp):
            return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise ExpressionError(f"syntax '{type(node).__name__}' is not allowed")

    def charge_repetition(self, left: Any, right: Any) -> None:
        # Repetition is the one way to build a big value from a short expression, and it nests
        # ([[0]*1000]*1000 is a million elements to print), so one budget of nested elements
        # covers all repetitions in an evaluation.
        seq, times = (right, left) if isinstance(left, int) else (left, right)
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and times > 0:
            remaining = MAX_LENGTH - self.repeated
            self.repeated += _weight(seq, remaining // times) * times
            if self.repeated > MAX_LENGTH:
                raise ExpressionError(f"repetition would exceed {MAX_LENGTH} elements")

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
        problem = _node_problem(node)  # re-checked: a CompiledExpression can be hand-built
        if problem:
            raise ExpressionError(problem)
        name = node.func.id  # type: ignore[attr-defined]
        func, arg_type = _FUNCTIONS[name]
        args = [self.visit(arg) for arg in node.args]
        kwargs = {kw.arg: self.visit(kw.value) for kw in node.keywords}
        if arg_type and not all(isinstance(arg, arg_type) for arg in args):
            kinds = ", ".join(type(arg).__name__ for arg in args)
            raise ExpressionError(f"{name}() expects {arg_type.__name__} arguments, got {kinds}")
        try:
            return _checked(func(*args, **kwargs))
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


def _split_template(template: str) -> list[tuple[bool, str]]:
    """(is_expression, text) parts of a template; the first `}}` closes a `{{`."""
    if not isinstance(template, str):
        raise ExpressionError(f"template must be a string, not {type(template).__name__}")
    parts: list[tuple[bool, str]] = []
    position = 0
    while (start := template.find("{{", position)) != -1:
        end = template.find("}}", start + 2)
        if end == -1:
            raise ExpressionError(f"'{{{{' at position {start} has no closing '}}}}'", template)
        expression = template[start + 2 : end].strip()
        if not expression:
            raise ExpressionError(f"empty '{{{{ }}}}' at position {start}", template)
        if start > position:
            parts.append((False, template[position:start]))
        parts.append((True, expression))
        position = end + 2
    if position < len(template):
        parts.append((False, template[position:]))
    return parts


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ExpressionError(f"cannot render value as JSON: {exc}") from None
    return str(value)


def _render(parts: list[tuple[bool, str]], context: Mapping[str, Any]) -> str:
    return "".join(_format(evaluate(text, context)) if is_expr else text for is_expr, text in parts)


def template_expressions(template: str) -> list[str]:
    """The expression sources inside each `{{ }}` of a template, in order."""
    return [text for is_expression, text in _split_template(template) if is_expression]


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace each `{{ expr }}` with its value as text; other text is kept verbatim."""
    return _render(_split_template(template), context)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render templates in strings inside dicts/lists; a lone `{{ expr }}` keeps its raw value."""
    if isinstance(value, str):
        parts = _split_template(value)
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
