"""Sample datasets drawn from a schema, written as CSV or Parquet in bounded chunks.

Each column is drawn whole-array by numpy from streams of its own, seeded by the
dataset's seed and the column's name: adding, removing or reordering attributes
leaves every other column as it was. Draws consume their streams in row order,
so a column is also the same whatever the chunk size: only the memory a chunk
takes depends on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cohort.datasets.schema import Attribute, DatasetSchema, Normal, SampleFormat, normal_cdf

# A chunk holds about this much CSV text, and never more rows than MAX_CHUNK_ROWS.
CHUNK_BYTES = 32 * 1024 * 1024
MAX_CHUNK_ROWS = 131_072
_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_VALUES, _NULLS, _LENGTHS = range(3)  # the streams of one column


def arrow_type(attribute: Attribute) -> pa.DataType:
    if attribute.type == "int":
        return pa.int64()
    if attribute.type == "float":
        return pa.float64()
    if attribute.type == "bool":
        return pa.bool_()
    if attribute.type == "category":
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def arrow_schema(schema: DatasetSchema) -> pa.Schema:
    return pa.schema([pa.field(a.name, arrow_type(a), nullable=a.null_ratio > 0) for a in schema.attributes])


def chunk_rows(schema: DatasetSchema) -> int:
    return max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // schema.csv_row_bytes()))


def batches(schema: DatasetSchema, seed: int, rows_per_chunk: int | None = None) -> Iterator[pa.RecordBatch]:
    """The sample as record batches of ``rows_per_chunk`` rows (the last one shorter)."""
    size = rows_per_chunk or chunk_rows(schema)
    target = arrow_schema(schema)
    columns = [_Column.of(attribute, seed) for attribute in schema.attributes]
    for start in range(0, schema.rows, size):
        n = min(size, schema.rows - start)
        yield pa.RecordBatch.from_arrays([column.draw(n) for column in columns], schema=target)


def write_sample(
    schema: DatasetSchema, seed: int, path: Path, fmt: SampleFormat, rows_per_chunk: int | None = None
) -> int:
    """Write the sample to ``path``, one chunk at a time; returns the file's size in bytes."""
    target = arrow_schema(schema)
    writer: pa_csv.CSVWriter | pq.ParquetWriter
    if fmt == "csv":
        writer = pa_csv.CSVWriter(str(path), target)
    else:
        # Each chunk is one row group; dictionaries keep categories small.
        writer = pq.ParquetWriter(str(path), target, compression="snappy")
    with writer:
        for batch in batches(schema, seed, rows_per_chunk):
            writer.write_batch(batch)
    return path.stat().st_size


def _stream(seed: int, name: str, purpose: int) -> np.random.Generator:
    column_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(column_key, purpose))))


@dataclass
class _Column:
    attribute: Attribute
    draw_values: Callable[[int], pa.Array]
    nulls: np.random.Generator

    @classmethod
    def of(cls, attribute: Attribute, seed: int) -> _Column:
        return cls(attribute, _drawer(attribute, seed), _stream(seed, attribute.name, _NULLS))

    def draw(self, n: int) -> pa.Array:
        # The null mask has a stream of its own, so the values do not depend on the null ratio.
        mask = self.nulls.random(n) < self.attribute.null_ratio if self.attribute.null_ratio else None
        return self.draw_values(n) if mask is None else _with_nulls(self.draw_values(n), mask)


def _with_nulls(array: pa.Array, mask: np.ndarray) -> pa.Array:
    if isinstance(array, pa.DictionaryArray):
        return pa.DictionaryArray.from_arrays(_with_nulls(array.indices, mask), array.dictionary)
    validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(array.type, len(array), [validity, *array.buffers()[1:]])


def _drawer(attribute: Attribute, seed: int) -> Callable[[int], pa.Array]:
    values = _stream(seed, attribute.name, _VALUES)
    if attribute.choices:
        return _choices_drawer(attribute, values)
    if attribute.type == "string":
        return _text_drawer(attribute, values, _stream(seed, attribute.name, _LENGTHS))
    if attribute.type == "int":
        return _int_drawer(attribute, values)
    if attribute.type == "float":
        return _float_drawer(attribute, values)
    return lambda n: pa.array(values.random(n) < 0.5)  # bool


def _int_drawer(attribute: Attribute, rng: np.random.Generator) -> Callable[[int], pa.Array]:
    low, high = int(attribute.min or 0), int(attribute.max or 0)  # set on a valid int
    normal = attribute.distribution if isinstance(attribute.distribution, Normal) else None

    def draw(n: int) -> pa.Array:
        if normal is None:
            return pa.array(rng.integers(low, high, size=n, endpoint=True, dtype=np.int64))
        # Drawn on [low - 0.5, high + 0.5] and rounded: each int gets the mass around it.
        values = np.rint(_truncated_normal(rng, n, normal, low - 0.5, high + 0.5))
        return pa.array(np.clip(values, low, high).astype(np.int64))

    return draw


def _float_drawer(attribute: Attribute, rng: np.random.Generator) -> Callable[[int], pa.Array]:
    low, high, decimals = float(attribute.min or 0), float(attribute.max or 0), attribute.decimals
    normal = attribute.distribution if isinstance(attribute.distribution, Normal) else None

    def draw(n: int) -> pa.Array:
        if normal is not None:
            values = _truncated_normal(rng, n, normal, low, high)
        else:
            values = low + (high - low) * rng.random(n)
        if decimals is not None:
            values = np.clip(np.round(values, decimals), low, high)
        return pa.array(values)

    return draw


def _choices_drawer(attribute: Attribute, rng: np.random.Generator) -> Callable[[int], pa.Array]:
    choices = pa.array(attribute.choices, type=pa.string())
    dictionary = attribute.type == "category"

    def draw(n: int) -> pa.Array:
        indices = pa.array(rng.integers(0, len(choices), size=n, dtype=np.int32))
        array = pa.DictionaryArray.from_arrays(indices, choices)
        return array if dictionary else array.dictionary_decode()

    return draw


def _text_drawer(
    attribute: Attribute, chars: np.random.Generator, lengths: np.random.Generator
) -> Callable[[int], pa.Array]:
    """Random lowercase letters and digits, of a length drawn uniformly from the range."""
    low, high = int(attribute.min or 0), int(attribute.max or 0)

    def draw(n: int) -> pa.Array:
        sizes = lengths.integers(low, high, size=n, endpoint=True, dtype=np.int32)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(sizes, out=offsets[1:])
        text = _ALPHABET[chars.integers(0, len(_ALPHABET), size=int(offsets[-1]), dtype=np.int32)]
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])

    return draw


def _truncated_normal(
    rng: np.random.Generator, n: int, normal: Normal, low: float, high: float
) -> np.ndarray:
    """N(mean, std) restricted to [low, high], by inverting the CDF: one uniform per value, no rejection."""
    z_low, z_high = (low - normal.mean) / normal.std, (high - normal.mean) / normal.std
    sign = 1.0
    if z_low > 0:  # all in the upper tail: mirror it, where the CDF keeps its precision
        z_low, z_high, sign = -z_high, -z_low, -1.0
    p_low, p_high = normal_cdf(z_low), normal_cdf(z_high)
    z = normal_quantile(p_low + (p_high - p_low) * rng.random(n))
    return np.clip(normal.mean + sign * normal.std * z, low, high)


# Acklam's rational approximation of the standard normal quantile (relative error
# below 1.2e-9), vectorised: numpy has no inverse error function of its own. The
# denominators' coefficients end with their constant term, 1.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
    1.0,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00, 1.0)
_P_TAIL = 0.02425


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal's quantile function (inverse CDF), for ``0 <= p <= 1``."""
    p = np.clip(p, np.finfo(float).tiny, 1.0 - np.finfo(float).epsneg)  # finite even at 0 and 1
    q = p - 0.5
    central = np.polyval(_A, q * q) * q / np.polyval(_B, q * q)
    t = np.sqrt(-2.0 * np.log(np.minimum(p, 1.0 - p)))
    tail = np.polyval(_C, t) / np.polyval(_D, t)  # the lower tail's; the upper one's is its negative
    return np.where(p < _P_TAIL, tail, np.where(p > 1.0 - _P_TAIL, -tail, central))
