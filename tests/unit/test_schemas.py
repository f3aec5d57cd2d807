"""JsonSchemaValidator: Draft 2020-12 checks with a path for every violation."""

from __future__ import annotations

from infrastructure.schemas import JsonSchemaValidator

ORDER = {
    "type": "object",
    "required": ["customer", "amount"],
    "properties": {
        "customer": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
    "additionalProperties": False,
}


def test_a_valid_schema_has_no_problems():
    assert JsonSchemaValidator().check_schema(ORDER) == []


def test_an_invalid_schema_is_reported():
    problems = JsonSchemaValidator().check_schema({"type": "integr", "minimum": "zero"})

    assert len(problems) == 2
    assert any(p.startswith("$.type:") for p in problems)
    assert any(
        p.startswith("$.minimum:") and "'zero' is not of type 'number'" in p for p in problems
    )


def test_a_schema_that_is_not_an_object_is_reported():
    assert JsonSchemaValidator().check_schema([1, 2]) != []


def test_valid_data_has_no_errors():
    data = {"customer": "acme", "amount": 12.5, "lines": [{"sku": "A-1"}]}

    assert JsonSchemaValidator().validate(ORDER, data) == []


def test_every_violation_is_reported_with_its_path():
    data = {"amount": -1, "lines": [{"sku": "A-1"}, {}], "colour": "red"}

    errors = JsonSchemaValidator().validate(ORDER, data)

    paths = [path for path, _ in errors]
    assert sorted(paths) == ["$", "$", "$.amount", "$.lines[1]"]
    messages = dict(errors)
    assert "less than or equal to the minimum of 0" in messages["$.amount"]
    assert "'sku' is a required property" in messages["$.lines[1]"]
    root = [message for path, message in errors if path == "$"]
    assert any("'customer' is a required property" in m for m in root)
    assert any("'colour' was unexpected" in m for m in root)


def test_formats_are_asserted():
    schema = {"type": "object", "properties": {"due": {"type": "string", "format": "date"}}}

    assert JsonSchemaValidator().validate(schema, {"due": "tomorrow"}) == [
        ("$.due", "'tomorrow' is not a 'date'")
    ]


def test_compiled_validators_are_reused_for_equal_schemas():
    validator = JsonSchemaValidator()

    validator.validate({"type": "integer"}, 1)
    validator.validate({"type": "integer"}, "x")

    assert len(validator._cache) == 1


def test_validating_against_an_invalid_schema_reports_instead_of_raising():
    errors = JsonSchemaValidator().validate({"type": "integr"}, 1)

    assert errors and errors[0][0] == "$"
    assert "the schema is invalid" in errors[0][1]
