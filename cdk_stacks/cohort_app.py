"""All of Cohort's stacks for one stage, and the order they depend on each other in."""

from __future__ import annotations

import os

from aws_cdk import App, Environment, Tags

from cdk_stacks.api import ApiStack
from cdk_stacks.auth import AuthStack
from cdk_stacks.compute import ComputeStack
from cdk_stacks.config import StageConfig
from cdk_stacks.functions import FunctionsStack
from cdk_stacks.jupyter import JupyterStack
from cdk_stacks.monitoring import MonitoringStack
from cdk_stacks.storage import StorageStack
from cdk_stacks.website import WebsiteStack


def deployment_region() -> str:
    """The region from the environment, never from the code; ELB access logging needs it at synth."""
    for variable in ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable]
    raise SystemExit("no AWS region: set AWS_REGION (or configure one for the AWS CLI) and synth again")


def build_stacks(app: App, config: StageConfig) -> dict[str, object]:
    """Declare every stack; each is deployable on its own as ``Cohort<Stage><Name>``."""
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=deployment_region())
    prefix = f"Cohort{config.stage.title()}"
    Tags.of(app).add("project", "cohort")
    Tags.of(app).add("stage", config.stage)

    storage = StorageStack(app, f"{prefix}Storage", config=config, env=env)
    functions = FunctionsStack(app, f"{prefix}Functions", config=config, storage=storage, env=env)
    auth = AuthStack(
        app, f"{prefix}Auth", config=config, catalogue=storage.catalogue, functions=functions, env=env
    )
    compute = ComputeStack(app, f"{prefix}Compute", config=config, storage=storage, auth=auth, env=env)
    api = ApiStack(
        app,
        f"{prefix}Api",
        config=config,
        catalogue=storage.catalogue,
        auth=auth,
        compute=compute,
        functions=functions,
        env=env,
    )
    jupyter = JupyterStack(
        app,
        f"{prefix}Jupyter",
        config=config,
        catalogue=storage.catalogue,
        auth=auth,
        compute=compute,
        api=api,
        env=env,
    )
    website = WebsiteStack(app, f"{prefix}Website", config=config, auth=auth, api=api, env=env)
    monitoring = MonitoringStack(
        app,
        f"{prefix}Monitoring",
        config=config,
        storage=storage,
        functions=functions,
        compute=compute,
        api=api,
        jupyter=jupyter,
        env=env,
    )
    # Explicit, so the deploy order holds even where a stack only uses catalogue names.
    for stack, needs in (
        (functions, [storage]),
        (auth, [functions]),
        (compute, [storage, auth]),
        (api, [auth, compute, functions]),
        (jupyter, [auth, compute, api]),
        (website, [auth, api]),
        (monitoring, [storage, functions, compute, api, jupyter]),
    ):
        for need in needs:
            stack.add_stack_dependency(need)
    return {
        "storage": storage,
        "functions": functions,
        "auth": auth,
        "compute": compute,
        "api": api,
        "jupyter": jupyter,
        "website": website,
        "monitoring": monitoring,
    }
