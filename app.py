"""The CDK app: every Cohort stack for one stage, checked by cdk-nag on each synth.

cdk synth                      # the dev stage (cdk.json)
cdk deploy -c cohort:stage=prod CohortProdStorage
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from cdk_stacks.cohort_app import build_stacks
from cdk_stacks.config import StageConfig

CDK_JSON = Path(__file__).with_name("cdk.json")


def main() -> None:
    # Run by the CDK CLI, the context arrives through the environment; run as
    # `python app.py`, read the same cdk.json and write to the same folder.
    standalone = "CDK_CONTEXT_JSON" not in os.environ
    settings = json.loads(CDK_JSON.read_text())
    app = App(
        context=settings["context"] if standalone else None,
        outdir=settings["output"] if standalone and "CDK_OUTDIR" not in os.environ else None,
    )
    build_stacks(app, StageConfig.from_context(app))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
