"""Container images: the targets of ``containers/Dockerfile``, built at deploy time only."""

from __future__ import annotations

from typing import Literal

from aws_cdk import aws_ecs as ecs

from cdk_stacks.constructs.lambda_bundling import REPO

DOCKERFILE = "containers/Dockerfile"
# One target of the Dockerfile per service; each grows from the same shared stages.
Service = Literal["orchestrator", "fl_node", "evaluator", "jupyterhub"]
# The build of torch each kind of host gets (containers/install_torch.sh); the CUDA build
# falls back to the CPU where no GPU is present.
_TORCH_BUILDS = {"cpu": "cpu", "gpu": "cuda"}


def service_image(service: Service, accelerator: Literal["cpu", "gpu"] = "cpu") -> ecs.ContainerImage:
    """The image of ``service``, built from the repository root so it can install ``cohort``."""
    return ecs.ContainerImage.from_asset(
        str(REPO),
        file=DOCKERFILE,
        target=service,
        build_args={"TORCH_BUILD": _TORCH_BUILDS[accelerator]},
    )
