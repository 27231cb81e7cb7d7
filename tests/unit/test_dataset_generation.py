"""Sample datasets from a schema: reproducible, faithful to the schema, the same in both formats."""

from __future__ import annotations

import csv
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohort.datasets.generation import batches, normal_quantile, write_sample
from cohort.datasets.schema import DatasetSchema

SCHEMA: list[dict[str, Any]] = [
    {"name": "age", "type": "int", "min": 18, "max": 90},
    {
        "name": "steps",
        "type": "int",
        "min": 0,
        "max": 30000,
        "distribution": {"kind": "normal", "mean": 8000, "std": 3000},
    },
    {
        "name": "bmi",
        "type": "float",
        "min": 15,
        "max": 40,
        "decimals": 1,
        "distribution": {"kind": "normal", "mean": 25, "std": 4},
    },
    {"name": "temperature", "type": "float", "min": 35.5, "max": 38.5},
    {"name": "smoker", "type": "bool", "null_ratio": 0.2},
    {"name": "country", "type": "category", "choices": ["FR", "DE", "US", "JP", "BR"]},
    {"name": "app_version", "type": "string", "choices": ["1.0", "1.1", "2.0"], "null_ratio": 0.05},
    {"name": "device_id", "type": "string", "min": 6, "max": 12},
]


def _schema(attributes: list[dict[str, Any]] = SCHEMA, rows: int = 20_000) -> DatasetSchema:
    return DatasetSchema.model_validate({"attributes": attributes, "rows": rows})


def _table(schema: DatasetSchema, seed: int = 7, rows_per_chunk: int | None = None) -> pa.Table:
    return pa.Table.from_batches(list(batches(schema, seed, rows_per_chunk)))


# -- reproducibility -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_same_seed_writes_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    # Given one schema, written twice with one seed
    first = tmp_path / f"first.{fmt}"
    second = tmp_path / f"second.{fmt}"
    write_sample(_schema(), 42, first, fmt)
    write_sample(_schema(), 42, second, fmt)

    # Then the files are identical, byte for byte
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_draws_other_values() -> None:
    one, other = _table(_schema(), seed=1), _table(_schema(), seed=2)

    for name in one.column_names:
        assert not one[name].equals(other[name]), name


def test_a_column_does_not_depend_on_the_others() -> None:
    # Given the schema, and the same schema with an attribute added first and the others reversed
    changed = [{"name": "extra", "type": "float", "min": 0, "max": 1}, *reversed(SCHEMA)]

    # When both are drawn with one seed
    base, other = _table(_schema()), _table(_schema(changed))

    # Then every original column is the same
    for name in base.column_names:
        assert base[name].equals(other[name]), name


def test_the_chunk_size_changes_the_memory_used_not_the_values() -> None:
    whole = _table(_schema(), rows_per_chunk=20_000)

    for rows_per_chunk in (1, 999, 4096):
        assert _table(_schema(rows=2_500), rows_per_chunk=rows_per_chunk).equals(whole.slice(0, 2_500))


def test_the_sample_is_written_in_bounded_chunks(tmp_path: Path) -> None:
    # When a sample is written in chunks of 1,000 rows
    path = tmp_path / "sample.parquet"
    write_sample(_schema(rows=10_500), 7, path, "parquet", rows_per_chunk=1_000)

    # Then it went out as 11 row groups of at most 1,000 rows
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 11
    assert max(metadata.row_group(i).num_rows for i in range(11)) == 1_000


# -- faithful to the schema --------------------------------------------------------------------


def test_every_value_keeps_to_its_attribute() -> None:
    table = _table(_schema(rows=50_000))

    age, steps = table["age"].to_numpy(), table["steps"].to_numpy()
    assert table.schema.field("age").type == pa.int64()
    assert _within(age, 18, 90)
    assert set(np.unique(age)) == set(range(18, 91))  # every value of the range turns up
    assert _within(steps, 0, 30_000)
    bmi = table["bmi"].to_numpy()
    assert _within(bmi, 15, 40)
    assert np.array_equal(bmi, np.round(bmi, 1))
    temperature = table["temperature"].to_numpy()
    assert _within(temperature, 35.5, 38.5)
    assert set(table["country"].to_pylist()) == {"FR", "DE", "US", "JP", "BR"}
    assert set(table["app_version"].drop_null().to_pylist()) == {"1.0", "1.1", "2.0"}
    lengths = {len(text) for text in table["device_id"].to_pylist()}
    assert lengths == set(range(6, 13))
    assert all(text.isalnum() and text == text.lower() for text in table["device_id"].to_pylist()[:1000])


def test_a_wide_normal_has_the_mean_and_std_asked_for() -> None:
    # Given a normal whose range holds all but a negligible tail (6 std either side)
    attribute = {
        "name": "x",
        "type": "float",
        "min": 100 - 6 * 15,
        "max": 100 + 6 * 15,
        "distribution": {"kind": "normal", "mean": 100, "std": 15},
    }

    values = _table(_schema([attribute], rows=200_000))["x"].to_numpy()

    # Then mean and std match within a few standard errors
    assert values.mean() == pytest.approx(100, abs=4 * 15 / np.sqrt(200_000))
    assert values.std() == pytest.approx(15, rel=0.01)


def test_a_narrow_normal_is_truncated_not_piled_on_its_bounds() -> None:
    # Given a normal cut at one std either side
    attribute = {
        "name": "x",
        "type": "float",
        "min": -1,
        "max": 1,
        "distribution": {"kind": "normal", "mean": 0, "std": 1},
    }

    values = _table(_schema([attribute], rows=200_000))["x"].to_numpy()

    # Then the values have the truncated normal's spread (0.5377 std), with no spike at the bounds
    assert values.std() == pytest.approx(0.5377, rel=0.01)
    assert np.mean(np.abs(values) > 0.99) < 0.01


def test_an_int_normal_is_centred_on_its_mean() -> None:
    attribute = {
        "name": "n",
        "type": "int",
        "min": 0,
        "max": 200,
        "distribution": {"kind": "normal", "mean": 100, "std": 10},
    }

    values = _table(_schema([attribute], rows=100_000))["n"].to_numpy()

    assert values.mean() == pytest.approx(100, abs=0.2)
    assert values.std() == pytest.approx(10, rel=0.02)


@pytest.mark.parametrize("null_ratio", [0.0, 0.1, 0.5, 1.0])
def test_the_null_ratio_is_kept(null_ratio: float) -> None:
    attribute = {"name": "x", "type": "float", "min": 0, "max": 1, "null_ratio": null_ratio}

    column = _table(_schema([attribute], rows=100_000))["x"]

    assert column.null_count / len(column) == pytest.approx(null_ratio, abs=0.005)


def test_nulls_leave_the_other_values_as_they_were() -> None:
    # Given one attribute with and without nulls
    plain = {"name": "x", "type": "int", "min": 0, "max": 9}

    # Then the values that are not null are the ones drawn without nulls
    without = _table(_schema([plain]))["x"]
    with_nulls = _table(_schema([{**plain, "null_ratio": 0.3}]))["x"]
    kept = with_nulls.is_valid().to_numpy(zero_copy_only=False)
    assert np.array_equal(with_nulls.drop_null().to_numpy(), without.to_numpy()[kept])


def test_choices_are_drawn_uniformly() -> None:
    countries = _table(_schema([SCHEMA[5]], rows=100_000))["country"].to_pylist()

    for country in SCHEMA[5]["choices"]:
        assert countries.count(country) / len(countries) == pytest.approx(0.2, abs=0.01)


def test_the_quantile_function_is_accurate_from_tail_to_tail() -> None:
    p = np.concatenate(
        [np.logspace(-300, -2, 300), np.linspace(0.01, 0.99, 99), 1 - np.logspace(-15, -2, 100)]
    )

    exact = np.array([NormalDist().inv_cdf(float(x)) for x in p])
    assert np.max(np.abs(normal_quantile(p) - exact) / np.maximum(1.0, np.abs(exact))) < 2e-9


# -- the files ----------------------------------------------------------------------------------


def test_csv_and_parquet_hold_the_same_rows(tmp_path: Path) -> None:
    # Given one sample written in both formats
    schema = _schema(rows=3_000)
    write_sample(schema, 5, tmp_path / "s.csv", "csv")
    write_sample(schema, 5, tmp_path / "s.parquet", "parquet")

    # Then the CSV has a header of the attribute names, and its rows are the Parquet rows
    with (tmp_path / "s.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [a["name"] for a in SCHEMA]
    parquet = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert len(rows) - 1 == len(parquet) == 3_000
    for text_row, row in zip(rows[1:], parquet, strict=True):
        assert text_row == [_as_csv(row[name]) for name in rows[0]]


def test_parquet_keeps_the_types(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    write_sample(_schema(rows=10), 5, path, "parquet")

    types = {field.name: str(field.type) for field in pq.read_schema(path)}
    assert types == {
        "age": "int64",
        "steps": "int64",
        "bmi": "double",
        "temperature": "double",
        "smoker": "bool",
        "country": "dictionary<values=string, indices=int32, ordered=0>",
        "app_version": "string",
        "device_id": "string",
    }


def _within(values: np.ndarray, low: float, high: float) -> bool:
    return bool(np.all((values >= low) & (values <= high)))


def _as_csv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return str(value)
