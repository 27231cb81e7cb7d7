"""Every module on its own floor: nothing in ``cohort`` imports from a layer above it.

The import graph is read from the source (every ``import``, at module level or inside a function),
so a lazy import cannot hide an upward arrow. The same order is drawn in docs/architecture.md.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The layers of ``cohort``, from the ground up; each names top-level modules and packages ("units").
# A unit may import itself and any unit on a lower floor. Units on one floor are independent:
# neither imports the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("catalogue", "processes"),  # resource names and child processes: nothing of Cohort below them
    ("settings",),  # configuration from the environment
    ("aws", "domain"),  # lazily created AWS clients; records, model format, errors
    ("storage",),  # blobs in S3
    ("datasets", "notify", "onnx_import", "web", "sdk"),  # adapters, HTTP plumbing, the Python client
    ("evaluation",),  # robustness evaluation, and the evaluation job's contract
    ("federated", "services"),  # the FL node; the orchestrator's use cases and API
    ("local", "openapi"),  # the local platform; the published API documents
    ("cli",),  # the `cohort` command
)
# What the infrastructure code may read of the platform: names and the records' key schemas.
CDK_MAY_IMPORT = {"catalogue", "domain"}
# Deploy-time and test code, which the platform itself never imports.
OUTSIDE = ("cdk_stacks", "lambdas", "containers", "tests", "bench", "images")


@dataclass(frozen=True)
class Arrow:
    source: Path
    line: int
    target: str  # dotted module name as written, made absolute


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def arrows(path: Path, root: Path) -> list[Arrow]:
    """Every module that ``path`` imports, relative imports resolved against its package."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Arrow(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from cohort import storage` names a module; `from cohort.x import Name` names its module.
            found += [Arrow(path, node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def unit_of(dotted: str) -> str | None:
    """The top-level unit of ``cohort`` a dotted name belongs to, or None if it is not Cohort's."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "cohort" and len(parts) > 1 else None


def floors() -> dict[str, int]:
    return {unit: level for level, units in enumerate(LAYERS) for unit in units}


def upward_imports(root: Path) -> list[str]:
    """Each import in ``root/cohort`` of a unit on the same floor or above, as a readable line."""
    floor = floors()
    problems = []
    for path in sorted((root / "cohort").rglob("*.py")):
        source = unit_of(_module_name(path, root))
        if source is None:  # cohort/__init__.py
            continue
        for arrow in arrows(path, root):
            target = unit_of(arrow.target)
            if target is None or target == source or target not in floor:
                continue
            if floor[target] >= floor[source]:
                where = "the same floor" if floor[target] == floor[source] else "a floor above"
                problems.append(
                    f"{path.relative_to(root)}:{arrow.line} imports {arrow.target}, on {where} "
                    f"({target} is on floor {floor[target]}, {source} on floor {floor[source]})"
                )
    return problems


def test_every_unit_of_cohort_sits_on_one_declared_floor() -> None:
    # Given the top-level modules and packages of cohort
    units = {
        path.stem if path.is_file() else path.name
        for path in (REPO / "cohort").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }

    # Then each is on exactly one floor, and every floor names only units that exist
    declared = [unit for units in LAYERS for unit in units]
    assert len(declared) == len(set(declared)), "a unit is on two floors"
    assert units == set(declared), f"place {sorted(units - set(declared))} in LAYERS"


def test_no_module_imports_from_its_own_floor_or_above() -> None:
    # When the import graph of cohort is read from its source
    problems = upward_imports(REPO)

    # Then every arrow points down
    assert problems == [], "\n".join(problems)


def test_the_platform_never_imports_deploy_or_test_code() -> None:
    problems = [
        f"{arrow.source.relative_to(REPO)}:{arrow.line} imports {arrow.target}"
        for path in sorted((REPO / "cohort").rglob("*.py"))
        for arrow in arrows(path, REPO)
        if arrow.target.split(".")[0] in OUTSIDE
    ]
    assert problems == [], "\n".join(problems)


def test_the_stacks_read_only_names_and_records_of_the_platform() -> None:
    # Given the CDK code, which says where things run and must not pull in what they do
    imported = {
        (arrow.source.relative_to(REPO), unit_of(arrow.target))
        for path in sorted((REPO / "cdk_stacks").rglob("*.py"))
        for arrow in arrows(path, REPO)
    }

    # Then it imports only the catalogue and the domain records of cohort
    assert {(path, unit) for path, unit in imported if unit and unit not in CDK_MAY_IMPORT} == set()


@pytest.mark.parametrize(
    ("where", "source", "caught"),
    [
        ("cohort/storage.py", "from cohort.services import jobs\n", True),
        ("cohort/domain/records.py", "def later():\n    from cohort.evaluation import engine\n", True),
        ("cohort/federated/node.py", "from ..services.auth import Principal\n", True),
        ("cohort/services/jobs.py", "from cohort.federated import node\n", True),  # the same floor
        ("cohort/services/jobs.py", "from . import models\nfrom cohort import storage\n", False),
        ("cohort/evaluation/jobs.py", "import cohort.storage\n", False),
    ],
)
def test_the_check_catches_an_upward_import_however_it_is_written(
    tmp_path: Path, where: str, source: str, caught: bool
) -> None:
    # Given a tree with one module whose imports are known
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(source)

    # When its import graph is checked
    problems = upward_imports(tmp_path)

    # Then an arrow to its own floor or above is reported with its place, and a downward one is not
    assert bool(problems) is caught, problems
    assert all(p.startswith(f"{where}:") for p in problems)
