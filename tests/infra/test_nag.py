"""cdk-nag: the AwsSolutions pack gates every synth, and each acknowledgement says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from .helpers import Synth

# Reasons that explain nothing about the finding they acknowledge.
_GENERIC_REASONS = {
    "",
    "ok",
    "okay",
    "n/a",
    "na",
    "none",
    "todo",
    "fine",
    "ignore",
    "suppressed",
    "false positive",
}


def _report(outdir: Path) -> dict:
    (plugin,) = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    return plugin


def test_synth_passed_the_aws_solutions_checks(synth: Synth) -> None:
    # Given the validation report written by the synth of a stage
    report = _report(synth.outdir)

    # Then the AwsSolutions pack ran and found nothing unacknowledged
    assert report["pluginName"] == "AwsSolutions"
    assert report["conclusion"] == "success"
    assert report["violations"] == []


def test_every_acknowledged_finding_has_a_specific_reason_on_a_narrow_construct(synth: Synth) -> None:
    # Given every finding that an acknowledgement suppressed
    suppressed = _report(synth.outdir)["suppressedViolations"]
    assert suppressed

    for finding in suppressed:
        reason = finding["reason"].strip()
        # Then it says why, in words about this finding
        assert reason.lower().rstrip(".") not in _GENERIC_REASONS, finding["ruleName"]
        assert len(reason.split()) >= 5, f"{finding['ruleName']}: {reason!r}"
        # And it sits on a construct inside a stack, never on a whole stack or the app
        assert "/" in finding["acknowledgedAt"], f"{finding['ruleName']} at {finding['acknowledgedAt']}"


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    # Given an app checked like Cohort's, with a bucket that neither logs nor enforces TLS
    app = App(outdir=str(tmp_path))
    s3.CfnBucket(Stack(app, "Careless"), "Open")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))

    # When it is synthesized
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()

    # Then the report names the findings, TLS among them
    report = _report(tmp_path)
    assert report["conclusion"] == "failure"
    assert "AwsSolutions-S10" in {violation["ruleName"] for violation in report["violations"]}
