"""How long each Lambda handler takes to import: the part of a cold start that is ours.

Each ``lambdas/<name>/handler.py`` is laid out as its code asset is deployed
(the handler folder's files plus ``cohort/``, without ``__pycache__``) in a
temporary folder, and imported there by ``python -X importtime -c "import
handler"`` in a fresh process, with that folder as the working directory and on
``PYTHONPATH``, as Lambda has it. The third-party packages come from this
virtualenv, compiled like the layer's; the asset's own modules are compiled on
every import, since Lambda's read-only code folder keeps no bytecode cache.

The figure is the ``handler`` line's cumulative import time. Each handler is
imported once to warm the file cache, then RUNS times, interleaved with the
others and with ``import boto3`` alone, the SDK every handler pays for, as a
reference; the median counts. Target: at most 300 ms per handler. A handler that
does not exist yet is reported as missing. Prints the figures, rewrites its
section of docs/benchmarks.md and exits 1 if a target is missed.

Run: .venv/bin/python bench/handler_imports.py
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from report import write_section
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
HANDLERS = ("signup", "email", "dataset_generation")
RUNS = 9
TARGET_MS = 300.0
TOP_IMPORTS = 3
REFERENCE = "boto3"  # the runtime's SDK, which every handler imports
RERUN = ".venv/bin/python bench/handler_imports.py"


class Import(NamedTuple):
    total_ms: float
    children: dict[str, float]  # the handler's direct imports: cumulative ms


def stage_asset(name: str, into: Path) -> Path:
    """The function's code asset, as the CDK bundles it: handler folder plus the cohort package."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    asset = into / name
    shutil.copytree(REPO / "lambdas" / name, asset, ignore=ignore)
    shutil.copytree(REPO / "cohort", asset / "cohort", ignore=ignore)
    return asset


def _run(asset: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(asset),
        "PYTHONDONTWRITEBYTECODE": "1",
        # What the functions stack sets; Powertools reads them when the handler module loads.
        "POWERTOOLS_SERVICE_NAME": asset.name,
        "POWERTOOLS_METRICS_NAMESPACE": "Cohort",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=asset, env=env, capture_output=True, text=True, check=True
    )


def check_layout(asset: Path) -> None:
    """``cohort`` must come from the asset, not from the editable install of this checkout."""
    found = _run(asset, "-c", "import cohort; print(cohort.__file__)").stdout.strip()
    if not Path(found).is_relative_to(asset):
        raise RuntimeError(f"cohort was imported from {found}, not from the staged asset {asset}")


def import_once(asset: Path, module: str = "handler") -> Import:
    return parse_importtime(_run(asset, "-X", "importtime", "-c", f"import {module}").stderr, module)


def parse_importtime(report: str, module: str) -> Import:
    """The ``module`` line's cumulative time, and those of the imports nested right under it."""
    children: dict[str, float] = {}
    for line in report.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, package = line.split("|")
        name = package.strip()
        depth = (len(package) - len(package.lstrip()) - 1) // 2
        if not cumulative.strip().isdigit():
            continue  # the header line
        if depth == 1:
            children[name] = int(cumulative) / 1000
        elif depth == 0 and name == module:
            return Import(int(cumulative) / 1000, children)
        elif depth == 0:
            children.clear()  # imports the interpreter made before ours
    raise RuntimeError(f"no 'import {module}' line in the -X importtime report")


def measure(assets: dict[str, Path]) -> tuple[dict[str, list[Import]], list[float]]:
    """Each handler's runs, and those of the SDK alone, interleaved."""
    for asset in assets.values():
        check_layout(asset)
        import_once(asset)  # warm-up: the file cache
    runs: dict[str, list[Import]] = {name: [] for name in assets}
    sdk: list[float] = []
    anywhere = next(iter(assets.values()))
    for _ in tqdm(range(RUNS), desc="imports", unit="round"):
        for name, asset in assets.items():
            runs[name].append(import_once(asset))
        sdk.append(import_once(anywhere, REFERENCE).total_ms)
    return runs, sdk


def render(
    runs: dict[str, list[Import]], sdk: list[float], missing: list[str], load: float
) -> tuple[str, bool]:
    rows, passed = [], True
    for name in HANDLERS:
        if name in missing:
            rows.append(f"| `{name}` | missing | | | lambdas/{name}/handler.py does not exist yet |")
            continue
        totals = sorted(run.total_ms for run in runs[name])
        median = statistics.median(totals)
        typical = min(runs[name], key=lambda run: abs(run.total_ms - median))
        heaviest = sorted(typical.children.items(), key=lambda item: -item[1])[:TOP_IMPORTS]
        ok = median <= TARGET_MS
        passed &= ok
        rows.append(
            f"| `{name}` | {median:.0f} | {totals[0]:.0f} | {'PASS' if ok else 'FAIL'} | "
            + ", ".join(f"`{module}` {ms:.0f}" for module, ms in heaviest)
            + " |"
        )
    rows.append(
        f"| `import {REFERENCE}` alone, for reference | {statistics.median(sdk):.0f} | {min(sdk):.0f} | | |"
    )
    table = "\n".join(rows)
    section = f"""## Lambda handler import time

Each function's code asset (its handler plus `cohort/`, without bytecode, as the CDK bundles it) imported by \
`python -X importtime -c "import handler"` in a fresh process, from the asset's folder; third-party \
packages from the virtualenv, with their bytecode, as the layer has them. Measured on \
{datetime.datetime.now(datetime.UTC):%Y-%m-%d}: {os.cpu_count()} cores, Python {platform.python_version()} \
(Lambda runs 3.14), load average {load:.1f} at the start; median and minimum of {RUNS} interleaved runs \
after a warm-up. The last column is the handler's heaviest direct imports in the median run, \
cumulative; a package counts under the first import that loads it. Every handler pays for the AWS SDK, \
whose import alone the last row shows.

| Handler | median ms | min ms | ≤ {TARGET_MS:.0f} ms | heaviest imports, ms |
| ------- | --------: | -----: | ------ | -------------------- |
{table}

Rerun with `{RERUN}` (or `make bench`); it rewrites this section and exits 1 if a target is missed.
"""
    return section, passed


def main() -> int:
    load = os.getloadavg()[0]
    missing = [name for name in HANDLERS if not (REPO / "lambdas" / name / "handler.py").is_file()]
    with tempfile.TemporaryDirectory() as scratch:
        assets = {name: stage_asset(name, Path(scratch)) for name in HANDLERS if name not in missing}
        runs, sdk = measure(assets)
    section, passed = render(runs, sdk, missing, load)
    print(section)
    print(f"Wrote {write_section('handler-imports', section)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
