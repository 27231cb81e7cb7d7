"""Benchmark the FL node's streaming FedAvg against collect-then-average and a plain read, and its
report path with the bounds on each report against the unbounded float32 one it replaced.

N updates of a 2,000,000-parameter float32 model are prepared once as safetensors bytes, the way
they arrive over HTTP, then aggregated in one process, so machine noise largely cancels in the
ratios:

1. streaming: ``view_tensors`` then ``StreamingFedAvg.add`` (a float32 partial sum, flushed into
   the float64 total every 16 reports) per update, then ``apply_to``;
2. collect-then-average: view all N, stack them, take the weighted mean;
3. read: every byte of every update read once, the memory-bandwidth limit;
4. the report path as the node runs it now: the sample cap, ``view_tensors``, the norm and its
   bound (``bounds.measure``, which also proves every value finite), the clipping factor, and the
   two-level fold; with ``clip_norm`` at the updates' median norm, so half of them are clipped;
5. the report path as it was: ``decode`` (``view_tensors`` and the finite check) and a float32
   fold, kept here as ``Float32Fold``.

Targets: the bounded report path takes at most 1.3x the old one; streaming takes at most 3x the
read time; its peak extra memory is at most 5x the model's size and does not grow with N. Prints
the figures, rewrites its section of docs/benchmarks.md and exits 1 if a target is missed. Linux
only: memory is read from /proc.

Run: .venv/bin/python bench/aggregation.py
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import torch
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

from cohort.domain.weights import (
    Tensors,
    TensorSignature,
    check_values,
    contiguous_span,
    decode,
    encode,
    view_tensors,
)
from cohort.federated.aggregation import StreamingFedAvg
from cohort.federated.bounds import check_sample_count, clip_factor, measure, update_norm

# An MLP on 28x28 inputs: two 1,000-wide hidden layers, a LayerNorm and a 212-way head without
# bias. Exactly 2,000,000 parameters, with both large matrices and small vectors, since every
# tensor costs per-tensor overhead on top of bandwidth.
SHAPES: dict[str, tuple[int, ...]] = {
    "fc1.weight": (1000, 784),
    "fc1.bias": (1000,),
    "fc2.weight": (1000, 1000),
    "fc2.bias": (1000,),
    "norm.weight": (1000,),
    "norm.bias": (1000,),
    "head.weight": (212, 1000),
}
SIGNATURE = TensorSignature(SHAPES)
PARAMS = sum(math.prod(shape) for shape in SHAPES.values())
MODEL_NBYTES = SIGNATURE.nbytes
assert PARAMS == 2_000_000

N_UPDATES = 64
MEMORY_NS = (16, 64)
REPEATS = 7
SEED = 0
REPORT_PATH_TARGET = 1.3  # bounded report path time / the float32 one's
# Streaming time / read time. Reading an update moves its 8 MB once; folding it into the float32
# partial also reads and writes 8 MB, and every 16th report flushes it into the 16 MB float64 total.
TIME_TARGET = 3.0
# Peak extra memory / model bytes: the float64 total is 2x, its float32 partial 1x, the new float32
# model 1x, and the allocator's slack about 0.15x (measured 4.13x).
MEMORY_TARGET = 5.0
MAX_UPDATE_NORM = 1_000.0
MAX_SAMPLES = 10_000
# Growth from N=16 to N=64 allowed, in model sizes: RSS varied by up to 0.4x between identical
# runs here, while keeping even the smallest weight matrix of each update would add 5x.
GROWTH_TOLERANCE = 0.5

RERUN = ".venv/bin/python bench/aggregation.py"
STEPS = (
    "layout: header, zero-copy views, names, shapes, dtype (`view_tensors`)",
    "norm, its bound and every value finite, in one pass (`bounds.measure`)",
    "clipped two-level fold (`clip_factor`, `StreamingFedAvg.add`)",
    "before: every value finite (`check_values`)",
    "before: fold into a float32 sum (`Float32Fold.add`)",
)

Aggregator = Callable[[Sequence[bytes], Sequence[int], Tensors], Tensors]


def make_inputs(n: int) -> tuple[list[bytes], list[int], Tensors]:
    """N encoded updates, their sample counts, and the global model they apply to."""
    gen = torch.Generator().manual_seed(SEED)
    # Deltas are small next to the weights, as after a few local epochs.
    updates = [
        encode({name: torch.randn(shape, generator=gen) * 0.01 for name, shape in SHAPES.items()})
        for _ in range(n)
    ]
    # safetensors pads its header to 8 bytes, so an int64 view covers the whole payload.
    assert all(len(data) % 8 == 0 for data in updates)
    samples = torch.randint(1, 1_001, (n,), generator=gen).tolist()
    # Read the way the node reads its global model; this also warms up decode.
    global_weights = decode(
        encode({name: torch.randn(shape, generator=gen) for name, shape in SHAPES.items()}), SIGNATURE
    )
    return updates, samples, global_weights


def read_all(updates: Sequence[bytes]) -> None:
    # Summing an int64 zero-copy view reads each byte exactly once; integer adds are trivially
    # vectorised (overflow wraps harmlessly), so the loop is bound by memory, not arithmetic. It
    # runs on torch's intra-op threads like the aggregation's own ops, so the ratio compares like
    # with like. A uint8 sum is compute-bound (numpy's: ~8x slower here) and would flatter the ratio.
    for data in updates:
        torch.frombuffer(data, dtype=torch.int64).sum()


class Float32Fold:
    """The node's fold before issue 12, the baseline: a float32 running sum, updates neither
    bounded nor clipped. One value near 3e38 overflows it."""

    def __init__(self) -> None:
        self._order = sorted(SHAPES)
        self._flat_sum = torch.zeros(PARAMS, dtype=torch.float32)
        self.total_weight = 0

    def add(self, delta: Tensors, weight: int) -> None:
        span = contiguous_span(delta, self._order)
        assert span is not None  # decoded safetensors files are one span
        self._flat_sum.add_(span, alpha=weight)
        self.total_weight += weight

    def apply_to(self, global_weights: Tensors) -> Tensors:
        sizes = [math.prod(SHAPES[name]) for name in self._order]
        parts = dict(zip(self._order, self._flat_sum.split(sizes), strict=True))
        scale = 1.0 / self.total_weight
        return {
            name: global_weights[name].add(parts[name].view(SHAPES[name]), alpha=scale) for name in SHAPES
        }


def median_norm(updates: Sequence[bytes]) -> float:
    return statistics.median(update_norm(view_tensors(data, SIGNATURE)) for data in updates)


def breakdown(updates: Sequence[bytes], samples: Sequence[int], clip_norm: float) -> dict[str, float]:
    """Seconds spent in each step of both report paths, timed in place: alone, each step runs
    faster than between the others (torch's worker threads keep spinning after a parallel op)."""
    fedavg, before = StreamingFedAvg(SIGNATURE), Float32Fold()
    seconds = dict.fromkeys(STEPS, 0.0)
    for data, n in zip(updates, samples, strict=True):
        start = time.perf_counter()
        tensors = view_tensors(data, SIGNATURE, what="the update")
        parsed = time.perf_counter()
        update = measure(tensors, MAX_UPDATE_NORM)
        measured = time.perf_counter()
        fedavg.add(update.tensors, n, clip_factor(update.norm, clip_norm))
        folded = time.perf_counter()
        check_values(tensors, what="the update")
        checked = time.perf_counter()
        before.add(tensors, n)
        ended = time.perf_counter()
        for step, spent in zip(
            STEPS,
            (parsed - start, measured - parsed, folded - measured, checked - folded, ended - checked),
            strict=True,
        ):
            seconds[step] += spent
    return seconds


def streaming(updates: Sequence[bytes], samples: Sequence[int], global_weights: Tensors) -> Tensors:
    fedavg = StreamingFedAvg(SIGNATURE)
    for data, n in zip(updates, samples, strict=True):
        fedavg.add(view_tensors(data, SIGNATURE, what="the update"), n)
    return fedavg.apply_to(global_weights)


def report_path(
    updates: Sequence[bytes], samples: Sequence[int], global_weights: Tensors, clip_norm: float
) -> Tensors:
    """What the node does per report now: the sample cap, the layout, the norm and its bound (every
    value finite with it), then the clipped fold into the two-level sum."""
    fedavg = StreamingFedAvg(SIGNATURE)
    for data, n in zip(updates, samples, strict=True):
        check_sample_count(n, MAX_SAMPLES)
        update = measure(view_tensors(data, SIGNATURE, what="the update"), MAX_UPDATE_NORM)
        fedavg.add(update.tensors, n, clip_factor(update.norm, clip_norm))
    return fedavg.apply_to(global_weights)


def report_path_before(updates: Sequence[bytes], samples: Sequence[int], global_weights: Tensors) -> Tensors:
    """What the node did per report before the bounds: ``decode`` (layout, finite values), then the
    float32 fold."""
    fedavg = Float32Fold()
    for data, n in zip(updates, samples, strict=True):
        fedavg.add(decode(data, SIGNATURE, what="the update"), n)
    return fedavg.apply_to(global_weights)


def collect_then_average(
    updates: Sequence[bytes], samples: Sequence[int], global_weights: Tensors
) -> Tensors:
    deltas = [view_tensors(data, SIGNATURE, what="the update") for data in updates]
    fractions = torch.tensor(samples, dtype=torch.float32) / sum(samples)
    return {
        name: global_weights[name]
        + torch.tensordot(fractions, torch.stack([delta[name] for delta in deltas]), dims=1)
        for name in SHAPES
    }


AGGREGATORS: dict[str, Aggregator] = {
    "streaming": streaming,
    "collect-then-average": collect_then_average,
}


def time_methods(methods: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Seconds per run of each method, runs interleaved so a noisy spell hits all alike."""
    for method in methods.values():
        method()  # warm-up: thread pools, allocator arenas, first-touch page faults
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in tqdm(range(REPEATS), desc="timing", unit="round"):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
    return times


def measure_peak_extra(method: str, n: int) -> int:
    """Bytes of RSS high-water above the inputs while one aggregation runs, its result included."""
    updates, samples, global_weights = make_inputs(n)
    return peak_extra_bytes(lambda: AGGREGATORS[method](updates, samples, global_weights))


def peak_extra_in_fresh_process(method: str, n: int) -> int:
    return in_fresh_process(__file__, method, n)


def render(
    times: dict[str, list[float]],
    steps_taken: dict[str, float],
    memory: dict[str, dict[int, float]],
    targets: list[Target],
    load: float,
) -> str:
    best = {name: min(runs) * 1000 for name, runs in times.items()}
    median = {name: statistics.median(runs) * 1000 for name, runs in times.items()}
    read = best["read"]
    labels = {
        "read": "Read every byte once (bandwidth limit)",
        "streaming": "Streaming: view_tensors + StreamingFedAvg.add (two-level), then apply_to",
        "collect-then-average": "Collect-then-average: view all, stack, weighted sum",
        "report path": "Node's report path now: sample cap, layout, norm bound, clipped two-level fold",
        "report path before": "Node's report path before: decode (layout + finite) + float32 fold",
    }
    timing = markdown_table(
        ["Method", "min ms", "median ms", "min / read"],
        [
            [label, f"{best[k]:.1f}", f"{median[k]:.1f}", f"{best[k] / read:.2f}x"]
            for k, label in labels.items()
        ],
    )
    steps = markdown_table(
        ["Step of the report path", "min ms", "/ read"],
        [
            [step, f"{seconds * 1000:.1f}", f"{seconds * 1000 / read:.2f}x"]
            for step, seconds in steps_taken.items()
        ],
    )
    mem = markdown_table(
        ["Method", *(f"N = {n}" for n in MEMORY_NS)],
        [[name, *(f"{memory[name][n]:.2f}x" for n in MEMORY_NS)] for name in AGGREGATORS],
    )
    busy = (
        " Other test runs shared the machine while this was measured: the ratios compare runs \
interleaved in one process, but absolute times are inflated and vary."
        if load >= 1.0
        else ""
    )
    return f"""## Streaming FedAvg aggregation

{N_UPDATES} updates of a {PARAMS:,}-parameter float32 model ({MODEL_NBYTES:,} bytes each, \
{len(SHAPES)} tensors), prepared as safetensors bytes as they arrive over HTTP. Measured on \
{datetime.datetime.now(datetime.UTC):%Y-%m-%d}: {cpu_model()}, {os.cpu_count()} cores, \
torch {torch.__version__} on {torch.get_num_threads()} threads, Python {platform.python_version()}, \
load average {load:.1f} at the start. Times are the minimum and median of {REPEATS} interleaved runs \
after a warm-up; ratios use the minima, since noise only adds time.

{timing}

Where the report path's time goes, now and before, each step timed in place in {REPEATS} further \
runs of the loop (minimum per step; `apply_to` is negligible). The norm replaced the finite check: \
a float32 dot product is one pass like it, and a finite sum of squares proves every value finite. \
Clipping costs nothing: its factor joins the fold's multiplier. The fold has two levels: torch has \
no fused widening add, so folding each update into float64 cost three to four float32 adds (each \
chunk widened into a float64 buffer, then added). Each update is now added to a float32 partial sum, \
as before, and the partial is widened into the float64 total every 16 reports and before the total \
is read; a report weighing more than 4,096 samples goes straight into float64, so that the share \
cap can take its excess out without leaving its float32 rounding next to the light reports.{busy}

{steps}

Peak extra memory (RSS high-water above the inputs, the new global model included), in multiples of \
the model's {MODEL_NBYTES:,} bytes, each in a fresh process. The float64 total is 2x, its float32 \
partial 1x, the new float32 model 1x:

{mem}

{verdicts(targets)}

Rerun with `{RERUN}` (or `make bench`); it rewrites this section and exits 1 if a target is missed.
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The payloads are read-only bytes; torch warns about viewing them, though nothing writes to them.
    warnings.filterwarnings("ignore", message="The given buffer is not writable")
    if args.memory:
        method, n = args.memory
        print(measure_peak_extra(method, int(n)))
        return 0

    load = os.getloadavg()[0]
    updates, samples, global_weights = make_inputs(N_UPDATES)
    fast = streaming(updates, samples, global_weights)
    naive = collect_then_average(updates, samples, global_weights)
    agree = all(torch.allclose(fast[name], naive[name], rtol=1e-5, atol=1e-6) for name in SHAPES)
    max_diff = max(float((fast[name] - naive[name]).abs().max()) for name in SHAPES)
    del fast, naive

    clip_norm = median_norm(updates)
    bounded = report_path(updates, samples, global_weights, clip_norm=math.inf)
    before = report_path_before(updates, samples, global_weights)
    paths_agree = all(torch.allclose(bounded[name], before[name], rtol=1e-5, atol=1e-6) for name in SHAPES)
    del bounded, before

    times = time_methods(
        {
            "read": lambda: read_all(updates),
            "streaming": lambda: streaming(updates, samples, global_weights),
            "collect-then-average": lambda: collect_then_average(updates, samples, global_weights),
            "report path": lambda: report_path(updates, samples, global_weights, clip_norm),
            "report path before": lambda: report_path_before(updates, samples, global_weights),
        }
    )
    runs = [
        breakdown(updates, samples, clip_norm) for _ in tqdm(range(REPEATS), desc="breakdown", unit="run")
    ]
    steps_taken = {step: min(run[step] for run in runs) for step in STEPS}
    memory: dict[str, dict[int, float]] = {name: {} for name in AGGREGATORS}
    for name, n in tqdm([(name, n) for name in AGGREGATORS for n in MEMORY_NS], desc="memory", unit="run"):
        memory[name][n] = peak_extra_in_fresh_process(name, n) / MODEL_NBYTES

    time_ratio = min(times["streaming"]) / min(times["read"])
    path_ratio = min(times["report path"]) / min(times["report path before"])
    stream_mem = memory["streaming"]
    growth = stream_mem[MEMORY_NS[-1]] - stream_mem[MEMORY_NS[0]]
    targets = [
        Target(
            f"Report path with the bounds <= {REPORT_PATH_TARGET:g}x the float32 one",
            f"{path_ratio:.2f}x",
            path_ratio <= REPORT_PATH_TARGET,
        ),
        Target(
            "Unclipped, both report paths give the same model",
            "yes" if paths_agree else "no",
            paths_agree,
        ),
        Target(f"Streaming time <= {TIME_TARGET:g}x read", f"{time_ratio:.2f}x", time_ratio <= TIME_TARGET),
        Target(
            f"Streaming peak extra memory <= {MEMORY_TARGET:g}x model",
            ", ".join(f"{stream_mem[n]:.2f}x (N = {n})" for n in MEMORY_NS),
            max(stream_mem.values()) <= MEMORY_TARGET,
        ),
        Target(
            f"Streaming memory does not grow with N (<= {GROWTH_TOLERANCE:g}x)",
            f"{growth:+.2f}x from N = {MEMORY_NS[0]} to {MEMORY_NS[-1]}",
            growth <= GROWTH_TOLERANCE,
        ),
        Target("Streaming equals collect-then-average", f"max abs diff {max_diff:.1e}", agree),
    ]
    section = render(times, steps_taken, memory, targets, load)
    return publish("aggregation", section, targets)


if __name__ == "__main__":
    sys.exit(main())
