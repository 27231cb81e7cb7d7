"""How long `cdk synth` of every Cohort stack takes, against an empty CDK app.

Both run here, in fresh processes with fresh output folders, so the ratio shows
what Cohort's stacks, Lambda bundling and cdk-nag add to the cost of starting
the CDK itself. Target: the whole app synthesizes in at most 60 s on 2 cores.
Needs AWS_REGION (the Makefile's `bench` target sets it) and the Lambda
wheelhouse (`make synth` fills it).
"""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_section
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0
RUNS = 3
EMPTY_APP = "import aws_cdk; aws_cdk.App(outdir={outdir!r}).synth()"
RERUN = "AWS_REGION=us-east-1 .venv/bin/python bench/synth.py"


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure() -> tuple[list[float], list[float]]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    empty, full = [], []
    for _ in tqdm(range(RUNS), desc="synth runs", unit="run"):
        with tempfile.TemporaryDirectory() as outdir:
            empty.append(_timed([sys.executable, "-c", EMPTY_APP.format(outdir=outdir)], env))
        with tempfile.TemporaryDirectory() as outdir:
            full.append(_timed([sys.executable, "app.py"], {**env, "CDK_OUTDIR": outdir}))
    return empty, full


def _row(what: str, times: list[float], baseline: float) -> str:
    median = statistics.median(times)
    return (
        f"| {what:<21} | {min(times):5.1f} | {median:8.1f} | {max(times):5.1f} | {median / baseline:17.2f}x |"
    )


def main() -> int:
    if not os.environ.get("AWS_REGION"):
        sys.exit("set AWS_REGION: synth needs a region")
    empty, full = measure()
    slowest = max(full)
    verdict = "PASS" if slowest <= TARGET_SECONDS else "FAIL"
    baseline = statistics.median(empty)
    when = f"{datetime.date.today():%Y-%m-%d}, {os.cpu_count()} cores"
    section = f"""## CDK synth of every stack

All eight stacks of the dev stage, synthesized by `python app.py` into a fresh folder: Lambda layer
and code bundled locally from the wheelhouse, container images staged as sources only (no Docker),
cdk-nag's AwsSolutions checks run. The baseline is an empty CDK app in the same conditions, which is
mostly the cost of starting jsii and Node. Measured on {when}, {RUNS} interleaved runs each.

| What                  | min s | median s | max s | median / empty app |
| --------------------- | ----: | -------: | ----: | -----------------: |
{_row("Empty CDK app", empty, baseline)}
{_row("Cohort, every stack", full, baseline)}

Target: the slowest full synth ≤ {TARGET_SECONDS:.0f} s: **{verdict}** ({slowest:.1f} s).

Rerun with `{RERUN}` (or `make bench`); it rewrites this section and exits 1 if the target is missed.
"""
    print(section)
    print(f"Wrote {write_section('synth', section)}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
