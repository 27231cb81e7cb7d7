"""Create every resource in the catalogue on the emulator (the CDK does this on AWS)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cohort import aws
from cohort.catalogue import MAX_RECEIVES, Bucket, Group, Queue, Table
from cohort.domain.records import ALL_RECORDS, bind_tables
from cohort.settings import Settings


@dataclass(frozen=True)
class UserPool:
    pool_id: str
    client_id: str


def provision(settings: Settings) -> UserPool:
    bind_tables(settings)
    for record in ALL_RECORDS:
        if not record.exists():
            record.create_table(wait=True)
    _create_idempotency_table(settings)
    _create_buckets(settings)
    _create_queues(settings)
    _verify_sender(settings)
    return _create_user_pool(settings)


def _create_idempotency_table(settings: Settings) -> None:
    """The table Powertools idempotency expects: key ``id``, TTL ``expiration``."""
    dynamodb = aws.client("dynamodb")
    name = settings.catalogue.table(Table.IDEMPOTENCY)
    try:
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.get_waiter("table_exists").wait(TableName=name)
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )


def _create_buckets(settings: Settings) -> None:
    s3 = aws.client("s3")
    for bucket in Bucket:
        s3.create_bucket(Bucket=settings.catalogue.bucket(bucket))


def _create_queues(settings: Settings) -> None:
    sqs = aws.client("sqs")
    for queue in Queue:
        dlq_url = sqs.create_queue(QueueName=settings.catalogue.dead_letter_queue(queue))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
        sqs.create_queue(
            QueueName=settings.catalogue.queue(queue), Attributes={"RedrivePolicy": json.dumps(redrive)}
        )


def _verify_sender(settings: Settings) -> None:
    # On AWS a person verifies the sender's address or domain once; the emulator verifies at once.
    aws.client("ses").verify_email_identity(EmailAddress=settings.sender_email)


def _create_user_pool(settings: Settings) -> UserPool:
    cognito = aws.client("cognito-idp")
    pool = cognito.create_user_pool(
        PoolName=settings.catalogue.user_pool,
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 12,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
        Schema=[{"Name": "role", "AttributeDataType": "String", "Mutable": False}],
    )["UserPool"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName=settings.catalogue.user_pool_client,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    for group in Group:
        cognito.create_group(GroupName=group.value, UserPoolId=pool["Id"])
    return UserPool(pool_id=pool["Id"], client_id=client["ClientId"])
