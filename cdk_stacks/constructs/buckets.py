"""S3 buckets that are private, TLS-only, encrypted, versioned and access-logged."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_stacks.constructs.findings import acknowledge

# Old versions are kept long enough to undo a mistake, not forever.
_NONCURRENT_VERSION_DAYS = 30


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    bucket_name: str,
    removal_policy: RemovalPolicy,
    access_logs: s3.IBucket | None,
    expire_after_days: int | None = None,
    cors: Sequence[s3.CorsRule] | None = None,
) -> s3.Bucket:
    """A bucket with every guard on; ``expire_after_days`` deletes objects after that many days.

    ``cors`` lets a browser page read what it sends or fetches through presigned URLs; the signature,
    not CORS, still decides what may be done.
    """
    rules = [
        s3.LifecycleRule(
            abort_incomplete_multipart_upload_after=Duration.days(1),
            noncurrent_version_expiration=Duration.days(expire_after_days or _NONCURRENT_VERSION_DAYS),
        )
    ]
    if expire_after_days:
        rules.append(s3.LifecycleRule(expiration=Duration.days(expire_after_days)))
    bucket = s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"{construct_id.lower()}/" if access_logs else None,
        lifecycle_rules=rules,
        cors=list(cors) if cors else None,
        removal_policy=removal_policy,
    )
    if access_logs is None:
        acknowledge(
            bucket,
            "S1",
            "This is the access-log destination; logging it into itself would loop.",
        )
    return bucket
