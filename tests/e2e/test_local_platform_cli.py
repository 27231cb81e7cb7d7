"""`cohort up`, `cohort status` and `cohort down`, as a person runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cohort.processes import is_alive

COHORT = [sys.executable, "-m", "cohort.cli"]


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
    up = subprocess.Popen([*COHORT, "up", "--home", str(home)], stdout=subprocess.PIPE, text=True)
    try:
        # Given a running local platform
        state = _wait_for_state(home, up)

        # Then everything binds to loopback and answers
        assert state["emulator_url"].startswith("http://127.0.0.1:")
        assert state["orchestrator_url"].startswith("http://127.0.0.1:")
        assert httpx.get(f"{state['orchestrator_url']}/docs").status_code == 200
        assert "cohort_http_requests_total" in httpx.get(f"{state['orchestrator_url']}/metrics/").text
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
        assert status.stdout.count("healthy") == 2
        # and the evaluator runs beside the pumps
        (evaluator,) = [line for line in status.stdout.splitlines() if line.startswith("evaluator")]
        assert " running " in evaluator
        assert "FL nodes      0" in status.stdout

        # When it is brought down
        down = subprocess.run(
            [*COHORT, "down", "--home", str(home)], check=False, capture_output=True, text=True, timeout=60
        )

        # Then every process it started has stopped, and so has 'cohort up'
        assert down.returncode == 0
        up.wait(timeout=30)
        assert not any(is_alive(pid) for pid in state["pids"].values())
        assert not (home / "state.json").exists()
    finally:
        if up.poll() is None:
            up.kill()
