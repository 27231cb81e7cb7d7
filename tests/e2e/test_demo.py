"""`make demo`'s main path, end to end: the figures it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts a whole local platform of its own, as a person would, in a fresh process.
pytestmark = [pytest.mark.platform, pytest.mark.slow]


def test_the_demo_trains_an_accurate_model_and_ends_with_one_json_line(tmp_path: Path) -> None:
    # When the demo runs in a fresh process, on its own local platform
    result = subprocess.run(
        [sys.executable, "-m", "cohort.cli", "demo", "--home", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then it succeeds and its last line is the summary the README promises
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {
        "final_accuracy",
        "rounds",
        "devices",
        "seconds",
        "clean_accuracy",
        "robust_accuracy",
    }
    assert summary["final_accuracy"] >= 0.90
    assert summary["rounds"] >= 5
    assert summary["devices"] >= 10
    assert "held-out test accuracy" in result.stdout
    # and the app's sample dataset was generated from its schema and downloaded: a header and 1,000 rows
    (sample,) = (tmp_path / "demo").glob("sample-*.csv")
    assert len(sample.read_text().splitlines()) == 1 + 1_000
    # and the trained model's robustness evaluation ran: a worst case below the clean accuracy, and a report
    assert summary["clean_accuracy"] >= 0.85
    assert 0 <= summary["robust_accuracy"] < summary["clean_accuracy"]
    assert "clean accuracy" in result.stdout
    assert "worst case" in result.stdout
    (report,) = (tmp_path / "demo").glob("robustness-report-*.html")
    assert "Robust accuracy vs ε" in report.read_text()
    assert list((tmp_path / "demo" / "outbox").glob("evaluation-finished-*.eml"))
    # and it left nothing running behind it
    assert not (tmp_path / "demo" / "state.json").exists()
