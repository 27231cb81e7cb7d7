"""`cohort up`, `cohort status` and `cohort down`, as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cohort.processes import is_alive
from tests.built_site import INDEX_MARKER, write_built_site

COHORT = [sys.executable, "-m", "cohort.cli"]


# Each test starts a whole local platform of its own, as a person would, in a fresh process.
pytestmark = [pytest.mark.platform, pytest.mark.slow]


def _up(home: Path, website_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COHORT_WEBSITE_DIR": str(website_dir)}
    return subprocess.Popen([*COHORT, "up", "--home", str(home)], stdout=subprocess.PIPE, text=True, env=env)


def _down(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COHORT, "down", "--home", str(home)], check=False, capture_output=True, text=True, timeout=60
    )


def _wait_for_state(home: Path, up: subprocess.Popen[str], timeout: float = 90.0) -> dict:
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        assert up.poll() is None, up.stdout.read() if up.stdout else "cohort up exited"
        if (home / "state.json").exists():
            return json.loads((home / "state.json").read_text())
        time.sleep(0.2)
    raise AssertionError("cohort up never wrote its state file")


def test_up_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = _up(home, write_built_site(tmp_path / "dist"))
    try:
        # Given a running local platform, with a built dashboard
        state = _wait_for_state(home, up)

        # Then everything binds to loopback and answers
        for url in ("emulator_url", "orchestrator_url", "website_url", "cognito_url"):
            assert state[url].startswith("http://127.0.0.1:"), url
        assert httpx.get(f"{state['orchestrator_url']}/docs").status_code == 200
        assert "cohort_http_requests_total" in httpx.get(f"{state['orchestrator_url']}/metrics/").text
        # and the dashboard is served, pointed at this platform's API and Cognito bridge
        assert INDEX_MARKER in httpx.get(state["website_url"]).text
        config = httpx.get(f"{state['website_url']}config.json").json()
        assert config["apiUrl"] == state["orchestrator_url"]
        assert config["cognitoEndpoint"] == state["cognito_url"]
        assert config["userPoolClientId"] == state["user_pool_client_id"]
        # which the orchestrator lets call it from the browser
        preflight = httpx.options(
            f"{state['orchestrator_url']}/v1/jobs",
            headers={"Origin": state["website_url"].rstrip("/"), "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == state["website_url"].rstrip("/")
        # and the state file holds no secret
        assert "SECRET" not in (home / "state.json").read_text().upper()

        # When status is asked for
        status = subprocess.run(
            [*COHORT, "status", "--home", str(home)], check=False, capture_output=True, text=True
        )

        # Then it names each process, its health and where it listens
        assert status.returncode == 0, status.stderr
        assert state["emulator_url"] in status.stdout
        assert state["orchestrator_url"] in status.stdout
        assert status.stdout.count("healthy") == 4  # emulator, orchestrator, bridge, website
        assert f"dashboard     {state['website_url']}\n" in status.stdout
        for name in ("website", "cognito-bridge"):
            (line,) = [line for line in status.stdout.splitlines() if line.startswith(f"{name} ")]
            assert " running " in line
            assert " healthy " in line
        # and the evaluator runs beside the pumps
        (evaluator,) = [line for line in status.stdout.splitlines() if line.startswith("evaluator")]
        assert " running " in evaluator
        assert "FL nodes      0" in status.stdout

        # When it is brought down
        down = _down(home)

        # Then every process it started has stopped, and so has 'cohort up'
        assert down.returncode == 0
        up.wait(timeout=30)
        assert {"website", "cognito-bridge"} <= set(state["pids"])
        assert not any(is_alive(pid) for pid in state["pids"].values())
        assert not (home / "state.json").exists()
        # and 'cohort up' had said where the dashboard was
        assert f"dashboard     {state['website_url']}\n" in up.stdout.read()
    finally:
        if up.poll() is None:
            up.kill()


def test_up_without_a_built_dashboard_says_how_to_build_it(tmp_path: Path) -> None:
    # Given a checkout where the dashboard has not been built
    home = tmp_path / "home"
    up = _up(home, tmp_path / "not-built")
    try:
        # When the platform is up
        state = _wait_for_state(home, up)

        # Then it runs without the dashboard and its bridge, and the orchestrator lets no origin in
        assert (state["website_url"], state["cognito_url"]) == ("", "")
        assert not {"website", "cognito-bridge"} & set(state["pids"])
        preflight = httpx.options(
            f"{state['orchestrator_url']}/v1/jobs",
            headers={"Origin": "http://127.0.0.1:5173", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        assert _down(home).returncode == 0
        up.wait(timeout=30)

        # And 'cohort up' said the dashboard is not built, and how to build it
        printed = up.stdout.read()
        assert "dashboard     not built" in printed
        assert "make website" in printed
    finally:
        if up.poll() is None:
            up.kill()
