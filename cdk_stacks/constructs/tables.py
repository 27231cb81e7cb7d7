"""DynamoDB tables declared from the pynamodb records, so keys and indexes never drift."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from pynamodb.models import Model

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_STREAMS = {
    "NEW_IMAGE": dynamodb.StreamViewType.NEW_IMAGE,
    "NEW_AND_OLD_IMAGES": dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
}


def _key(schema: list[dict], types: dict[str, str], kind: str) -> dynamodb.Attribute | None:
    name = next((key["AttributeName"] for key in schema if key["KeyType"] == kind), None)
    return None if name is None else dynamodb.Attribute(name=name, type=_TYPES[types[name]])


def record_table(
    scope: Construct, record: type[Model], table_name: str, removal_policy: RemovalPolicy
) -> dynamodb.TableV2:
    """An encrypted, on-demand table with PITR, holding ``record``'s keys, indexes, TTL and stream."""
    schema = record._get_schema()  # the same schema pynamodb's create_table sends locally
    types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    ttl = record._ttl_attribute()
    stream = getattr(record.Meta, "stream_view_type", None)
    return _guarded_table(
        scope,
        record.__name__.removesuffix("Record"),
        table_name,
        removal_policy,
        partition_key=_key(schema["key_schema"], types, "HASH"),
        sort_key=_key(schema["key_schema"], types, "RANGE"),
        time_to_live_attribute=ttl.attr_name if ttl else None,
        dynamo_stream=_STREAMS[stream] if stream else None,
        global_secondary_indexes=[
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=index["index_name"],
                partition_key=_key(index["key_schema"], types, "HASH"),
                sort_key=_key(index["key_schema"], types, "RANGE"),
                projection_type=dynamodb.ProjectionType(index["projection"]["ProjectionType"]),
            )
            for index in schema["global_secondary_indexes"]
        ],
    )


def idempotency_table(scope: Construct, table_name: str, removal_policy: RemovalPolicy) -> dynamodb.TableV2:
    """The table Powertools idempotency expects: key ``id``, TTL ``expiration``."""
    return _guarded_table(
        scope,
        "Idempotency",
        table_name,
        removal_policy,
        partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
        time_to_live_attribute="expiration",
    )


def _guarded_table(
    scope: Construct, construct_id: str, table_name: str, removal_policy: RemovalPolicy, **keys: object
) -> dynamodb.TableV2:
    """On demand, encrypted, with PITR; kept (and protected from deletion) when the stage retains data."""
    return dynamodb.TableV2(
        scope,
        construct_id,
        table_name=table_name,
        billing=dynamodb.Billing.on_demand(),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=removal_policy == RemovalPolicy.RETAIN,
        removal_policy=removal_policy,
        **keys,
    )
