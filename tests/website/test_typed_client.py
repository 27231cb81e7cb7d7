"""The website's API client is typed from the published OpenAPI document: a route the API changes
breaks the site's build, not a page in a user's browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .browser import WEBSITE

DOCUMENT = WEBSITE.parent / "docs" / "openapi" / "orchestrator.json"


def _typecheck(document: dict, root: Path) -> subprocess.CompletedProcess[str]:
    """Type-check a copy of the site against ``document``, laid out as in the repository."""
    site = root / "website"
    shutil.copytree(WEBSITE, site, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (site / "node_modules").symlink_to(WEBSITE / "node_modules")
    (root / "docs" / "openapi").mkdir(parents=True)
    (root / "docs" / "openapi" / "orchestrator.json").write_text(json.dumps(document))
    npm = shutil.which("npm")
    assert npm, "npm is needed to build the website"
    return subprocess.run(
        [npm, "run", "--silent", "typecheck"], cwd=site, capture_output=True, text=True, check=False
    )


# Each test type-checks the whole site with tsc.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published() -> dict:
    if not (WEBSITE / "node_modules").exists():
        pytest.fail("the website's packages are not installed: run 'make website' (make test does)")
    return json.loads(DOCUMENT.read_text())


def test_the_site_type_checks_against_the_published_api(published: dict, tmp_path: Path) -> None:
    result = _typecheck(published, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_route_fails_the_site_s_type_check(published: dict, tmp_path: Path) -> None:
    # Given the API renames a route the site calls
    document = json.loads(json.dumps(published))
    document["paths"]["/v1/trainings/{job_id}"] = document["paths"].pop("/v1/jobs/{job_id}")

    # When the site is type-checked against it
    result = _typecheck(document, tmp_path)

    # Then the check fails, naming the route
    assert result.returncode != 0
    assert '"/v1/jobs/{job_id}"' in result.stdout + result.stderr


def test_a_removed_field_fails_the_site_s_type_check(published: dict, tmp_path: Path) -> None:
    # Given the API drops a field of a round that the job page shows
    document = json.loads(json.dumps(published))
    del document["components"]["schemas"]["RoundView"]["properties"]["samples"]

    # When the site is type-checked against it, it fails on that field
    result = _typecheck(document, tmp_path)
    assert result.returncode != 0
    assert "'samples'" in result.stdout + result.stderr
