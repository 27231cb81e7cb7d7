"""Images: one Dockerfile, a target per service, each what its task definition expects of it.

Docker cannot run here, so these read containers/Dockerfile (tests/infra/dockerfile.py) and hold
it against the synthesized templates and image assets.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any, get_args

import pytest

from cdk_stacks.constructs.images import DOCKERFILE, Service
from cdk_stacks.jupyter import HUB_PORT
from cohort.catalogue import NODE_PORT, ORCHESTRATOR_PORT

from .dockerfile import Dockerfile, Step
from .helpers import REPO, Synth

SERVICES: tuple[str, ...] = get_args(Service)
# The stage every image grows from, and the one the package is installed in for the services.
DEPENDENCIES, BASE = "dependencies", "base"
PYTHON = "python:3.11.13-slim-bookworm"
USER, UID = "cohort", 10001
# Each service's container in the task definitions.
CONTAINERS = {
    "Orchestrator": "orchestrator",
    "fl-node": "fl_node",
    "Evaluator": "evaluator",
    "Hub": "jupyterhub",
}
# What each image answers its health check on: the port it serves, and the path its load balancer
# probes (the FL node's per-job target group is made by cohort/services/ecs_launcher.py).
HEALTH = {
    "orchestrator": f"http://127.0.0.1:{ORCHESTRATOR_PORT}/healthz",
    "fl_node": f"http://127.0.0.1:{NODE_PORT}/healthz",
    "jupyterhub": f"http://127.0.0.1:{HUB_PORT}/hub/health",
}


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(REPO / DOCKERFILE)


def _containers(synth: Synth) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(container definition, the source of its image asset) of every container in the app."""
    assets = synth.image_assets()
    return [
        (container, assets[container["Image"]["Fn::Sub"].rpartition(":")[2]])
        for _, properties in synth.task_definitions()
        for container in properties["ContainerDefinitions"]
    ]


def test_every_image_asset_builds_a_target_of_the_one_dockerfile(dev: Synth, dockerfile: Dockerfile) -> None:
    # Given the image assets of the synthesized app
    sources = dev.image_assets().values()

    # Then each builds one of the services' targets of containers/Dockerfile, and every service has one
    assert {source["dockerFile"] for source in sources} == {DOCKERFILE}
    targets = {source["dockerBuildTarget"] for source in sources}
    assert targets == set(SERVICES)

    # And each target it names is a stage of that Dockerfile, not a name pointing at nothing
    assert targets <= dockerfile.stages.keys(), targets - dockerfile.stages.keys()


def test_each_container_runs_its_own_services_target(dev: Synth) -> None:
    # Given each container of the app and the target its image is built from
    # Then that target is the one of the service the container runs
    built = {container["Name"]: source["dockerBuildTarget"] for container, source in _containers(dev)}
    assert built == CONTAINERS


@pytest.mark.parametrize("target", SERVICES)
def test_each_target_grows_from_the_shared_stages_on_the_pinned_python(
    dockerfile: Dockerfile, target: str
) -> None:
    # Given the stages a service's target is built from
    stages = [stage.name for stage in dockerfile.chain(target)]

    # Then it grows from the shared dependencies (torch, requirements, the user), on the one Python
    assert stages[0] == DEPENDENCIES
    assert dockerfile.base_image(target) == PYTHON

    # And from the shared base with the package, except JupyterHub, whose own dependencies go below it
    if target != "jupyterhub":
        assert stages[:2] == [DEPENDENCIES, BASE]


def test_every_base_image_is_pinned_to_a_version(dockerfile: Dockerfile) -> None:
    # Given every image a stage is built FROM that is not another stage
    images = {stage.parent for stage in dockerfile.stages.values() if stage.parent not in dockerfile.stages}

    # Then each names a version, never latest or nothing
    for image in images:
        tag = image.rpartition("/")[2].partition(":")[2]
        assert "@sha256:" in image or (tag and tag != "latest" and re.search(r"\d", tag)), image


def _installs_the_package(steps: list[Step]) -> list[Step]:
    """The package's installation: copying cohort/ and the step right after it."""
    (copy,) = [i for i, step in enumerate(steps) if step.op == "COPY" and step.args.startswith("cohort ")]
    return steps[copy : copy + 2]


@pytest.mark.parametrize("target", SERVICES)
def test_dependencies_are_installed_before_the_code(dockerfile: Dockerfile, target: str) -> None:
    # Given every step of a target, in build order
    steps = dockerfile.steps(target)
    runs = [step.args for step in steps if step.op == "RUN"]
    torch = next(i for i, run in enumerate(runs) if "install_torch.sh" in run)
    requirements = next(i for i, run in enumerate(runs) if run.startswith("pip install -r requirements.txt"))

    # Then torch, the largest layer, comes first, then the requirements
    assert torch < requirements

    # And once the code is copied, nothing is downloaded: only the package itself is installed,
    # so changing the code rebuilds no dependency layer
    package = _installs_the_package(steps)
    after_code = [step.args for step in steps[steps.index(package[0]) :] if step.op == "RUN"]
    assert after_code == [package[1].args], after_code
    assert package[1].args.startswith("pip install --no-deps .")


def test_jupyterhub_installs_the_package_exactly_as_the_shared_base(dockerfile: Dockerfile) -> None:
    # Given the steps that install the cohort package in the shared base and in JupyterHub's target
    # Then they are the same, so the hub's notebooks run the services' code, installed the same way
    assert _installs_the_package(dockerfile.steps("jupyterhub")) == _installs_the_package(
        dockerfile.steps(BASE)
    )


@pytest.mark.parametrize("target", SERVICES)
def test_each_target_runs_as_the_unprivileged_user(dockerfile: Dockerfile, target: str) -> None:
    # Given the user made in the shared dependencies stage
    (made,) = [s for s in dockerfile.stages[DEPENDENCIES].steps if s.op == "RUN" and "useradd" in s.args]
    assert f"--uid {UID} " in made.args
    assert made.args.split()[-1] == USER

    # Then each target's image runs as that user, never as root
    assert dockerfile.image(target).user == USER


def _probed(healthcheck: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs that a ``python -c`` health check opens, run here with urlopen stubbed."""
    assert healthcheck[:2] == ["python", "-c"], healthcheck
    urls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: urls.append(url))
    monkeypatch.delenv("PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exec(healthcheck[2], {})  # noqa: S102 - the Dockerfile's own one-line check, with urlopen stubbed
    return urls


@pytest.mark.parametrize("target", SERVICES)
def test_each_health_check_probes_the_port_the_image_serves_on_its_load_balancers_path(
    dockerfile: Dockerfile, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a target's image
    image = dockerfile.image(target)

    # When its health check runs
    probed = _probed(image.healthcheck, image.env, monkeypatch) if image.healthcheck else []

    # Then it probes the catalogue's port of the service on the load balancer's path, and exposes that
    # port; a queue worker serves nothing, exposes nothing and is checked by ECS through its process
    expected = HEALTH.get(target)
    assert probed == ([expected] if expected else [])
    assert image.exposed == ({int(expected.split(":")[2].split("/")[0])} if expected else set())


def test_each_container_maps_the_ports_its_image_exposes(dev: Synth, dockerfile: Dockerfile) -> None:
    # Given each container of the app and its image's target
    for container, source in _containers(dev):
        exposed = dockerfile.image(source["dockerBuildTarget"]).exposed

        # Then the task definition maps exactly the ports the image serves
        mapped = {mapping["ContainerPort"] for mapping in container.get("PortMappings", [])}
        assert mapped == exposed, container["Name"]


def test_the_fl_node_has_a_command_that_run_task_can_override_and_no_entrypoint(
    dockerfile: Dockerfile,
) -> None:
    # Given the FL node's image: RunTask replaces its command with `python -m cohort.federated.node_app ...`
    image = dockerfile.image("fl_node")

    # Then it has no ENTRYPOINT, which the override would be passed to as arguments
    assert image.entrypoint is None

    # And its CMD runs the node's entrypoint
    assert image.cmd == ["python", "/app/entrypoint.py"]


@pytest.mark.parametrize(
    ("target", "entrypoint"),
    [
        ("orchestrator", ["python", "/app/entrypoint.py"]),
        ("evaluator", ["python", "/app/entrypoint.py"]),
        ("jupyterhub", ["jupyterhub", "--config", "/app/jupyterhub_config.py"]),
    ],
)
def test_the_services_start_through_their_entrypoints(
    dockerfile: Dockerfile, target: str, entrypoint: list[str]
) -> None:
    # Then a service's image starts its program whatever command it is given
    image = dockerfile.image(target)
    assert (image.entrypoint, image.cmd) == (entrypoint, None)


def test_images_built_for_a_gpu_let_containers_use_it(dev: Synth, dockerfile: Dockerfile) -> None:
    # Given each container whose image is built with CUDA's torch
    gpu_targets = {
        source["dockerBuildTarget"]
        for _, source in _containers(dev)
        if source["dockerBuildArgs"]["TORCH_BUILD"] == "cuda"
    }
    assert gpu_targets == {"fl_node", "evaluator"}

    # Then its image asks the NVIDIA runtime for the compute and utility capabilities
    for target in gpu_targets:
        assert dockerfile.image(target).env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility", target


def test_every_file_a_target_copies_is_in_its_build_context(dev: Synth, dockerfile: Dockerfile) -> None:
    # Given each image asset's staged build context, as `cdk deploy` hands it to Docker
    for source in dev.image_assets().values():
        context = dev.outdir / source["directory"]

        # Then every file or folder its target copies is there
        for step in dockerfile.steps(source["dockerBuildTarget"]):
            if step.op in {"COPY", "ADD"}:
                *copied, _ = [word for word in step.args.split() if not word.startswith("--")]
                for path in copied:
                    assert (context / path).exists(), f"{source['dockerBuildTarget']}: {path}"


def test_torch_is_built_as_the_cdk_asks(dockerfile: Dockerfile) -> None:
    # Given the stage that installs torch
    stage = dockerfile.stages[DEPENDENCIES]
    args = [step.args for step in stage.steps if step.op == "ARG"]

    # Then the build argument the CDK passes chooses the build, and a plain build gets the CPU one
    assert "TORCH_BUILD=cpu" in args
    assert any('install_torch.sh "${TORCH_BUILD}"' in s.args for s in stage.steps if s.op == "RUN")
