"""Container images built from ``containers/<service>/Dockerfile``, at deploy time only."""

from __future__ import annotations

from typing import Literal

from aws_cdk import aws_ecs as ecs

from cdk_stacks.constructs.lambda_bundling import REPO

# CUDA build of torch for GPU hosts; the same code falls back to the CPU.
_TORCH_CHANNELS = {"cpu": "cpu", "gpu": "cu126"}


def service_image(service: str, accelerator: Literal["cpu", "gpu"] = "cpu") -> ecs.ContainerImage:
    """The image of ``service``, built from the repository root so it can install ``cohort``."""
    return ecs.ContainerImage.from_asset(
        str(REPO),
        file=f"containers/{service}/Dockerfile",
        build_args={"TORCH_CHANNEL": _TORCH_CHANNELS[accelerator]},
    )
