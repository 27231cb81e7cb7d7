"""The whole CDK app, synthesized once per stage and session and checked by cdk-nag as app.py does."""

from __future__ import annotations

import os

# jsii reports the machine's Node 20 on every import; silence it before aws_cdk is imported.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# Synth must never need Docker: any attempt to run it fails loudly. The CDK's Node process reads
# this once, when it starts at the first aws_cdk import, hence here and not in a fixture.
os.environ["CDK_DOCKER"] = "/nonexistent/docker-is-not-used-at-synth"

import json
from pathlib import Path

import pytest
from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from cdk_stacks.cohort_app import build_stacks
from cdk_stacks.config import StageConfig

from .helpers import REGION, Synth, cdk_context


def synthesize(stage: str, outdir: Path) -> Synth:
    app = App(context=cdk_context(**{"cohort:stage": stage}), outdir=str(outdir))
    with pytest.MonkeyPatch.context() as env:
        # The region comes from the environment, as on a deployer's machine; no account is needed.
        env.setenv("CDK_DEFAULT_REGION", REGION)
        env.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
        config = StageConfig.from_context(app)
        stacks = build_stacks(app, config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return Synth(
        config=config,
        outdir=outdir,
        stack_names={short: stack.stack_name for short, stack in stacks.items()},
        templates={
            short: json.loads((outdir / stack.template_file).read_text()) for short, stack in stacks.items()
        },
    )


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each stage in turn, for properties that must hold with every stage's configuration."""
    return request.getfixturevalue(request.param)
