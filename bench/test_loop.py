"""How long the fast loop and the full gate take: `make check` against `make test`, in one run.

`make check` is what a developer runs after every change (lint, then the tests that need no local
platform, no browser and no minutes); `make test` is the gate CI runs. Both run here, one after the
other, on the same tree and machine, so their ratio shows how much of the gate the fast loop costs.
Targets, on 2 cores: `make check` within 3 minutes, `make test` within 30. The set-up both share
(.venv, node_modules, the wheelhouse, the built dashboard) is made first and not timed.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from report import Target, markdown_table, publish, verdicts
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
CHECK_TARGET_SECONDS = 3 * 60
TEST_TARGET_SECONDS = 30 * 60
SLOWEST = 8  # the check's slowest tests, listed so they can be made faster or marked slow
RERUN = ".venv/bin/python bench/test_loop.py"
MAKE = shutil.which("make") or "make"
_PROGRESS = re.compile(r"\[\s*(\d+)%\]")
_PASSED = re.compile(r"(\d+) passed")
_DURATION = re.compile(r"^(\d+\.\d+)s (setup|call|teardown)\s+(.+?)\s*$")


@dataclass
class Run:
    seconds: float
    passed: int
    slowest: list[tuple[float, str]]


def _make(target: str, env: dict[str, str]) -> Run:
    """Run ``make target``, a progress bar following pytest's percentage; fail loudly if it fails."""
    lines: list[str] = []
    started = time.perf_counter()
    with (
        tqdm(total=100, desc=f"make {target}", unit="%") as bar,
        subprocess.Popen(
            [MAKE, "--no-print-directory", target],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if match := _PROGRESS.search(line):
                bar.update(int(match.group(1)) - bar.n)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"make {target} failed:\n" + "\n".join(lines[-40:]))
    passed = [int(m.group(1)) for line in lines if (m := _PASSED.search(line)) and "in " in line]
    slowest = [(float(m.group(1)), m.group(3)) for line in lines if (m := _DURATION.match(line))]
    return Run(seconds, sum(passed), sorted(slowest, reverse=True)[:SLOWEST])


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main() -> int:
    env = {**os.environ, "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1")}
    subprocess.run([MAKE, "--no-print-directory", "lambda-wheels", "website"], cwd=REPO, env=env, check=True)
    check = _make("check", {**env, "PYTEST_ADDOPTS": f"--durations={SLOWEST}"})
    gate = _make("test", env)
    targets = [
        Target("`make check` ≤ 3 min", _minutes(check.seconds), check.seconds <= CHECK_TARGET_SECONDS),
        Target("`make test` ≤ 30 min", _minutes(gate.seconds), gate.seconds <= TEST_TARGET_SECONDS),
    ]
    when = f"{datetime.date.today():%Y-%m-%d}, {os.cpu_count()} cores"
    runs = markdown_table(
        ["Command", "Wall time", "Tests passed", "Share of `make test`"],
        [
            [
                "`make check`",
                _minutes(check.seconds),
                f"{check.passed:,}",
                f"{check.seconds / gate.seconds:.2f}x",
            ],
            ["`make test`", _minutes(gate.seconds), f"{gate.passed:,}", "1.00x"],
        ],
    )
    slowest = markdown_table(
        ["Test (phase: setup or call)", "Seconds"],
        [[f"`{name}`", f"{seconds:.1f}"] for seconds, name in check.slowest],
    )
    section = f"""## Test loop

The fast loop and the full gate, one after the other on the same tree, after the set-up both share
(`.venv`, the Lambda wheelhouse, the built dashboard) was made. `make check` is ruff and every test
that needs no local platform, no browser and no minutes (the `platform`, `browser` and `slow` markers
of `pyproject.toml`); `make test` is ruff, the CDK synth with cdk-nag and cfn-lint, the dashboard's
unit tests and every test. Measured on {when}.

{runs}

{verdicts(targets)}

The slowest steps of `make check`, which are where to look before it outgrows its budget:

{slowest}

Rerun with `{RERUN}` (about 10 minutes on 2 cores); it rewrites this section and exits 1
if a target is missed.
"""
    return publish("test-loop", section, targets)


if __name__ == "__main__":
    sys.exit(main())
