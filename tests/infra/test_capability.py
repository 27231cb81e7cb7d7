"""Capabilities group a stack's resources in the construct tree and rename none of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Names, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.constructs.capability import Capability, make_unique_id

from .conftest import synthesize
from .helpers import Synth

_RENAMED = "Renamed"


def test_unique_ids_are_made_as_the_cdk_makes_them() -> None:
    # Given constructs of every shape CDK names: top-level, nested, hidden ("Default", "Resource"),
    # repeated ("Vpc/Vpc"), with characters an id drops, and a long path
    app = App()
    stack = Stack(app, "Stack")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1)
    vpc.add_interface_endpoint("Sqs.Endpoint", service=ec2.InterfaceVpcEndpointAwsService.SQS)
    sqs.Queue(Construct(stack, "Default"), "Queue")
    deep: Construct = stack
    for depth in range(40):
        deep = Construct(deep, f"Level{depth}WithALongerName")
    sqs.Queue(deep, "Queue")

    # Then each unique id is the one CDK gives, computed from the same path
    constructs = stack.node.find_all()
    assert len(constructs) > 50
    for construct in constructs:
        path = [scope.node.id for scope in construct.node.scopes[1:]]
        assert make_unique_id(path) == Names.unique_id(construct), construct.node.path


def _renamed_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    def init(self: Capability, scope: Construct, construct_id: str) -> None:
        Construct.__init__(self, scope, f"{_RENAMED}{construct_id}")

    monkeypatch.setattr(Capability, "__init__", init)


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    for stack, template in before.items():
        old, new = template["Resources"], after[stack]["Resources"]
        found += [f"{stack}: {i} is now named otherwise" for i in sorted(old.keys() - new.keys())]
        found += [
            f"{stack}: {i} has other properties" for i in sorted(old.keys() & new.keys()) if old[i] != new[i]
        ]
        if {**template, "Resources": None} != {**after[stack], "Resources": None}:
            found.append(f"{stack}: outputs, parameters or rules differ")
    return found


def _paths(tree: dict[str, Any]) -> set[str]:
    children = tree.get("children", {}).values()
    return {tree["path"], *(path for child in children for path in _paths(child))}


@pytest.mark.slow  # synthesizes the whole app a second time; test_logical_ids guards the ids in make check
def test_renaming_a_capability_renames_nothing_deployed(
    dev: Synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the dev app synthesized again, with every capability's id changed
    _renamed_capabilities(monkeypatch)
    renamed = synthesize("dev", tmp_path)

    # Then every template is the same: no logical id, and no name CDK derives from a path, holds
    # a capability's id (pin such a name with capability.unique_id or capability.path)
    found = _differences(dev.templates, renamed.templates)
    assert not found, "\n".join(found)

    # And the capabilities hold the compute stack's services, under their new ids in the tree
    paths = _paths(json.loads((tmp_path / "tree.json").read_text())["tree"])
    compute = renamed.stack_names["compute"]
    for capability, resource in {
        "Platform": "Cluster",
        "Gpu": "GpuHosts",
        "Entry": "Nlb",
        "FlNodes": "FlNodeCpu",
        "Orchestrator": "OrchestratorService",
        "Evaluator": "EvaluatorService",
    }.items():
        assert f"{compute}/{_RENAMED}{capability}/{resource}" in paths
