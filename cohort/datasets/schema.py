"""The schema of an app's on-device data, from which Cohort generates a sample dataset.

One model checks a schema at both ends: the orchestrator refuses a bad one with
422 when the dataset is registered, and the dataset function checks it again
before generating, so a record written by another path fails with the same
message a person can act on (``attribute 'bmi': min 40 > max 10``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

DEFAULT_ROWS = 1_000
MAX_ROWS = 1_000_000
MAX_ATTRIBUTES = 256
MAX_CHOICES = 1_000
MAX_TEXT_LENGTH = 64  # characters of a choice, and of a generated string
MAX_MAGNITUDE = 1e15  # bounds, means and stds: float64 holds every integer up to this exactly
MAX_DECIMALS = 10
MAX_SEED = 2**32 - 1
# The dataset function writes one format at a time to Lambda's 512 MB /tmp, and
# the Parquet file of a sample is never much larger than its CSV.
MAX_SAMPLE_BYTES = 400_000_000
MAX_SCHEMA_BYTES = 256 * 1024  # kept in the dataset's DynamoDB item, whose limit is 400 KB
# A normal with less of its mass than this inside [min, max] sits deep in a tail:
# nearly every value would land on one bound.
MIN_NORMAL_MASS = 1e-9

ATTRIBUTE_ERROR = "invalid_attribute"  # its message names the attribute
SCHEMA_ERROR = "invalid_schema"  # about the schema as a whole
_VALUE_ERROR = "invalid_value"  # about one field, which the error's location names
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
# Widest CSV text of one value: a float's is fixed, an int's and a text's depend on the attribute.
_FLOAT_WIDTH = len("-1.2345678901234567e+308")
_BOOL_WIDTH = len("false")

AttributeType = Literal["int", "float", "bool", "category", "string"]
NUMERIC_TYPES = ("int", "float")
SampleFormat = Literal["csv", "parquet"]
SAMPLE_FORMATS: tuple[SampleFormat, ...] = ("csv", "parquet")


def _error(kind: str, message: str) -> PydanticCustomError:
    # Passed as context, so braces in user text are never read as placeholders.
    return PydanticCustomError(kind, "{message}", {"message": message})


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise _error(
            _VALUE_ERROR,
            f"{name[:80]!r} is not a valid name: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter",
        )
    return name


Name = Annotated[str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": f"^{_NAME.pattern}$"})]
Number = Annotated[
    float,
    Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE),
    # Whole numbers are written as ints, so an int attribute keeps reading "min": 18, not 18.0.
    PlainSerializer(lambda value: int(value) if value.is_integer() else value, when_used="json"),
]
Choice = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]


class Uniform(BaseModel):
    """Every value of the range, or every choice, equally likely."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["uniform"] = "uniform"


class Normal(BaseModel):
    """A normal distribution truncated to [min, max]: values outside it are never drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["normal"]
    mean: Number
    std: Annotated[Number, Field(gt=0)]


Distribution = Annotated[Uniform | Normal, Field(discriminator="kind")]


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def normal_mass(mean: float, std: float, low: float, high: float) -> float:
    """The share of N(mean, std) inside [low, high], accurate in either tail."""
    z_low, z_high = (low - mean) / std, (high - mean) / std
    if z_low > 0:  # all in the upper tail: mirror it, where the CDF keeps its precision
        z_low, z_high = -z_high, -z_low
    return normal_cdf(z_high) - normal_cdf(z_low)


class Attribute(BaseModel):
    """One column of the app's on-device data.

    ``int`` and ``float`` take a range (``min`` and ``max``, both included) and
    optionally a normal distribution; ``category`` takes ``choices``; ``string``
    takes ``choices`` or a length range (``min`` to ``max`` characters); ``bool``
    takes neither.
    """

    model_config = ConfigDict(extra="forbid")
    name: Name
    type: AttributeType
    min: Number | None = None
    max: Number | None = None
    choices: Annotated[list[Choice], Field(max_length=MAX_CHOICES)] | None = None
    distribution: Distribution = Uniform()
    null_ratio: Annotated[float, Field(ge=0.0, le=1.0, description="Share of values left empty")] = 0.0
    decimals: Annotated[int, Field(ge=0, le=MAX_DECIMALS, description="Round floats to this")] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Attribute:
        problem = self._problem()
        if problem:
            raise _error(ATTRIBUTE_ERROR, f"attribute {self.name!r}: {problem}")
        return self

    def _problem(self) -> str | None:
        return self._options_problem() or self._values_problem()

    def _options_problem(self) -> str | None:
        if self.decimals is not None and self.type != "float":
            return "decimals are for float attributes"
        if isinstance(self.distribution, Normal) and self.type not in NUMERIC_TYPES:
            return f"a normal distribution needs an int or float attribute, not {_a(self.type)}"
        return None

    def _values_problem(self) -> str | None:
        has_range = self.min is not None or self.max is not None
        if self.type == "bool":
            return "a bool takes no min, max or choices" if has_range or self.choices is not None else None
        if self.type == "category" and has_range:
            return "a category takes choices, not min and max"
        if self.choices is None:
            return self._choices_problem() if self.type == "category" else self._range_problem()
        if self.type in NUMERIC_TYPES:
            return "choices are for category and string attributes"
        if has_range:
            return "a string takes choices or a length range (min and max), not both"
        return self._choices_problem()

    def _choices_problem(self) -> str | None:
        if not self.choices:
            return f"{_a(self.type)} needs at least one choice"
        seen: set[str] = set()
        for choice in self.choices:
            if choice in seen:
                return f"choice {choice!r} appears more than once"
            seen.add(choice)
        return None

    def _range_problem(self) -> str | None:
        if self.min is None or self.max is None:
            needs = "a length range (min and max) or choices" if self.type == "string" else "min and max"
            return f"{_a(self.type)} needs {needs}"
        if self.min > self.max:
            return f"min {_fmt(self.min)} > max {_fmt(self.max)}"
        if self.type != "float" and not (float(self.min).is_integer() and float(self.max).is_integer()):
            return f"min and max of {_a(self.type)} must be whole numbers"
        if self.type == "string" and not 0 <= self.min <= self.max <= MAX_TEXT_LENGTH:
            return f"a string's length range must lie within 0 and {MAX_TEXT_LENGTH} characters"
        if isinstance(self.distribution, Normal):
            return self._normal_problem(self.distribution, self.min, self.max)
        return None

    def _normal_problem(self, normal: Normal, low: float, high: float) -> str | None:
        widen = 0.5 if self.type == "int" else 0.0  # an int is drawn on [min - 0.5, max + 0.5], then rounded
        if normal_mass(normal.mean, normal.std, low - widen, high + widen) < MIN_NORMAL_MASS:
            return (
                f"normal(mean {_fmt(normal.mean)}, std {_fmt(normal.std)}) puts almost no values between "
                f"min {_fmt(low)} and max {_fmt(high)}: move the mean into the range or raise std"
            )
        return None

    def csv_width(self) -> int:
        """The widest CSV text of one value, its separator included: bounds the sample's size."""
        if self.type == "float":
            return _FLOAT_WIDTH + 1
        if self.type == "bool":
            return _BOOL_WIDTH + 1
        if self.choices:
            # Quoted, with any quote inside doubled.
            return max(len(choice.encode()) + choice.count('"') for choice in self.choices) + 3
        low, high = int(self.min or 0), int(self.max or 0)  # set on a valid int or string
        if self.type == "int":
            return max(len(str(low)), len(str(high))) + 1
        return high + 3  # a generated string: letters and digits, quoted


class DatasetSchema(BaseModel):
    """What a sample dataset is generated from: the attributes, how many rows, and a seed."""

    model_config = ConfigDict(extra="forbid")
    attributes: Annotated[list[Attribute], Field(min_length=1, max_length=MAX_ATTRIBUTES)]
    rows: int = Field(DEFAULT_ROWS, description=f"Rows of the sample: 1 to {MAX_ROWS:,}")
    seed: int | None = Field(
        None,
        description=f"0 to {MAX_SEED:,}: the same schema and seed give the same sample. Drawn if omitted",
    )

    @field_validator("rows")
    @classmethod
    def _rows_in_range(cls, rows: int) -> int:
        if rows < 1:
            raise _error(_VALUE_ERROR, f"a sample needs at least 1 row, not {rows:,}")
        if rows > MAX_ROWS:
            raise _error(_VALUE_ERROR, f"at most {MAX_ROWS:,} rows, not {rows:,}")
        return rows

    @field_validator("seed")
    @classmethod
    def _seed_in_range(cls, seed: int | None) -> int | None:
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise _error(_VALUE_ERROR, f"use a whole number from 0 to {MAX_SEED:,}, not {seed:,}")
        return seed

    @model_validator(mode="after")
    def _fits(self) -> DatasetSchema:
        problem = self._problem()
        if problem:
            raise _error(SCHEMA_ERROR, problem)
        return self

    def _problem(self) -> str | None:
        seen: dict[str, str] = {}
        for attribute in self.attributes:
            key = attribute.name.casefold()
            if key in seen:
                return f"attribute names must be unique, ignoring case: {seen[key]!r} and {attribute.name!r}"
            seen[key] = attribute.name
        size = len(json.dumps(self.stored_attributes()).encode())
        if size > MAX_SCHEMA_BYTES:
            return (
                f"the attributes take {size:,} bytes as JSON; the limit is {MAX_SCHEMA_BYTES:,}: "
                "use fewer or shorter choices"
            )
        row_bytes = self.csv_row_bytes()
        if self.rows * row_bytes > MAX_SAMPLE_BYTES:
            return (
                f"{self.rows:,} rows of these attributes can take up to "
                f"{self.rows * row_bytes / 1e6:,.0f} MB as CSV; the limit is "
                f"{MAX_SAMPLE_BYTES / 1e6:,.0f} MB: "
                f"ask for at most {MAX_SAMPLE_BYTES // row_bytes:,} rows, or fewer or narrower attributes"
            )
        return None

    def csv_row_bytes(self) -> int:
        return sum(attribute.csv_width() for attribute in self.attributes)

    def stored_attributes(self) -> list[dict[str, Any]]:
        """The attributes as the dataset keeps them: what was given, defaults left out."""
        return [a.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for a in self.attributes]


def describe_schema_error(exc: ValidationError, document: Mapping[str, Any]) -> str:
    """One line per problem, naming the attribute it is about: ``attribute 'bmi', type: ...``."""
    attributes = document.get("attributes")
    problems = []
    for error in exc.errors(include_url=False):
        loc, message = error["loc"], error["msg"]
        if error["type"] in (ATTRIBUTE_ERROR, SCHEMA_ERROR):
            problems.append(message)  # already says where
        elif len(loc) >= 2 and loc[0] == "attributes" and isinstance(loc[1], int):
            where = _attribute_label(attributes, loc[1])
            field = ".".join(str(part) for part in loc[2:])
            problems.append(f"{where}, {field}: {message}" if field else f"{where}: {message}")
        else:
            problems.append(f"{'.'.join(str(part) for part in loc) or 'schema'}: {message}")
    return "; ".join(problems)


def _attribute_label(attributes: object, index: int) -> str:
    if isinstance(attributes, Sequence) and index < len(attributes):
        attribute = attributes[index]
        name = attribute.get("name") if isinstance(attribute, Mapping) else None
        if isinstance(name, str) and name:
            return f"attribute {name[:80]!r}"
    return f"attribute #{index + 1}"
