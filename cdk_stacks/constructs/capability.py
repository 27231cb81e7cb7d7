"""Capabilities: constructs that group a stack's resources without renaming them.

CloudFormation knows a resource by its logical id, and CDK derives that id from the resource's
construct path. Moving a resource that a stage has deployed into a construct changes its path, and
CloudFormation would then create it again under the new id and delete the old one: a secret with a
new value, a load balancer with a new address, an ingress rule created twice and refused.

A ``Capability`` takes no part in the names CDK derives from a path. ``CapabilityStack`` allocates
every logical id by CDK's own rule, ``makeUniqueId``, from the path with its capabilities left out,
so a resource keeps the id it had as a direct child of the stack while the construct tree (node
paths, cdk-nag's report, acknowledgements, aspects) still shows which capability it belongs to.

Why a rule and not pins: ``override_logical_id`` on each resource would be a table of hashed ids
per stage, and would miss the children that L2 constructs create on their own (roles, default
policies, listeners, scaling alarms); the rule covers them all, including those added later. Two
resources that would share an id fail the synth ("section 'Resources' already contains ..."), and
tests/infra/test_logical_ids.py compares every synthesized id with those recorded before
capabilities existed.

CDK derives some *names* from paths too, and a capability must not change those either: a security
group's unique id (part of the logical id of every rule that admits it as a peer), a scaling
policy's name (changing it replaces the policy), a task definition's default family, the Name tag
of hosts. ``CapabilitySecurityGroup`` keeps the first by itself; ``unique_id`` and ``path`` give
the others the names they had. tests/infra/test_capability.py synthesizes the app with every
capability renamed and finds no difference in any template.
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import CfnElement, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct, IConstruct

# aws-cdk-lib's core/lib/private/uniqueid.ts, which the library does not export.
_HIDDEN_ID = "Default"
_HIDDEN_FROM_HUMAN_ID = "Resource"
_HASH_LENGTH = 8
_MAX_HUMAN_LENGTH = 240
_MAX_ID_LENGTH = 255


class Capability(Construct):
    """One capability of a ``CapabilityStack``: it groups resources, and names none of them."""


class CapabilityStack(Stack):
    """A stack composed of capabilities, each transparent to the logical ids of what it holds."""

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        scopes = cfn_element.node.scopes
        below = scopes[scopes.index(self) + 1 :]
        if not any(isinstance(scope, Capability) for scope in below):
            return super()._allocate_logical_id(cfn_element)
        return make_unique_id(_named_by(below))


class CapabilitySecurityGroup(ec2.SecurityGroup):
    """A security group whose peers name their rules after its path without capabilities.

    A rule's construct id, and so its logical id, holds the peer's ``unique_id``.
    """

    @property
    def unique_id(self) -> str:
        return unique_id(self)


def unique_id(scope: IConstruct, *ids: str) -> str:
    """``Names.unique_id`` of ``scope`` (or of its descendant ``ids``), as if it held no capability."""
    return make_unique_id([*_named_by(scope.node.scopes[1:]), *ids])


def path(construct: IConstruct) -> str:
    """``construct.node.path`` without the capabilities on it."""
    return "/".join(_named_by(construct.node.scopes[1:]))


def _named_by(scopes: list[IConstruct]) -> list[str]:
    return [scope.node.id for scope in scopes if not isinstance(scope, Capability)]


def make_unique_id(components: list[str]) -> str:
    """CDK's ``makeUniqueId``: the human-readable path, deduplicated, and a hash of the whole path."""
    components = [component for component in components if component != _HIDDEN_ID]
    if not components:
        raise ValueError("a unique id needs at least one path component")
    if len(components) == 1 and len(candidate := _alphanumeric(components[0])) <= _MAX_ID_LENGTH:
        return candidate
    digest = (
        hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()[:_HASH_LENGTH].upper()
    )
    human = "".join(
        _alphanumeric(component)
        for component in _without_repeats(components)
        if component != _HIDDEN_FROM_HUMAN_ID
    )
    return human[:_MAX_HUMAN_LENGTH] + digest


def _alphanumeric(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def _without_repeats(components: list[str]) -> list[str]:
    """Each component, unless the one kept before it ends with it (``Vpc``/``Vpc`` reads ``Vpc``)."""
    kept: list[str] = []
    for component in components:
        if not kept or not kept[-1].endswith(component):
            kept.append(component)
    return kept
