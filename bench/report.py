"""Shared by the benchmarks: their tables, the machine's figures, and where they write them (each its
own marked section of docs/benchmarks.md)."""

from __future__ import annotations

import ctypes
import gc
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_TITLE = "# Benchmarks\n\nFigures measured by the scripts in `bench/`; each rewrites only its own section.\n"


def write_section(name: str, section: str) -> Path:
    """Replace the section between ``<!-- name:start -->`` and ``<!-- name:end -->``, or append it."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else _TITLE
    block = f"{start}\n{section}{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text, count=1)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    return DOC


class Target(NamedTuple):
    name: str
    measured: str
    passed: bool


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A markdown table padded to line up as plain text too."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i >= numeric_from else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if i >= numeric_from else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(header), line(rule), *(line(row) for row in rows)])


def verdicts(targets: Sequence[Target]) -> str:
    return markdown_table(
        ["Target", "Measured", "Result"],
        [[t.name, t.measured, "PASS" if t.passed else "FAIL"] for t in targets],
        numeric_from=3,
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM...), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_extra_bytes(run: Callable[[], object]) -> int:
    """Bytes of RSS high-water above the resting process while ``run`` runs (Linux only)."""
    gc.collect()
    # Heap freed while building the inputs would be reused unseen by RSS and hide part of the
    # peak, so glibc hands it back first.
    ctypes.CDLL(None).malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    baseline = status_bytes("VmRSS")
    run()
    return status_bytes("VmHWM") - baseline


def in_fresh_process(script: str, *args: object) -> int:
    """Run ``script --memory *args`` and return the number it prints last: nothing earlier lingers."""
    result = subprocess.run(
        [sys.executable, script, "--memory", *map(str, args)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


def publish(name: str, section: str, targets: Sequence[Target]) -> int:
    """Print and write the section, name each missed target; the exit status: 0 if all were met."""
    print(section)
    print(f"Wrote {write_section(name, section)}")
    for target in targets:
        if not target.passed:
            print(f"FAIL: {target.name} (measured {target.measured})", file=sys.stderr)
    return 0 if all(target.passed for target in targets) else 1
