"""Benchmark the ONNX import: the limited child's memory and its cost over converting in process.

Two MLPs exported as ONNX (Gemm, ReLU, Gemm), of 32 MiB and of 128 MiB, the largest file
``COHORT_MAX_ONNX_BYTES`` admits by default:

1. the child's peak extra memory: its RSS high-water converting the file, above its high-water
   converting a tiny model (the interpreter and its imports), each in a fresh process, as a multiple
   of the file's size. It must stay well inside the child's default memory limit;
2. at 128 MiB, the time of the whole sandboxed conversion (``run_child``: start, limits, file in,
   convert, pipe out) against the same conversion in this process (``convert`` and the safetensors
   encoding the child does), and against the sandboxed conversion of a tiny model, which is the
   child's fixed cost (the interpreter and its imports, onnx's above all); runs interleaved,
   minima compared.

Targets: peak extra memory at most 3.5x the file at both sizes, so the largest file fits the default
limit with room to spare; the sandbox's cost beyond its fixed start at most 2x the in-process
conversion. Prints the figures, rewrites its section of docs/benchmarks.md and exits 1 if a target
is missed.

Run: .venv/bin/python bench/onnx_import.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from report import Target, cpu_model, in_fresh_process, markdown_table, publish, verdicts
from safetensors.numpy import save

from cohort.onnx_import.convert import convert
from cohort.onnx_import.sandbox import SandboxLimits, run_child, start_child
from cohort.settings import Settings

MIB = 2**20
SIZES_MIB = (32, 128)
REPEATS = 5
TINY_MIB = 0.001  # a 16 x 16 model: what the child costs with (almost) nothing to convert
MEMORY_TARGET = 3.5
TIME_TARGET = 2.0
RERUN = ".venv/bin/python bench/onnx_import.py"


def mlp_file(size_mib: float) -> bytes:
    """An MLP whose weights take about ``size_mib`` MiB: [batch, width] -> width -> 10."""
    width = int((size_mib * MIB / 4) ** 0.5)
    rng = np.random.default_rng(0)

    def weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32) * 0.01, name)

    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["hidden"], transB=1),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("Gemm", ["active", "w2", "b2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [
            weight("w1", (width, width)),
            weight("b1", (width,)),
            weight("w2", (10, width)),
            weight("b2", (10,)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def default_limits() -> SandboxLimits:
    return SandboxLimits.of(Settings())


def child_peak_rss(path: str) -> int:
    """The child's peak RSS converting the file at ``path``, in bytes.

    The child is started on the file itself, so this process stays small: a child's peak counts the
    memory of the parent it was forked from, and would otherwise count the file held here.
    """
    with open(path, "rb") as source:
        child = start_child(source, default_limits())
        child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the child failed on {path} with exit status {child.returncode}")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def in_process(data: bytes) -> None:
    converted = convert(data)
    save(converted.weights)


def best_times(methods: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(REPEATS):
        for name, method in methods.items():
            started = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", nargs=1, metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(child_peak_rss(args.memory[0]))
        return 0

    load = os.getloadavg()[0]
    script = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as folder:
        paths = {size: Path(folder) / f"mlp-{size}.onnx" for size in (TINY_MIB, *SIZES_MIB)}
        for size, path in paths.items():
            path.write_bytes(mlp_file(size))
        files = {size: path.stat().st_size for size, path in paths.items()}
        resting = in_fresh_process(script, paths[TINY_MIB])
        extra = {size: (in_fresh_process(script, paths[size]) - resting) / files[size] for size in SIZES_MIB}

    largest, tiny = mlp_file(SIZES_MIB[-1]), mlp_file(TINY_MIB)
    limits = default_limits()
    times = best_times(
        {
            "in process": lambda: in_process(largest),
            "sandboxed": lambda: run_child(largest, limits),
            "start": lambda: run_child(tiny, limits),
        }
    )
    direct, sandboxed, start = (min(times[name]) for name in ("in process", "sandboxed", "start"))
    marginal = (sandboxed - start) / direct
    largest_extra = extra[SIZES_MIB[-1]] * files[SIZES_MIB[-1]]

    memory_rows = [
        [
            f"{files[size] / MIB:,.0f} MiB",
            f"{extra[size] * files[size] / MIB:,.0f} MiB",
            f"{extra[size]:.2f}x",
        ]
        for size in SIZES_MIB
    ]
    time_rows = [
        [
            label,
            f"{min(times[name]):.2f}",
            f"{np.median(times[name]):.2f}",
            f"{min(times[name]) / direct:.2f}x",
        ]
        for label, name in (
            ("In process: `convert` + safetensors encoding", "in process"),
            ("Sandboxed: `run_child` (start, limits, file in, convert, encode, pipe out)", "sandboxed"),
            ("Sandboxed, a 16 x 16 model: the child's fixed start", "start"),
        )
    ]
    targets = [
        Target(
            f"Child peak extra memory <= {MEMORY_TARGET}x the file",
            ", ".join(f"{extra[size]:.2f}x ({size} MiB)" for size in SIZES_MIB),
            all(value <= MEMORY_TARGET for value in extra.values()),
        ),
        Target(
            f"The largest file fits the child's default limit ({limits.memory_bytes / MIB:,.0f} MiB)",
            f"{largest_extra / MIB:,.0f} MiB",
            largest_extra <= limits.memory_bytes,
        ),
        Target(
            f"Sandboxed minus its start <= {TIME_TARGET}x in process",
            f"{marginal:.2f}x",
            marginal <= TIME_TARGET,
        ),
    ]
    section = f"""## ONNX import

An MLP (Gemm, ReLU, Gemm) exported as ONNX at two sizes, converted into the platform's format by the \
limited child process the orchestrator runs at commit (`cohort/onnx_import/sandbox.py`). Measured on \
{datetime.datetime.now(datetime.UTC):%Y-%m-%d}: {cpu_model()}, {os.cpu_count()} cores, \
onnx {onnx.__version__}, Python {platform.python_version()}, load average {load:.1f} at the start.

Peak extra memory of the child: its RSS high-water converting the file, above its high-water converting \
a 16 x 16 model ({resting / MIB:,.0f} MiB: the interpreter and its imports), each run from a fresh process. \
The weights are held once as the file, once parsed, once as arrays, and briefly three times while the \
safetensors encoding copies them:

{markdown_table(["File", "Peak extra", "/ file"], memory_rows)}

Time of one conversion of the {files[SIZES_MIB[-1]] / MIB:,.0f} MiB file, minimum and median of {REPEATS} \
interleaved runs, in seconds; the ratio uses the minima:

{markdown_table(["Method", "min s", "median s", "/ in process"], time_rows)}

Beyond its fixed start, which is mostly importing onnx, the sandbox costs {marginal:.2f}x the in-process \
conversion: the file and the weights each cross one more process boundary.

{verdicts(targets)}

Rerun with `{RERUN}` (or `make bench`); it rewrites this section and exits 1 if a target is missed.
"""
    return publish("onnx-import", section, targets)


if __name__ == "__main__":
    sys.exit(main())
