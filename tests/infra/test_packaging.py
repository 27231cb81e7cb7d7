"""Packaging: images are build contexts for deploy time, Lambda code fits Lambda's limit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import get_args

from cdk_stacks.constructs.images import DOCKERFILE, Service

from .helpers import REPO, Synth, directory_bytes

# Function code plus all its layers, unzipped: Lambda's "250 MB" is 250 MiB.
LAMBDA_UNZIPPED_LIMIT = 250 * 2**20
# All an image's build context holds: what the images install, and .dockerignore itself. Nothing
# else (CDK code, docs, tests, environments, credentials) reaches a build or changes an image's hash.
_CONTEXT = {".dockerignore", "requirements.txt", "pyproject.toml", "cohort", "containers"}


def test_images_are_left_as_build_contexts_for_deploy_time(dev: Synth) -> None:
    # Given the container image assets that the synth produced (with no Docker to call)
    sources = dev.image_assets().values()

    # Then each service's target of the Dockerfile is an image source, none a prebuilt image
    assert {(source["dockerFile"], source["dockerBuildTarget"]) for source in sources} == {
        (DOCKERFILE, service) for service in get_args(Service)
    }
    for source in sources:
        assert "executable" not in source
        context = dev.outdir / source["directory"]
        assert (context / source["dockerFile"]).is_file()
        # And the build context holds only what the images are built from
        assert {path.name for path in context.iterdir()} == _CONTEXT, source["dockerFile"]
        assert not list(context.rglob("__pycache__")), source["dockerFile"]


def test_tasks_that_get_a_gpu_run_a_cuda_build_and_the_others_a_cpu_build(dev: Synth) -> None:
    # Given every container and the build arguments of its image
    sources = dev.image_assets()
    for _, properties in dev.task_definitions():
        for container in properties["ContainerDefinitions"]:
            image_hash = container["Image"]["Fn::Sub"].rpartition(":")[2]
            build = sources[image_hash]["dockerBuildArgs"]["TORCH_BUILD"]

            # Then torch is built for CUDA exactly where a GPU is reserved
            has_gpu = any(r["Type"] == "GPU" for r in container.get("ResourceRequirements", []))
            assert build == ("cuda" if has_gpu else "cpu"), (container["Name"], build)


def test_images_install_the_torch_that_requirements_pin() -> None:
    # Given the torch version the images install first, and the one requirements.txt pins
    script = (REPO / "containers" / "install_torch.sh").read_text()
    image_version = re.search(r"^TORCH_VERSION=(\S+)$", script, re.MULTILINE)
    pinned = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)

    # Then they are the same, so installing requirements.txt never replaces that build
    assert image_version, script
    assert pinned
    assert image_version[1] == pinned[1]


def test_the_torch_installer_names_the_builds_it_knows_when_given_another() -> None:
    # When an image is built with a torch build the installer does not know (an old CUDA channel)
    installer = REPO / "containers" / "install_torch.sh"
    result = subprocess.run(["/bin/sh", str(installer), "cu126"], check=False, capture_output=True, text=True)

    # Then it stops before installing anything, and says which builds there are
    assert result.returncode == 2
    assert "'cpu' or 'cuda', not 'cu126'" in result.stderr


def test_each_function_with_its_layers_fits_lambdas_unzipped_limit(dev: Synth) -> None:
    # Given the staged code assets of the functions stack
    files = dev.assets("functions")["files"]

    def staged(code: dict) -> Path:
        return dev.outdir / files[code["S3Key"].removesuffix(".zip")]["source"]["path"]

    layers = {
        logical_id: staged(layer["Properties"]["Content"])
        for logical_id, layer in dev.resources("functions", "AWS::Lambda::LayerVersion").items()
    }
    for logical_id, function in dev.resources("functions", "AWS::Lambda::Function").items():
        properties = function["Properties"]
        # When a function's code and its layers are measured as Lambda unpacks them
        folders = [
            staged(properties["Code"]),
            *(layers[layer["Ref"]] for layer in properties.get("Layers", [])),
        ]
        size = sum(directory_bytes(folder) for folder in folders)

        # Then they fit in the limit
        assert 0 < size <= LAMBDA_UNZIPPED_LIMIT, (
            f"{logical_id}: {size / 2**20:.1f} MiB unzipped ({size} bytes), over Lambda's 250 MiB"
        )
