"""The published OpenAPI documents, built from the apps themselves so they cannot drift."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from unittest import mock

from cohort import aws

EXAMPLE_JOB_ID = "{job_id}"


def documents() -> dict[str, dict]:
    from cohort.federated.node_app import create_node_app
    from cohort.services.orchestrator import create_app

    # Building the apps needs a token key; these documents never see one.
    with mock.patch.dict(os.environ, {"COHORT_TOKEN_SECRET": secrets.token_urlsafe(48)}):
        aws.reset_clients()
        built = {
            "orchestrator.json": create_app(launcher=object()).openapi(),  # type: ignore[arg-type]
            "fl-node.json": create_node_app(EXAMPLE_JOB_ID).openapi(),
        }
    aws.reset_clients()
    return built


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_documents(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents().items():
        path = folder / name
        path.write_text(render(document))
        written.append(path)
    return written
