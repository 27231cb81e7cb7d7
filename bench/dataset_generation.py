"""Benchmark sample-dataset generation against a plain row-by-row ``csv.writer``.

One schema of 10 attributes (ints and floats, uniform and normal, a bool with nulls, categories, a
choice of strings and random strings) and 1,000,000 rows, written to local files (no S3) three ways
in one process, runs interleaved so machine noise largely cancels in the ratios:

1. Cohort's generator (``cohort.datasets.generation.write_sample``) to CSV;
2. the same to Parquet; the dataset function writes both, so their sum is what the target is about;
3. a baseline: ``csv.writer`` fed row by row, each cell drawn with Python's ``random``.

Peak memory is the RSS high-water above the process's resting RSS while one file is written, in a
fresh process per figure, at two sizes: generation works in chunks, so it must not grow with rows.

Targets: CSV plus Parquet of 1,000,000 x 10 in at most 3 s (on 2 cores); peak extra memory at most
256 MB, and not growing by more than 32 MB from 250,000 to 1,000,000 rows. Prints the figures,
rewrites its section of docs/benchmarks.md and exits 1 if a target is missed. Linux only: memory is
read from /proc.

Run: .venv/bin/python bench/dataset_generation.py
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from report import (
    Target,
    cpu_model,
    in_fresh_process,
    markdown_table,
    peak_extra_bytes,
    publish,
    verdicts,
)
from tqdm import tqdm

from cohort.datasets.generation import MAX_CHUNK_ROWS, write_sample
from cohort.datasets.schema import Attribute, DatasetSchema, Normal

ROWS = 1_000_000
MEMORY_ROWS = (250_000, 1_000_000)
REPEATS = 3
SEED = 2026
TIME_TARGET_SECONDS = 3.0
MEMORY_TARGET_MB = 256.0
GROWTH_TOLERANCE_MB = 32.0
RERUN = ".venv/bin/python bench/dataset_generation.py"
ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "age", "type": "int", "min": 18, "max": 90},
    {
        "name": "bmi",
        "type": "float",
        "min": 15,
        "max": 40,
        "decimals": 1,
        "distribution": {"kind": "normal", "mean": 25, "std": 4},
    },
    {
        "name": "heart_rate",
        "type": "float",
        "min": 40,
        "max": 180,
        "null_ratio": 0.05,
        "distribution": {"kind": "normal", "mean": 72, "std": 12},
    },
    {
        "name": "steps",
        "type": "int",
        "min": 0,
        "max": 30_000,
        "distribution": {"kind": "normal", "mean": 8_000, "std": 3_000},
    },
    {"name": "sleep_hours", "type": "float", "min": 0, "max": 12},
    {"name": "smoker", "type": "bool", "null_ratio": 0.1},
    {"name": "country", "type": "category", "choices": ["FR", "DE", "US", "JP", "BR", "IN"]},
    {"name": "os", "type": "category", "choices": ["android", "ios"]},
    {"name": "app_version", "type": "string", "choices": ["1.0.0", "1.1.0", "2.0.0"]},
    {"name": "device_id", "type": "string", "min": 12, "max": 12},
]


def schema(rows: int = ROWS) -> DatasetSchema:
    return DatasetSchema.model_validate({"attributes": ATTRIBUTES, "rows": rows, "seed": SEED})


# -- the baseline: one Python call per cell -------------------------------------------------------


def _cell_drawer(attribute: Attribute, rng: random.Random) -> Callable[[], object]:
    low, high = attribute.min or 0, attribute.max or 0
    normal = attribute.distribution if isinstance(attribute.distribution, Normal) else None

    def truncated_normal(lo: float, hi: float) -> float:
        while True:
            value = rng.gauss(normal.mean, normal.std)
            if lo <= value <= hi:
                return value

    if attribute.type == "int" and normal:
        return lambda: round(truncated_normal(low - 0.5, high + 0.5))
    if attribute.type == "int":
        return lambda: rng.randint(int(low), int(high))
    if attribute.type == "float":
        draw = (lambda: truncated_normal(low, high)) if normal else (lambda: rng.uniform(low, high))
        return draw if attribute.decimals is None else lambda: round(draw(), attribute.decimals)
    if attribute.type == "bool":
        return lambda: "true" if rng.random() < 0.5 else "false"
    if attribute.choices:
        return lambda: rng.choice(attribute.choices)
    letters = string.ascii_lowercase + string.digits
    return lambda: "".join(rng.choices(letters, k=rng.randint(int(low), int(high))))


def write_row_by_row(sample: DatasetSchema, path: Path) -> None:
    rng = random.Random(SEED)
    cells = [(_cell_drawer(a, rng), a.null_ratio) for a in sample.attributes]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([a.name for a in sample.attributes])
        for _ in range(sample.rows):
            writer.writerow(["" if ratio and rng.random() < ratio else draw() for draw, ratio in cells])


# -- measuring ----------------------------------------------------------------------------------


def _shape(path: Path) -> tuple[list[str], int]:
    """A CSV file's header and its number of rows."""
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        return next(rows), sum(1 for _ in rows)


def time_methods(methods: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Seconds per run of each method, runs interleaved so a noisy spell hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in tqdm(range(REPEATS), desc="timing", unit="round"):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
    return times


def measure_peak_extra(fmt: str, rows: int) -> int:
    """Bytes of RSS high-water above the resting process while one sample file is written."""
    sample = schema(rows)
    with tempfile.TemporaryDirectory() as folder:
        write_sample(schema(1_000), SEED, Path(folder) / f"warm.{fmt}", fmt)
        pa.default_memory_pool().release_unused()
        return peak_extra_bytes(lambda: write_sample(sample, SEED, Path(folder) / f"sample.{fmt}", fmt))


def peak_extra_in_fresh_process(fmt: str, rows: int) -> int:
    return in_fresh_process(__file__, fmt, rows)


# -- the report -----------------------------------------------------------------------------------


def render(
    times: dict[str, list[float]],
    sizes: dict[str, int],
    memory: dict[str, dict[int, float]],
    targets: list[Target],
    load: float,
) -> str:
    best = {name: min(runs) for name, runs in times.items()}
    median = {name: statistics.median(runs) for name, runs in times.items()}
    baseline = best["row by row"]
    labels = {
        "csv": "Cohort: `write_sample`, CSV",
        "parquet": "Cohort: `write_sample`, Parquet",
        "row by row": "Baseline: `csv.writer` row by row, `random` per cell, CSV",
    }
    rows = [
        [label, f"{best[k]:.2f}", f"{median[k]:.2f}", f"{sizes[k] / 1e6:.0f}", f"{baseline / best[k]:.1f}x"]
        for k, label in labels.items()
    ]
    both = best["csv"] + best["parquet"]
    rows.insert(2, ["Cohort: CSV + Parquet, as the dataset function writes them", f"{both:.2f}", "", "", ""])
    timing = markdown_table(["Method", "min s", "median s", "file MB", "baseline / method"], rows)
    mem = markdown_table(
        ["Format", *(f"{n:,} rows" for n in MEMORY_ROWS)],
        [[fmt, *(f"{memory[fmt][n]:.0f} MB" for n in MEMORY_ROWS)] for fmt in memory],
    )
    return f"""## Sample-dataset generation

{ROWS:,} rows x {len(ATTRIBUTES)} attributes (ints and floats, uniform and normal, a bool and a float with \
nulls, two categories, a choice of strings, random 12-character strings), written to local files without \
S3. Measured on {datetime.datetime.now(datetime.UTC):%Y-%m-%d}: {cpu_model()}, {os.cpu_count()} cores, \
numpy {np.__version__}, pyarrow {pa.__version__}, Python {platform.python_version()}, load average \
{load:.1f} at the start. Times are the minimum and median of {REPEATS} interleaved runs; the ratio uses \
the minima, since noise only adds time. The baseline draws the same kinds of values (a normal by \
rejection) one Python call per cell.

{timing}

Peak extra memory (RSS high-water above the resting process) while one file is written, each in a fresh \
process; generation works in chunks of up to {MAX_CHUNK_ROWS:,} rows, so it does not grow with the rows:

{mem}

{verdicts(targets)}

Rerun with `{RERUN}` (or `make bench`); it rewrites this section and exits 1 if a target is missed.
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", nargs=2, metavar=("FORMAT", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        fmt, rows = args.memory
        print(measure_peak_extra(fmt, int(rows)))
        return 0

    load = os.getloadavg()[0]
    sample = schema()
    with tempfile.TemporaryDirectory() as folder:
        paths = {
            "csv": Path(folder) / "sample.csv",
            "parquet": Path(folder) / "sample.parquet",
            "row by row": Path(folder) / "row-by-row.csv",
        }
        times = time_methods(
            {
                "csv": lambda: write_sample(sample, SEED, paths["csv"], "csv"),
                "parquet": lambda: write_sample(sample, SEED, paths["parquet"], "parquet"),
                "row by row": lambda: write_row_by_row(sample, paths["row by row"]),
            }
        )
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        same_shape = _shape(paths["csv"]) == _shape(paths["row by row"])
    memory: dict[str, dict[int, float]] = {fmt: {} for fmt in ("csv", "parquet")}
    for fmt, rows in tqdm([(f, n) for f in memory for n in MEMORY_ROWS], desc="memory", unit="run"):
        memory[fmt][rows] = peak_extra_in_fresh_process(fmt, rows) / 1e6

    both = min(times["csv"]) + min(times["parquet"])
    peak = max(max(by_rows.values()) for by_rows in memory.values())
    growth = max(by_rows[MEMORY_ROWS[-1]] - by_rows[MEMORY_ROWS[0]] for by_rows in memory.values())
    targets = [
        Target(
            f"CSV + Parquet of {ROWS:,} x {len(ATTRIBUTES)} <= {TIME_TARGET_SECONDS:g} s",
            f"{both:.2f} s",
            both <= TIME_TARGET_SECONDS,
        ),
        Target(f"Peak extra memory <= {MEMORY_TARGET_MB:.0f} MB", f"{peak:.0f} MB", peak <= MEMORY_TARGET_MB),
        Target(
            f"Memory does not grow with rows (<= {GROWTH_TOLERANCE_MB:.0f} MB)",
            f"{growth:+.0f} MB from {MEMORY_ROWS[0]:,} to {MEMORY_ROWS[-1]:,} rows",
            growth <= GROWTH_TOLERANCE_MB,
        ),
        Target("Same header and row count as the baseline", "yes" if same_shape else "no", same_shape),
    ]
    section = render(times, sizes, memory, targets, load)
    return publish("dataset-generation", section, targets)


if __name__ == "__main__":
    sys.exit(main())
