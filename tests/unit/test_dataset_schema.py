"""A dataset's schema: what is accepted, and the message a person gets for what is not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cohort.datasets.schema import (
    DEFAULT_ROWS,
    MAX_ATTRIBUTES,
    MAX_CHOICES,
    MAX_ROWS,
    MAX_SAMPLE_BYTES,
    DatasetSchema,
    describe_schema_error,
)

HEALTH = [
    {"name": "age", "type": "int", "min": 18, "max": 90},
    {
        "name": "bmi",
        "type": "float",
        "min": 15,
        "max": 40.5,
        "decimals": 1,
        "distribution": {"kind": "normal", "mean": 25, "std": 4},
    },
    {"name": "smoker", "type": "bool", "null_ratio": 0.1},
    {"name": "country", "type": "category", "choices": ["FR", "DE", "US"]},
    {"name": "app_version", "type": "string", "choices": ["1.0", "2.0"]},
    {"name": "device_id", "type": "string", "min": 8, "max": 12},
]


def _problem(document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        DatasetSchema.model_validate(document)
    return describe_schema_error(caught.value, document)


def _attribute(**fields: Any) -> dict[str, Any]:
    return {"attributes": [{"name": "bmi", "type": "float", "min": 15, "max": 40, **fields}]}


def test_a_schema_of_every_type_is_accepted_with_the_defaults() -> None:
    # Given a schema using every type, a range, choices, a distribution and a null ratio
    # When it is validated without rows or seed
    schema = DatasetSchema.model_validate({"attributes": HEALTH})

    # Then the sample has the default size, the seed is left to the caller
    assert (schema.rows, schema.seed) == (DEFAULT_ROWS, None)
    # and the attributes are kept as given: whole numbers stay ints, defaults are left out
    assert schema.stored_attributes() == HEALTH


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(_attribute(min=40, max=10), "attribute 'bmi': min 40 > max 10", id="min>max"),
        pytest.param(
            {"attributes": [{"name": "bmi", "type": "decimal", "min": 1, "max": 2}]},
            "attribute 'bmi', type: Input should be 'int', 'float', 'bool', 'category' or 'string'",
            id="unknown-type",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category", "choices": []}]},
            "attribute 'mood': a category needs at least one choice",
            id="empty-choices",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category"}]},
            "attribute 'mood': a category needs at least one choice",
            id="no-choices",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category", "choices": ["ok", "ok"]}]},
            "attribute 'mood': choice 'ok' appears more than once",
            id="repeated-choice",
        ),
        pytest.param(
            {"attributes": HEALTH, "rows": 0}, "rows: a sample needs at least 1 row, not 0", id="zero-rows"
        ),
        pytest.param(
            {"attributes": HEALTH, "rows": MAX_ROWS + 1},
            "rows: at most 1,000,000 rows, not 1,000,001",
            id="too-many-rows",
        ),
        pytest.param(
            _attribute(null_ratio=1.5),
            "attribute 'bmi', null_ratio: Input should be less than or equal to 1",
            id="null-ratio-over-one",
        ),
        pytest.param(
            _attribute(null_ratio=-0.1),
            "attribute 'bmi', null_ratio: Input should be greater than or equal to 0",
            id="negative-null-ratio",
        ),
        pytest.param(
            {"attributes": [HEALTH[0], {**HEALTH[1], "name": "AGE"}]},
            "attribute names must be unique, ignoring case: 'age' and 'AGE'",
            id="duplicate-names",
        ),
        pytest.param(
            {"attributes": [{"type": "bool"}]}, "attribute #1, name: Field required", id="missing-name"
        ),
        pytest.param(
            {"attributes": [{"name": "bmi", "min": 1, "max": 2}]},
            "attribute 'bmi', type: Field required",
            id="missing-type",
        ),
        pytest.param({"rows": 10}, "attributes: Field required", id="missing-attributes"),
        pytest.param(
            {"attributes": []},
            "attributes: List should have at least 1 item after validation, not 0",
            id="no-attributes",
        ),
        pytest.param(
            {"attributes": [{"name": "n" * 65, "type": "bool"}]},
            f"attribute '{'n' * 65}', name: '{'n' * 65}' is not a valid name",
            id="oversized-name",
        ),
        pytest.param(
            {"attributes": [{"name": "heart rate", "type": "bool"}]},
            "use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter",
            id="space-in-name",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category", "choices": ["x" * 65]}]},
            "attribute 'mood', choices.0: String should have at most 64 characters",
            id="oversized-choice",
        ),
        pytest.param(
            {"attributes": [{"name": "id", "type": "category", "choices": [str(i) for i in range(1001)]}]},
            f"attribute 'id', choices: List should have at most {MAX_CHOICES} items",
            id="too-many-choices",
        ),
        pytest.param(
            {"attributes": [{"name": f"a{i}", "type": "bool"} for i in range(MAX_ATTRIBUTES + 1)]},
            f"attributes: List should have at most {MAX_ATTRIBUTES} items",
            id="too-many-attributes",
        ),
        pytest.param(
            _attribute(colour="red"), "attribute 'bmi', colour: Extra inputs are not permitted", id="extra"
        ),
        pytest.param(
            _attribute(max=float("inf")), "attribute 'bmi', max: Input should be a finite number", id="inf"
        ),
        pytest.param(
            {"attributes": [{"name": "age", "type": "int"}]},
            "attribute 'age': an int needs min and max",
            id="int-without-range",
        ),
        pytest.param(
            {"attributes": [{"name": "age", "type": "int", "min": 0.5, "max": 9}]},
            "attribute 'age': min and max of an int must be whole numbers",
            id="fractional-int-range",
        ),
        pytest.param(
            {"attributes": [{"name": "age", "type": "int", "min": 0, "max": 9, "choices": ["1"]}]},
            "attribute 'age': choices are for category and string attributes",
            id="choices-on-int",
        ),
        pytest.param(
            {"attributes": [{"name": "ok", "type": "bool", "min": 0, "max": 1}]},
            "attribute 'ok': a bool takes no min, max or choices",
            id="range-on-bool",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category", "choices": ["a"], "min": 0, "max": 1}]},
            "attribute 'mood': a category takes choices, not min and max",
            id="range-on-category",
        ),
        pytest.param(
            {"attributes": [{"name": "note", "type": "string"}]},
            "attribute 'note': a string needs a length range (min and max) or choices",
            id="string-without-range",
        ),
        pytest.param(
            {"attributes": [{"name": "note", "type": "string", "min": 1, "max": 65}]},
            "attribute 'note': a string's length range must lie within 0 and 64 characters",
            id="string-too-long",
        ),
        pytest.param(
            _attribute(distribution={"kind": "normal", "mean": 25, "std": 0}),
            "attribute 'bmi', distribution.normal.std: Input should be greater than 0",
            id="zero-std",
        ),
        pytest.param(
            _attribute(distribution={"kind": "normal", "mean": 500, "std": 1}),
            "attribute 'bmi': normal(mean 500, std 1) puts almost no values between min 15 and max 40",
            id="normal-outside-range",
        ),
        pytest.param(
            _attribute(distribution={"kind": "poisson"}),
            "attribute 'bmi', distribution: Input tag 'poisson' found using 'kind' does not match",
            id="unknown-distribution",
        ),
        pytest.param(
            {
                "attributes": [
                    {"name": "ok", "type": "bool", "distribution": {"kind": "normal", "mean": 0, "std": 1}}
                ]
            },
            "attribute 'ok': a normal distribution needs an int or float attribute, not a bool",
            id="normal-on-bool",
        ),
        pytest.param(
            {"attributes": [{"name": "age", "type": "int", "min": 0, "max": 9, "decimals": 2}]},
            "attribute 'age': decimals are for float attributes",
            id="decimals-on-int",
        ),
        pytest.param(
            {"attributes": HEALTH, "seed": -1},
            "seed: use a whole number from 0 to 4,294,967,295, not -1",
            id="negative-seed",
        ),
    ],
)
def test_a_bad_schema_is_refused_with_a_message_naming_the_problem(document: dict, message: str) -> None:
    # When the schema is validated, Then the message says what is wrong and where
    assert message in _problem(document)


def test_every_problem_of_a_schema_is_reported_at_once() -> None:
    # Given two bad attributes and a good one
    document = {
        "attributes": [
            {"name": "bmi", "type": "float", "min": 40, "max": 10},
            HEALTH[0],
            {"name": "mood", "type": "category", "choices": []},
        ]
    }

    # Then both problems are named, each with its attribute
    assert (
        _problem(document)
        == "attribute 'bmi': min 40 > max 10; attribute 'mood': a category needs at least one choice"
    )


def test_a_sample_too_large_for_the_function_is_refused_with_the_rows_that_fit() -> None:
    # Given a million rows of 20 full-precision floats: up to 25 bytes of CSV each
    document = {
        "rows": MAX_ROWS,
        "attributes": [{"name": f"f{i}", "type": "float", "min": 0, "max": 1} for i in range(20)],
    }

    # Then the message gives the size and the largest row count that fits
    message = _problem(document)
    assert "can take up to 500 MB as CSV; the limit is 400 MB" in message
    assert f"ask for at most {MAX_SAMPLE_BYTES // 500:,} rows" in message


def test_a_million_rows_of_ten_columns_fit() -> None:
    # The benchmark's size: ten attributes, floats at full precision included
    attributes = [{"name": f"f{i}", "type": "float", "min": 0, "max": 1} for i in range(10)]

    assert DatasetSchema.model_validate({"rows": MAX_ROWS, "attributes": attributes}).rows == MAX_ROWS


def test_braces_in_user_text_are_reported_as_written() -> None:
    # Given a choice that looks like a message placeholder
    document = {"attributes": [{"name": "mood", "type": "category", "choices": ["{name}", "{name}"]}]}

    assert _problem(document) == "attribute 'mood': choice '{name}' appears more than once"
