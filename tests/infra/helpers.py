"""Reading a synthesized app: templates, references across stacks, IAM statements, containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from aws_cdk.assertions import Template

from cdk_stacks.config import StageConfig
from cohort.catalogue import Catalogue

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# How render() writes the account and region, so catalogue names compare with template values.
NAMESPACE = "${AWS::AccountId}-${AWS::Region}"
# CloudWatch Logs retention, by the name cdk.json uses (aws_logs.RetentionDays).
RETENTION_DAYS = {
    "ONE_DAY": 1,
    "THREE_DAYS": 3,
    "FIVE_DAYS": 5,
    "ONE_WEEK": 7,
    "TWO_WEEKS": 14,
    "ONE_MONTH": 30,
    "TWO_MONTHS": 60,
    "THREE_MONTHS": 90,
    "FOUR_MONTHS": 120,
    "FIVE_MONTHS": 150,
    "SIX_MONTHS": 180,
    "ONE_YEAR": 365,
    "THIRTEEN_MONTHS": 400,
    "EIGHTEEN_MONTHS": 545,
    "TWO_YEARS": 731,
    "THREE_YEARS": 1096,
    "FIVE_YEARS": 1827,
    "SIX_YEARS": 2192,
    "SEVEN_YEARS": 2557,
    "EIGHT_YEARS": 2922,
    "NINE_YEARS": 3288,
    "TEN_YEARS": 3653,
}


def cdk_context(**overrides: object) -> dict[str, object]:
    """The context of cdk.json, as `cdk synth` passes it to app.py, plus ``overrides``."""
    return {**json.loads((REPO / "cdk.json").read_text())["context"], **overrides}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_INTRINSICS = {
    "Ref": lambda name: f"${{{name}}}",
    "Fn::GetAtt": lambda pair: f"${{{pair[0]}.{pair[1]}}}",
    "Fn::Join": lambda join: join[0].join(render(part) for part in join[1]),
    "Fn::ImportValue": lambda name: f"${{Import:{render(name)}}}",
    "Fn::Sub": lambda text: text if isinstance(text, str) else json.dumps(text),
}


def render(value: Any) -> str:
    """A template value as text, with ``Ref``/``GetAtt``/imports written ``${...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function in _INTRINSICS:
            return _INTRINSICS[function](argument)
    return json.dumps(value, sort_keys=True)


def walk(value: Any) -> Iterator[Any]:
    """Every node of a template value, depth first."""
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from walk(child)


class Target(NamedTuple):
    """The resource a template value points at: its stack (short name) and logical id."""

    stack: str
    logical_id: str
    attribute: str = "Ref"

    @property
    def resource(self) -> tuple[str, str]:
        return self.stack, self.logical_id


@dataclass(frozen=True)
class Statement:
    """One IAM policy statement and the roles it is attached to."""

    stack: str
    policy: str  # logical id of the policy, or of the role for an inline policy
    roles: frozenset[tuple[str, str]]
    body: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        return as_list(self.body.get("Action", []))

    @property
    def resources(self) -> list[Any]:
        return as_list(self.body.get("Resource", []))

    @property
    def on_any_resource(self) -> bool:
        return "*" in self.resources

    def allows(self, action: str) -> bool:
        """Whether this statement grants ``action``, through a wildcard or by name."""
        return self.body["Effect"] == "Allow" and any(
            fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions
        )


@dataclass
class Synth:
    """One synthesized app: each stack's template by short name (``storage``, ``api``, ...)."""

    config: StageConfig
    outdir: Path
    stack_names: dict[str, str]
    templates: dict[str, dict[str, Any]]
    _assertions: dict[str, Template] = field(default_factory=dict, repr=False)

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue(stage=self.config.stage, namespace=NAMESPACE)

    def template(self, stack: str) -> Template:
        if stack not in self._assertions:
            self._assertions[stack] = Template.from_json(self.templates[stack])
        return self._assertions[stack]

    def assets(self, stack: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{self.stack_names[stack]}.assets.json").read_text())

    def image_assets(self) -> dict[str, dict[str, Any]]:
        """The source of every container image asset of the app, by asset hash."""
        return {
            asset_hash: image["source"]
            for stack in self.templates
            for asset_hash, image in self.assets(stack).get("dockerImages", {}).items()
        }

    def resources(self, stack: str, *types: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] in types
        }

    def everywhere(self, *types: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, resource) of every resource of these types in the app."""
        return [
            (stack, logical_id, resource)
            for stack in self.templates
            for logical_id, resource in self.resources(stack, *types).items()
        ]

    def resource(self, target: Target) -> dict[str, Any]:
        return self.templates[target.stack]["Resources"][target.logical_id]

    def properties(self, target: Target) -> dict[str, Any]:
        return self.resource(target).get("Properties", {})

    def resolve(self, stack: str, value: Any) -> Target | None:
        """The resource ``value`` refers to, following ``Fn::ImportValue`` to the exporting stack."""
        if not isinstance(value, dict) or len(value) != 1:
            return None
        ((function, argument),) = value.items()
        if function == "Ref" and not argument.startswith("AWS::"):
            return Target(stack, argument)
        if function == "Fn::GetAtt":
            return Target(stack, argument[0], argument[1])
        if function == "Fn::ImportValue":
            for exporter, template in self.templates.items():
                for output in template.get("Outputs", {}).values():
                    if output.get("Export", {}).get("Name") == argument:
                        return self.resolve(exporter, output["Value"])
        return None

    def named(self, stack: str, type_: str, name_property: str, name: str) -> Target:
        """The one resource of ``type_`` whose ``name_property`` is ``name``."""
        found = [
            Target(stack, logical_id)
            for logical_id, resource in self.resources(stack, type_).items()
            if render(resource["Properties"].get(name_property)) == name
        ]
        assert len(found) == 1, f"expected one {type_} named {name!r} in {stack}, found {found}"
        return found[0]

    def function(self, service: str) -> Target:
        """The Lambda function whose Powertools service name is ``service``."""
        found = [
            Target("functions", logical_id)
            for logical_id, function in self.resources("functions", "AWS::Lambda::Function").items()
            if function["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == service
        ]
        assert len(found) == 1, f"expected one {service} function, found {found}"
        return found[0]

    def iam_statements(self) -> list[Statement]:
        """Every statement of every identity policy in the app: inline, attached and managed."""
        statements = []
        for stack, logical_id, resource in self.everywhere("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            properties = resource["Properties"]
            roles = frozenset(self.resolve(stack, role).resource for role in properties.get("Roles", []))
            statements += [
                Statement(stack, logical_id, roles, body)
                for body in as_list(properties["PolicyDocument"]["Statement"])
            ]
        for stack, logical_id, role in self.everywhere("AWS::IAM::Role"):
            for policy in role["Properties"].get("Policies", []):
                statements += [
                    Statement(stack, logical_id, frozenset({(stack, logical_id)}), body)
                    for body in as_list(policy["PolicyDocument"]["Statement"])
                ]
        return statements

    def task_definitions(self) -> list[tuple[Target, dict[str, Any]]]:
        return [
            (Target(stack, logical_id), resource["Properties"])
            for stack, logical_id, resource in self.everywhere("AWS::ECS::TaskDefinition")
        ]

    def fl_node_task_definitions(self) -> list[tuple[Target, dict[str, Any]]]:
        """The CPU and the GPU FL-node task definitions, found by the catalogue's families."""
        families = {self.catalogue.fl_node_task_family, self.catalogue.fl_node_gpu_task_family}
        found = [(target, p) for target, p in self.task_definitions() if p.get("Family") in families]
        assert len(found) == 2, f"expected both FL-node task definitions, found {len(found)}"
        return found

    def container(self, name: str) -> tuple[Target, dict[str, Any], dict[str, Any]]:
        """(task definition, its properties, the container definition) of the container ``name``."""
        found = [
            (target, properties, container)
            for target, properties in self.task_definitions()
            for container in properties["ContainerDefinitions"]
            if container["Name"] == name
        ]
        assert len(found) == 1, f"expected one container named {name!r}, found {len(found)}"
        return found[0]

    def role_of(self, stack: str, value: Any) -> tuple[str, str]:
        target = self.resolve(stack, value)
        assert target is not None, f"no role behind {value}"
        return target.resource


def environment(container: dict[str, Any]) -> dict[str, Any]:
    return {variable["Name"]: variable["Value"] for variable in container.get("Environment", [])}


def secrets(container: dict[str, Any]) -> dict[str, Any]:
    return {secret["Name"]: secret["ValueFrom"] for secret in container.get("Secrets", [])}


def retention_days(config: StageConfig) -> int:
    return RETENTION_DAYS[config.log_retention.value]


def directory_bytes(directory: Path) -> int:
    files = (path for path in directory.rglob("*") if path.is_file() and not path.is_symlink())
    return sum(path.stat().st_size for path in files)
