"""The logical ids a deployed stage knows its resources by, recorded in fixtures/logical_ids.json.

CloudFormation identifies a resource by its logical id: a changed id deletes the resource and
creates a new one (a table, a bucket, a user pool lose their data), and a changed export id breaks
the stacks that import it. test_logical_ids.py compares every synth with the record.

To record a resource added on purpose, rewrite the file and review its diff:

    PYTHONPATH=$PWD .venv/bin/python -m tests.infra.logical_ids
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .conftest import synthesize
from .helpers import Synth

FIXTURE = Path(__file__).parent / "fixtures" / "logical_ids.json"
STAGES = ("dev", "prod")


def logical_ids(synth: Synth) -> dict[str, dict[str, dict[str, str | None]]]:
    """Per stack: each resource's logical id with its type, each output's with its export name."""
    return {
        synth.stack_names[stack]: {
            "Resources": {
                logical_id: resource["Type"] for logical_id, resource in sorted(template["Resources"].items())
            },
            "Outputs": {
                logical_id: output.get("Export", {}).get("Name")
                for logical_id, output in sorted(template.get("Outputs", {}).items())
            },
        }
        for stack, template in sorted(synth.templates.items(), key=lambda item: synth.stack_names[item[0]])
    }


def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def main() -> None:
    with tempfile.TemporaryDirectory() as outdir:
        stages = {stage: logical_ids(synthesize(stage, Path(outdir) / stage)) for stage in STAGES}
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(stages, indent=2) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
