"""Least-privilege grants on catalogue resources, with exact actions.

The L2 ``grant_*`` helpers add wildcard actions (``s3:GetObject*``, ``s3:List*``).
These grants name every action, address resources by their catalogue names, and
acknowledge the one wildcard each needs (objects in a bucket, a table's
indexes) with the exact evidence cdk-nag reports for it.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam

from cdk_stacks.constructs.findings import acknowledge
from cohort.catalogue import Bucket, Catalogue, Table
from cohort.domain.records import ALL_RECORDS

READ_OBJECTS = ("s3:GetObject",)
WRITE_OBJECTS = ("s3:PutObject",)
# Every version too: in a versioned bucket, deleting the current one alone leaves the data readable.
DELETE_OBJECTS = ("s3:DeleteObject", "s3:DeleteObjectVersion")
READ_ITEMS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
WRITE_ITEMS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")


def _as_reported(catalogue: Catalogue) -> Catalogue:
    """The same names as cdk-nag prints them, with pseudo parameters in angle brackets."""
    return Catalogue(stage=catalogue.stage, namespace="<AWS::AccountId>-<AWS::Region>")


def bucket_arn(catalogue: Catalogue, bucket: Bucket) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{catalogue.bucket(bucket)}"


def table_arn(catalogue: Catalogue, table: Table) -> str:
    return f"arn:{Aws.PARTITION}:dynamodb:{Aws.REGION}:{Aws.ACCOUNT_ID}:table/{catalogue.table(table)}"


def grant_objects(
    role: iam.IRole, catalogue: Catalogue, bucket: Bucket, actions: tuple[str, ...], prefix: str = ""
) -> None:
    """``actions`` on the objects of ``bucket`` whose keys start with ``prefix``."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=[f"{bucket_arn(catalogue, bucket)}/{prefix}*"])
    )
    reported = f"arn:<AWS::Partition>:s3:::{_as_reported(catalogue).bucket(bucket)}/{prefix}*"
    acknowledge(
        _policy_of(role),
        f"IAM5[Resource::{reported}]",
        f"Object keys are made at run time; only {', '.join(actions)} in the {bucket.value} bucket.",
    )


def grant_version_listing(role: iam.IRole, catalogue: Catalogue, bucket: Bucket, prefix: str) -> None:
    """List the object versions of ``bucket`` under ``prefix`` only (to delete them all)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucketVersions"],
            resources=[bucket_arn(catalogue, bucket)],
            conditions={"StringLike": {"s3:prefix": f"{prefix}*"}},
        )
    )


def _has_indexes(table: Table) -> bool:
    return any(record.Meta.table is table and record._indexes for record in ALL_RECORDS)


def grant_items(role: iam.IRole, catalogue: Catalogue, table: Table, actions: tuple[str, ...]) -> None:
    """``actions`` on the items of ``table`` and, if it has secondary indexes, on those."""
    arn = table_arn(catalogue, table)
    if not _has_indexes(table):
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=[arn]))
        return
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=[arn, f"{arn}/index/*"])
    )
    reported = (
        f"arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/"
        f"{_as_reported(catalogue).table(table)}/index/*"
    )
    acknowledge(
        _policy_of(role),
        f"IAM5[Resource::{reported}]",
        f"Queries go through the {table.value} table's own secondary indexes, declared with the table.",
    )


def _policy_of(role: iam.IRole) -> iam.Policy:
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        raise ValueError(f"{role.node.path} has no default policy to acknowledge a finding on")
    return policy
