"""No secret in templates: not in outputs, not in environments, not written as a literal."""

from __future__ import annotations

import re
from typing import Any

from .helpers import Synth, environment, walk

_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|CREDENTIAL|API_KEY", re.IGNORECASE)
_DYNAMIC_SECRET = re.compile(r"\{\{resolve:(secretsmanager|ssm-secure):")


def _secret_values_in(synth: Synth, stack: str, value: Any) -> list[str]:
    """What in ``value`` would put a secret in plain text: dynamic references, secret attributes.

    A ``Ref`` to a secret is its ARN, which ECS and the code use to fetch it: that is no secret.
    """
    found = []
    for node in walk(value):
        if isinstance(node, str) and _DYNAMIC_SECRET.search(node):
            found.append(node)
        target = synth.resolve(stack, node) if isinstance(node, dict) else None
        if target is not None and "secret" in target.attribute.lower():  # e.g. a client's ClientSecret
            found.append(f"{target.logical_id}.{target.attribute}")
    return found


def test_no_stack_output_exposes_a_secret(synth: Synth) -> None:
    # Given every output of every stack, exports included
    for stack, template in synth.templates.items():
        for name, output in template.get("Outputs", {}).items():
            # Then none resolves a secret or reads a secret attribute
            assert not _secret_values_in(synth, stack, output["Value"]), f"{stack} output {name}"
            # And none refers to a secret at all
            target = synth.resolve(stack, output["Value"])
            assert target is None or synth.resource(target)["Type"] != "AWS::SecretsManager::Secret", name


def test_secret_values_are_generated_or_come_from_their_owner_never_from_the_template(synth: Synth) -> None:
    # Given every secret of the app
    secrets = synth.everywhere("AWS::SecretsManager::Secret")
    assert len(secrets) == 2

    for _, logical_id, secret in secrets:
        properties = secret["Properties"]
        # Then Secrets Manager generates its value, or CloudFormation reads it from its owner
        assert "GenerateSecretString" in properties or isinstance(properties.get("SecretString"), dict), (
            logical_id
        )
        # And no literal value is written in the template
        assert not isinstance(properties.get("SecretString"), str), logical_id


def test_no_container_environment_carries_a_secret(dev: Synth) -> None:
    # Given every container definition of the app
    for task_definition, properties in dev.task_definitions():
        for container in properties["ContainerDefinitions"]:
            variables = environment(container)

            # Then no plain environment variable is named like a secret or holds one
            assert not [name for name in variables if _SECRET_NAME.search(name)], container["Name"]
            assert not _secret_values_in(dev, task_definition.stack, variables), container["Name"]


def test_no_function_environment_carries_a_secret(dev: Synth) -> None:
    # Given every function of the functions stack
    for logical_id, function in dev.resources("functions", "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]

        # Then no variable is named like a secret or holds one
        assert not [name for name in variables if _SECRET_NAME.search(name)], logical_id
        assert not _secret_values_in(dev, "functions", variables), logical_id


def test_containers_get_their_secrets_injected_by_ecs_from_secrets_manager(dev: Synth) -> None:
    # Given every secret that a container definition declares
    injected = [
        (task_definition.stack, container["Name"], secret)
        for task_definition, properties in dev.task_definitions()
        for container in properties["ContainerDefinitions"]
        for secret in container.get("Secrets", [])
    ]

    # Then the token key reaches the orchestrator and both FL nodes, and the OAuth secret the hub
    node = dev.catalogue.fl_node_container
    assert sorted((name, secret["Name"]) for _, name, secret in injected) == [
        ("Hub", "OAUTH_CLIENT_SECRET"),
        ("Orchestrator", "COHORT_TOKEN_SECRET"),
        (node, "COHORT_TOKEN_SECRET"),
        (node, "COHORT_TOKEN_SECRET"),
    ]

    # And each comes from a Secrets Manager secret of the app
    for stack, name, secret in injected:
        source = dev.resolve(stack, secret["ValueFrom"])
        assert dev.resource(source)["Type"] == "AWS::SecretsManager::Secret", name
