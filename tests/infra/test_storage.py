"""Storage: buckets, tables and queues are named by the catalogue and guarded."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from cohort.catalogue import Bucket, Queue, Table
from cohort.domain.records import ALL_RECORDS

from .helpers import Synth, Target, as_list, render


def _denies_insecure_transport(document: dict, service: str) -> bool:
    return any(
        statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        and {"*", f"{service}:*"} & set(as_list(statement["Action"]))
        for statement in document["Statement"]
    )


_POLICY_TARGETS = {"AWS::S3::BucketPolicy": "Bucket", "AWS::SQS::QueuePolicy": "Queues"}


def _resource_policies(synth: Synth, stack: str, logical_id: str) -> list[dict]:
    """The policy documents of the bucket or queue policies attached to ``logical_id``."""
    return [
        policy["Properties"]["PolicyDocument"]
        for policy in synth.resources(stack, *_POLICY_TARGETS).values()
        if {"Ref": logical_id} in as_list(policy["Properties"][_POLICY_TARGETS[policy["Type"]]])
    ]


def _bucket(synth: Synth, bucket: Bucket) -> str:
    return synth.named("storage", "AWS::S3::Bucket", "BucketName", synth.catalogue.bucket(bucket)).logical_id


def _table(synth: Synth, table: Table) -> dict:
    target = synth.named("storage", "AWS::DynamoDB::GlobalTable", "TableName", synth.catalogue.table(table))
    return synth.properties(target)


# -- buckets ------------------------------------------------------------------------------


def test_there_is_one_bucket_per_catalogue_entry_named_by_the_catalogue(dev: Synth) -> None:
    # Given the synthesized storage stack
    buckets = dev.resources("storage", "AWS::S3::Bucket").values()

    # Then its bucket names are exactly the catalogue's, account- and region-scoped
    names = {render(bucket["Properties"]["BucketName"]) for bucket in buckets}
    assert names == {dev.catalogue.bucket(bucket) for bucket in Bucket}


def test_every_bucket_is_private_encrypted_and_versioned(dev: Synth) -> None:
    # Given the storage stack
    template = dev.template("storage")

    # Then every bucket blocks public access, encrypts at rest and keeps versions
    template.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": Match.any_value()}}
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )


def test_every_bucket_denies_requests_without_tls(dev: Synth) -> None:
    # Given every bucket of the storage stack
    for logical_id in dev.resources("storage", "AWS::S3::Bucket"):
        # When its bucket policy is read
        policies = _resource_policies(dev, "storage", logical_id)

        # Then it denies every S3 action over plain HTTP
        assert any(_denies_insecure_transport(policy, "s3") for policy in policies), logical_id


def test_every_bucket_but_the_log_bucket_logs_its_access_into_the_log_bucket(dev: Synth) -> None:
    # Given the access-log bucket and its policy
    log_bucket = _bucket(dev, Bucket.ACCESS_LOGS)
    writers = {
        render(statement["Condition"]["ArnLike"]["aws:SourceArn"])
        for policy in _resource_policies(dev, "storage", log_bucket)
        for statement in policy["Statement"]
        if statement.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
        and statement["Action"] == "s3:PutObject"
    }

    for bucket in Bucket:
        logical_id = _bucket(dev, bucket)
        logging = dev.properties(Target("storage", logical_id)).get("LoggingConfiguration")
        if bucket is Bucket.ACCESS_LOGS:
            # Then the log bucket does not log into itself
            assert logging is None
            continue
        # Then every other bucket logs into the log bucket, which lets S3 logging write for it
        assert logging["DestinationBucketName"] == {"Ref": log_bucket}, bucket
        assert f"${{{logical_id}.Arn}}" in writers, f"S3 may not deliver the {bucket} access logs"


def test_only_the_updates_bucket_expires_objects_after_the_stage_expiry(synth: Synth) -> None:
    # Given each stage's buckets
    for bucket in Bucket:
        rules = synth.properties(Target("storage", _bucket(synth, bucket)))["LifecycleConfiguration"]["Rules"]

        # When the expiry of current objects is read
        expiries = [rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule]

        # Then device updates expire after the stage's days, and nothing else expires
        expected = [synth.config.updates_expiry_days] if bucket is Bucket.UPDATES else []
        assert expiries == expected, bucket


# What the website does with each bucket from the browser, through presigned URLs.
_BROWSER_ACCESS = {
    Bucket.MODELS: {"AllowedMethods": ["PUT"], "AllowedHeaders": ["content-type"]},
    Bucket.SAMPLES: {
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedHeaders": ["range"],
        "ExposedHeaders": ["Content-Length", "Content-Range", "ETag"],
    },
    Bucket.REPORTS: {"AllowedMethods": ["GET"]},
}


@pytest.mark.parametrize("bucket", list(Bucket))
def test_buckets_let_the_website_origin_do_what_it_does_from_the_browser_and_no_more(
    synth: Synth, bucket: Bucket
) -> None:
    # Given a bucket's CORS rules, in each stage
    cors = synth.properties(Target("storage", _bucket(synth, bucket))).get("CorsConfiguration")

    if bucket not in _BROWSER_ACCESS:
        # Then a bucket the browser never calls answers no cross-origin request
        assert cors is None, bucket
        return

    # Then one rule admits the website's origin alone, and browsers may cache its preflight
    (rule,) = cors["CorsRules"]
    assert rule.pop("AllowedOrigins") == [synth.config.website_origin]
    assert rule.pop("MaxAge") > 0

    # And it allows exactly the site's methods and headers: uploads of weights, ONNX files and
    # evaluation sets with their content type; sample previews by byte range, with the whole's length;
    # report reads
    expected = _BROWSER_ACCESS[bucket]
    assert {key: sorted(value) for key, value in rule.items()} == {k: sorted(v) for k, v in expected.items()}


# -- tables -------------------------------------------------------------------------------


def test_every_table_is_on_demand_encrypted_and_point_in_time_recoverable(dev: Synth) -> None:
    # Given the tables of the storage stack, one per catalogue table
    tables = dev.resources("storage", "AWS::DynamoDB::GlobalTable")
    assert {table["Properties"]["TableName"] for table in tables.values()} == {
        dev.catalogue.table(table) for table in Table
    }

    for logical_id, table in tables.items():
        properties = table["Properties"]
        # Then each is billed on demand and encrypted
        assert properties["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert properties["SSESpecification"]["SSEEnabled"] is True, logical_id
        # And every replica has point-in-time recovery
        assert properties["Replicas"], logical_id
        for replica in properties["Replicas"]:
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda record: record.__name__)
def test_each_table_declares_what_its_pynamodb_record_declares(dev: Synth, record: type) -> None:
    # Given a record and the table the catalogue names for it
    schema = record._get_schema()
    table = _table(dev, record.Meta.table)

    # Then keys, key types, indexes, TTL and stream are those the record declares
    def keys(key_schema: list[dict]) -> dict[str, str]:
        return {key["KeyType"]: key["AttributeName"] for key in key_schema}

    assert keys(table["KeySchema"]) == keys(schema["key_schema"])
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]
    }
    assert {
        index["IndexName"]: (keys(index["KeySchema"]), index["Projection"]["ProjectionType"])
        for index in table.get("GlobalSecondaryIndexes", [])
    } == {
        index["index_name"]: (keys(index["key_schema"]), index["projection"]["ProjectionType"])
        for index in schema["global_secondary_indexes"]
    }
    assert [index["IndexName"] for index in table.get("LocalSecondaryIndexes", [])] == [
        index["index_name"] for index in schema["local_secondary_indexes"]
    ]
    ttl = record._ttl_attribute()
    expected_ttl = {"AttributeName": ttl.attr_name, "Enabled": True} if ttl else None
    assert table.get("TimeToLiveSpecification") == expected_ttl
    stream = getattr(record.Meta, "stream_view_type", None)
    assert table.get("StreamSpecification") == ({"StreamViewType": stream} if stream else None)


def test_participations_expire_on_their_expires_at_attribute(dev: Synth) -> None:
    # Given the participations table
    table = _table(dev, Table.PARTICIPATIONS)

    # Then DynamoDB deletes each participation once its expires_at has passed
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# -- queues -------------------------------------------------------------------------------


@pytest.mark.parametrize("queue", list(Queue))
def test_each_catalogue_queue_redrives_to_its_dead_letter_queue(dev: Synth, queue: Queue) -> None:
    # Given a catalogue queue and its dead-letter queue, both named by the catalogue
    main = dev.named("storage", "AWS::SQS::Queue", "QueueName", dev.catalogue.queue(queue))
    dead = dev.named("storage", "AWS::SQS::Queue", "QueueName", dev.catalogue.dead_letter_queue(queue))

    # When a message keeps failing
    redrive = dev.properties(main)["RedrivePolicy"]

    # Then after a few receives it moves to the dead-letter queue, which keeps it for 14 days
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead.logical_id, "Arn"]}
    assert 1 <= redrive["maxReceiveCount"] <= 10
    assert dev.properties(dead)["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_every_queue_is_encrypted_and_tls_only(dev: Synth) -> None:
    # Given every queue of the app, the catalogue's and the functions' own
    queues = dev.everywhere("AWS::SQS::Queue")
    assert len(queues) == 2 * len(Queue) + 1

    for stack, logical_id, queue in queues:
        # Then each is encrypted at rest
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties
        # And its queue policy refuses plain HTTP
        policies = _resource_policies(dev, stack, logical_id)
        assert any(_denies_insecure_transport(policy, "sqs") for policy in policies), logical_id
