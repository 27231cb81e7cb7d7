"""The AWS emulator inside the test process (moto), with nothing leaking in from the shell."""

from __future__ import annotations

import os

import pytest

from cohort import aws


def clear_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # An emulator endpoint or a profile from the developer's shell must not leak in.
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith("COHORT_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("COHORT_STAGE", "test")
    aws.reset_clients()
