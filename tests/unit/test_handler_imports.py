"""A function's handler imports only what its Lambda environment has: the layer and the runtime's boto3.

Each handler is imported in a fresh process, laid out as on Lambda (its folder
and the repository root on the path), with the platform's heavy dependencies
made unimportable; then every third-party module it loaded is checked against
the packages of ``lambdas/requirements.txt`` and their dependencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What the orchestrator, FL nodes and evaluator use and no function may.
FORBIDDEN = ("torch", "numpy", "fastapi", "starlette", "uvicorn", "sklearn", "httpx", "jwt", "typer", "moto")
LAYER = {
    # lambdas/requirements.txt
    "aws_lambda_powertools",
    "pydantic",
    "pydantic_settings",
    "pynamodb",
    # what those depend on
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "dotenv",
    "jmespath",
    "blinker",  # optional in pynamodb, loaded when present
    # the runtime's boto3 and its dependencies
    "boto3",
    "botocore",
    "s3transfer",
    "dateutil",
    "six",
    "urllib3",
    "certifi",
}
_PROBE = """
import json, sys
for name in {forbidden!r}:
    sys.modules[name] = None  # any import of it now raises ImportError
import handler
loaded = {{name.split(".")[0] for name in sys.modules if sys.modules[name] is not None}}
print(json.dumps(sorted(loaded - set(sys.stdlib_module_names))))
"""


@pytest.mark.parametrize("function", ["signup", "email"])
def test_a_handler_imports_nothing_outside_its_layer(function: str) -> None:
    # Given the function's folder and the repository root on the path, as its code asset has them
    folder = REPO / "lambdas" / function

    # When its handler is imported with the platform's heavy dependencies unavailable
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE.format(forbidden=FORBIDDEN)],
        cwd=folder,
        env={"PYTHONPATH": f"{folder}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )

    # Then the import succeeds, and every third-party module it loaded is in the layer or the runtime
    assert probe.returncode == 0, probe.stderr
    loaded = set(json.loads(probe.stdout)) - {"handler", "cohort", "__main__"}
    third_party = {name for name in loaded if not name.startswith("_")}  # not site's own hooks
    assert third_party <= LAYER, f"not in the Lambda layer: {sorted(third_party - LAYER)}"
