import ast
import re

import pytest

from domain.expressions import evaluator as expressions
from domain.expressions.evaluator import (
    CompiledExpression,
    ExpressionError,
    compile_expression,
    evaluate,
    evaluate_mapping,
    render_template,
    render_value,
    template_expressions,
)


@pytest.fixture
def ctx():
    return {
        "input": {
            "amount": 12_500,
            "customer": {"name": "Ada", "tier": "gold"},
            "tags": ["a", "b"],
        },
        "vars": {"limit": 10_000, "note": None},
        "nodes": {"check": {"result": {"approved": True, "score": 0.75}}},
        "instance": {"id": "wf-1"},
        "now": "2024-05-01T12:00:00+00:00",
    }


def refused(source, fragment, context=None):
    """Assert evaluating source raises ExpressionError whose message contains fragment."""
    with pytest.raises(ExpressionError, match=re.escape(fragment)) as info:
        evaluate(source, {} if context is None else context)
    return info.value


# --- the language ------------------------------------------------------------------------


def test_field_access_compares_against_threshold(ctx):
    assert evaluate("input.amount > 10000", ctx) is True
    assert evaluate("input.amount > vars.limit * 2", ctx) is False
    assert evaluate("nodes.check.result.approved", ctx) is True
    assert evaluate("input.customer.name", ctx) == "Ada"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2 < 3", True),
        ("1 < 3 < 2", False),
        ("0 <= input.amount <= 20000", True),
        ("input.amount == 12500 != 0", True),
        ("'a' in input.tags", True),
        ("'z' not in input.tags", True),
        ("'gold' in input.customer.tier", True),
        ("'customer' in input", True),
        ("vars.note is None", True),
        ("vars.note is not null", False),
    ],
)
def test_comparisons(ctx, source, expected):
    assert evaluate(source, ctx) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("1 / 4", 0.25),
        ("-3 + +1", -2),
        ("10 - 2 * 3", 4),
        ("'ab' + 'cd'", "abcd"),
        ("[1] + [2]", [1, 2]),
        ("'-' * 3", "---"),
        ("not 0", True),
        ("2 ** -1", 0.5),
    ],
)
def test_arithmetic(source, expected):
    assert evaluate(source, {}) == expected


def test_conditional_expression(ctx):
    assert evaluate("'big' if input.amount > vars.limit else 'small'", ctx) == "big"
    assert evaluate("'big' if input.amount > 99999 else 'small'", ctx) == "small"


def test_boolean_operators_short_circuit_and_return_operands(ctx):
    # The unknown name on the right would raise if it were evaluated.
    assert evaluate("false and no_such_name", ctx) is False
    assert evaluate("true or no_such_name", ctx) is True
    assert evaluate("vars.note or 'default'", ctx) == "default"
    assert evaluate("input.amount and input.customer.name", ctx) == "Ada"


def test_aliases_and_python_constants():
    assert evaluate("[true, false, null, True, False, None]", {}) == [True, False, None] * 2


def test_subscripts_and_slices(ctx):
    assert evaluate("input['customer']['tier']", ctx) == "gold"
    assert evaluate("nodes['check'].result.score", ctx) == 0.75
    assert evaluate("input.tags[-1]", ctx) == "b"
    assert evaluate("input.tags[::-1]", ctx) == ["b", "a"]
    assert evaluate("now[:10]", ctx) == "2024-05-01"


def test_displays():
    assert evaluate("{'a': [1, (2, 3)], 'b': {4}}", {}) == {"a": [1, (2, 3)], "b": {4}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len(input.tags)", 2),
        ("str(input.amount)", "12500"),
        ("int('42')", 42),
        ("float('1.5')", 1.5),
        ("bool('')", False),
        ("abs(-3)", 3),
        ("min(3, 1, 2)", 1),
        ("max(input.tags)", "b"),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("sum([1, 2, 3.5])", 6.5),
        ("any([0, '', 1])", True),
        ("all([1, 'x'])", True),
        ("sorted([3, 1, 2])", [1, 2, 3]),
        ("lower(input.customer.name)", "ada"),
        ("upper(input.customer.tier)", "GOLD"),
        ("contains(input.tags, 'b')", True),
        ("contains(input.customer.name, 'z')", False),
        ("get(input, 'missing')", None),
        ("get(input, 'missing', default=0)", 0),
        ("get(input, 'amount', default=0)", 12500),
        ("get(input.tags, 1)", "b"),
        ("get(input.tags, 9, default='none')", "none"),
        ("get(null, 'x', default=1)", 1),
        ("startswith(now, '2024-')", True),
        ("endswith(instance.id, '-1')", True),
        ("keys(input.customer)", ["name", "tier"]),
        ("values(input.customer)", ["Ada", "gold"]),
    ],
)
def test_whitelisted_functions(ctx, source, expected):
    assert evaluate(source, ctx) == expected


def test_function_argument_errors_are_expression_errors(ctx):
    refused("upper(1)", "upper() expects str arguments, got int")
    refused("keys(input.tags)", "keys() expects Mapping arguments, got list", ctx)
    refused("max([])", "max(): max() arg is an empty sequence")
    refused("int('abc')", "int(): invalid literal")
    refused("sorted([1, 'a'])", "sorted(): '<' not supported")


def test_compiled_expressions_are_cached_and_reusable(ctx):
    compiled = compile_expression("input.amount * 2")
    assert isinstance(compiled, CompiledExpression)
    assert compiled.source == "input.amount * 2"
    assert compile_expression("input.amount * 2") is compiled
    assert evaluate(compiled, ctx) == 25_000
    assert evaluate(compiled, {"input": {"amount": 1}}) == 2


def test_compiled_expression_without_tree_is_compiled_on_evaluate():
    assert evaluate(CompiledExpression("1 + 1"), {}) == 2


def test_leading_and_trailing_whitespace_is_ignored():
    assert evaluate("  1 + 1  ", {}) == 2


# --- templates ---------------------------------------------------------------------------


def test_render_template_formats_values(ctx):
    template = "Hi {{ input.customer.name }}: {{input.amount}} ok={{ true }} note={{ vars.note }}"
    assert render_template(template, ctx) == "Hi Ada: 12500 ok=true note="
    assert render_template("{{ input.customer }}", ctx) == '{"name":"Ada","tier":"gold"}'
    assert render_template("tags={{ input.tags }}", ctx) == 'tags=["a","b"]'


def test_render_template_keeps_text_outside_braces_verbatim(ctx):
    assert render_template("no braces } here {", ctx) == "no braces } here {"
    assert render_template('{"amount": {{ input.amount }}}', ctx) == '{"amount": 12500}'
    assert render_template("a }} b", ctx) == "a }} b"


def test_template_expressions_lists_sources():
    assert template_expressions("x {{ a.b }} y {{c > 1}}") == ["a.b", "c > 1"]
    assert template_expressions("plain text") == []


@pytest.mark.parametrize(
    ("template", "fragment"),
    [("a {{ b", "'{{' at position 2 has no closing '}}'"), ("x {{  }}", "empty '{{ }}'")],
)
def test_malformed_templates_are_refused(ctx, template, fragment):
    with pytest.raises(ExpressionError, match=re.escape(fragment)):
        template_expressions(template)
    with pytest.raises(ExpressionError, match=re.escape(fragment)):
        render_template(template, ctx)


def test_render_value_keeps_raw_types_for_lone_expressions(ctx):
    config = {
        "amount": "{{ input.amount }}",
        "tags": "{{input.tags}}",
        "nested": [{"who": "{{ input.customer }}"}, "id={{ instance.id }}"],
        "count": 3,
        "flag": None,
        "plain": "text",
    }
    assert render_value(config, ctx) == {
        "amount": 12500,
        "tags": ["a", "b"],
        "nested": [{"who": {"name": "Ada", "tier": "gold"}}, "id=wf-1"],
        "count": 3,
        "flag": None,
        "plain": "text",
    }


def test_render_value_with_surrounding_text_renders_a_string(ctx):
    assert render_value(" {{ input.amount }}", ctx) == " 12500"


def test_evaluate_mapping(ctx):
    mapping = {"total": "input.amount + 1", "name": "upper(input.customer.name)"}
    assert evaluate_mapping(mapping, ctx) == {"total": 12501, "name": "ADA"}


def test_evaluate_mapping_names_the_failing_key(ctx):
    with pytest.raises(ExpressionError, match="^bad: 'input' has no field 'nope'") as info:
        evaluate_mapping({"ok": "1", "bad": "input.nope"}, ctx)
    assert info.value.expression == "input.nope"


# --- the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("__class__", "name '__class__' is not allowed"),
        ("().__class__.__bases__", "attribute '__bases__' is not allowed"),
        ("input.__class__", "attribute '__class__' is not allowed"),
        ("input._private", "attribute '_private' is not allowed"),
        ("__import__('os')", "function '__import__' is not allowed"),
        ("open('x')", "function 'open' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("getattr(input, 'x')", "function 'getattr' is not allowed"),
        ("input.keys()", "only calls to built-in functions are allowed"),
        ("(lambda: 1)()", "only calls to built-in functions are allowed"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("[x for x in range(10**9)]", "comprehensions are not allowed"),
        ("{k: 1 for k in 'ab'}", "comprehensions are not allowed"),
        ("any(x for x in [1])", "comprehensions are not allowed"),
        ("f'{input}'", "f-strings are not allowed"),
        ("(x := 1)", "assignment expressions (:=) are not allowed"),
        ("[*input.tags]", "starred expressions are not allowed"),
        ("{**input}", "dict unpacking (**) is not allowed"),
        ("1 << 2", "operator '<<' is not allowed"),
        ("~1", "operator '~' is not allowed"),
        ("sorted([1], reverse=True)", "keyword arguments are only allowed as get"),
        ("b'x'", "bytes literals are not allowed"),
        ("1j", "complex literals are not allowed"),
        ("1e999", "float literal is out of range"),
    ],
)
def test_disallowed_syntax_is_refused_at_compile_time(source, fragment):
    with pytest.raises(ExpressionError, match=re.escape(fragment)) as info:
        compile_expression(source)
    assert info.value.expression == source


def test_hand_built_compiled_expression_is_still_sandboxed():
    sneaky = CompiledExpression("x", ast.parse("().__class__", mode="eval"))
    refused(sneaky, "attribute '__class__' is not allowed")
    sneaky_call = CompiledExpression("x", ast.parse("open('f')", mode="eval"))
    refused(sneaky_call, "function 'open' is not allowed")


def test_huge_power_is_refused():
    refused("9**4000000", "would exceed 4096 bits")


def test_product_of_huge_powers_is_refused():
    # simpleeval 1.0.8 burns ~7 s of CPU on this one.
    refused("(9**4000000)*(9**4000000)", "would exceed 4096 bits")


def test_huge_product_is_refused_before_multiplying():
    assert evaluate("10**1000 > 0", {}) is True
    refused("10**1000 * 10**1000", "integer result of '*' would exceed 4096 bits")


def test_integer_limit_boundary():
    assert evaluate("2**4095", {}) == 2**4095
    refused("2**4096", "integer result exceeds 4096 bits")
    refused("int('9' * 4000)", "integer result exceeds 4096 bits")


@pytest.mark.parametrize(
    "source",
    ["'a'*10**9", "[1]*10**9", "10**9 * 'a'", "[[0]*1000]*1000", "['x'*60000, 'y'*60000]"],
)
def test_huge_repetition_is_refused(source):
    refused(source, "repetition would exceed 100000 elements")


def test_repetition_within_limit_is_allowed():
    assert len(evaluate("'ab' * 50000", {})) == 100_000


def test_huge_concatenation_is_refused():
    refused("s + s", "concatenation would exceed 100000 elements", {"s": "x" * 60_000})


def test_string_formatting_is_refused():
    refused("'%0999999999d' % 1", "'%' string formatting is not allowed")


def test_round_digits_are_bounded():
    refused("round(1, -10**9)", "ndigits must be an integer within ±300")


def test_sum_only_adds_numbers():
    refused("sum([[1], [2]], [])", "sum(): only numbers can be summed")


@pytest.mark.parametrize("source", ["1e308 * 10", "float('inf')"])
def test_float_overflow(source):
    refused(source, "float overflow")


def test_float_power_overflow():
    refused("2.0 ** 10000", "numeric overflow in '**'")


@pytest.mark.parametrize("source", ["1 / 0", "1 // 0", "1 % 0", "1.0 / 0"])
def test_division_by_zero(source):
    error = refused(source, "division by zero")
    assert error.message == "division by zero"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("'a' + 1", "unsupported operand types for +: 'str' and 'int'"),
        ("1 < 'a'", "unsupported operand types for <: 'int' and 'str'"),
        ("-'a'", "unsupported operand types for unary -: 'str'"),
        ("{[1]}", "evaluation failed: unhashable type: 'list'"),
    ],
)
def test_type_errors(source, message):
    assert refused(source, message).message == message


def test_deeply_nested_expression_is_refused():
    refused("-" * 60 + "1", "nested deeper than 50")
    refused("[" * 60 + "]" * 60, "nested deeper than 50")
    refused("[" * 300 + "]" * 300, "too many nested parentheses")


def test_too_many_nodes_is_refused():
    refused("[" + "1," * 600 + "]", "more than 500 nodes")


def test_source_too_long_is_refused():
    refused("1" + " " * 2000, "longer than 2000 characters")


def test_syntax_errors_report_the_column():
    refused("a b", "invalid syntax at column 3")
    refused("1 +", "invalid syntax at end of expression")
    refused("   ", "expression is empty")


def test_unknown_name(ctx):
    assert refused("x + 1", "unknown name 'x'", ctx).message == "unknown name 'x'"


def test_missing_field(ctx):
    error = refused("input.customer.age > 18", "'input.customer' has no field 'age'", ctx)
    assert error.message == "'input.customer' has no field 'age'"
    assert error.expression == "input.customer.age > 18"
    refused("input.amountt", "'input' has no field 'amountt'", ctx)


def test_field_access_on_non_objects_is_refused(ctx):
    refused("input.tags.count", "'input.tags' has no field 'count' (list, not an object)", ctx)
    refused("input.customer.name.upper", "has no field 'upper' (str, not an object)", ctx)


def test_missing_key_and_index(ctx):
    refused("input['nope']", "'input' has no key 'nope'", ctx)
    refused("input.tags[5]", "index 5 is out of range for 'input.tags'", ctx)
    refused("input.tags['x']", "cannot index 'input.tags' (list by str)", ctx)


def test_step_limit(monkeypatch):
    monkeypatch.setattr(expressions, "MAX_STEPS", 5)
    assert evaluate("1 + 1", {}) == 2
    refused("1 + 1 + 1 + 1", "evaluation exceeded 5 steps")


def test_no_other_exception_escapes():
    class Hostile:
        def __eq__(self, other):
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    refused("x == 1", "evaluation failed: boom", {"x": Hostile()})
    refused("1", "context must be a mapping", [])  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="expression must be a string, not int"):
        evaluate(42, {})  # type: ignore[arg-type]


def test_expression_error_shape():
    error = ExpressionError("unknown name 'x'", "x + 1")
    assert isinstance(error, ValueError)
    assert (error.message, error.expression) == ("unknown name 'x'", "x + 1")
    assert str(error) == "unknown name 'x' (in 'x + 1')"
    assert str(ExpressionError("plain")) == "plain"
