"""The dataset function on moto, with stream records recorded from the emulator.

Each test first stores the records' new images in the datasets table, as the
writes that produced the stream records did.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from cohort import aws, storage
from cohort.catalogue import Bucket, Table
from cohort.datasets import samples
from cohort.domain.records import DatasetRecord, DatasetStatus
from cohort.local import lambda_runtime
from cohort.local.provision import UserPool
from cohort.settings import get_settings

from .functions import recorded_event

FUNCTION = "dataset_generation"


@pytest.fixture
def datasets(account: UserPool) -> None:
    """No dataset in the table, and no sample in the bucket: moto's account outlives a test."""
    dynamodb, table = aws.client("dynamodb"), get_settings().catalogue.table(Table.DATASETS)
    for item in dynamodb.scan(TableName=table, ProjectionExpression="dataset_id")["Items"]:
        dynamodb.delete_item(TableName=table, Key=item)
    s3, bucket = aws.client("s3"), storage.bucket_name(Bucket.SAMPLES)
    for listed in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=listed["Key"])


@pytest.fixture
def uploads(datasets: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the function uploads, in order."""
    keys: list[str] = []
    upload = storage.upload_file

    def counting(bucket: Bucket, key: str, *args: Any) -> None:
        keys.append(key)
        upload(bucket, key, *args)

    monkeypatch.setattr(storage, "upload_file", counting)
    return keys


def _stored(event: dict[str, Any]) -> dict[str, Any]:
    """Put each record's new image in the table, as the write behind the record did; returns the event."""
    table = get_settings().catalogue.table(Table.DATASETS)
    for record in event["Records"]:
        aws.client("dynamodb").put_item(TableName=table, Item=record["dynamodb"]["NewImage"])
    return event


def _dataset_id(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"]["dataset_id"]["S"]


def _objects(dataset_id: str) -> dict[str, bytes]:
    s3, bucket = aws.client("s3"), storage.bucket_name(Bucket.SAMPLES)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"datasets/{dataset_id}/").get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _with_schema(
    record: dict[str, Any], *, attributes: object = None, rows: int | None = None
) -> dict[str, Any]:
    """The recorded record for another dataset, its schema replaced as a record written without checks."""
    changed = copy.deepcopy(record)
    image = changed["dynamodb"]["NewImage"]
    image["dataset_id"]["S"] = changed["dynamodb"]["Keys"]["dataset_id"]["S"] = "0" * 31 + "1"
    if attributes is not None:
        image["attributes"] = {"S": json.dumps(attributes)}
    if rows is not None:
        image["rows"] = {"N": str(rows)}
    return changed


def test_a_new_dataset_gets_its_sample_as_csv_and_parquet(uploads: list[str]) -> None:
    # Given the stream record of a newly registered dataset
    event = _stored(recorded_event("datasets_stream_insert"))
    dataset_id = _dataset_id(event["Records"][0])

    # When the function handles it
    response = lambda_runtime.invoke(FUNCTION, event)

    # Then no record failed, and the dataset is ready with both objects' keys
    assert response == {"batchItemFailures": []}
    dataset = DatasetRecord.get(dataset_id)
    assert dataset.status == DatasetStatus.READY
    assert dataset.sample_keys == {
        "csv": f"datasets/{dataset_id}/sample.csv",
        "parquet": f"datasets/{dataset_id}/sample.parquet",
    }
    # and both objects hold the dataset's 2,000 rows with its six attributes, the same in each
    objects = _objects(dataset_id)
    from_csv = pa_csv.read_csv(io.BytesIO(objects[dataset.sample_keys["csv"]]))
    from_parquet = pq.read_table(io.BytesIO(objects[dataset.sample_keys["parquet"]]))
    names = ["age", "bmi", "resting_heart_rate", "smoker", "country", "device_id"]
    assert from_csv.column_names == from_parquet.column_names == names
    assert from_csv.num_rows == from_parquet.num_rows == 2_000
    for name in ("age", "bmi", "resting_heart_rate", "smoker", "device_id"):
        assert from_csv[name].to_pylist() == from_parquet[name].to_pylist(), name
    # and S3 knows what each one is
    head = aws.client("s3").head_object(
        Bucket=storage.bucket_name(Bucket.SAMPLES), Key=dataset.sample_keys["csv"]
    )
    assert head["ContentType"] == "text/csv"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            {"attributes": [{"name": "bmi", "type": "float", "min": 40, "max": 10}]},
            "attribute 'bmi': min 40 > max 10",
            id="min>max",
        ),
        pytest.param(
            {"attributes": [{"name": "bmi", "type": "decimal", "min": 10, "max": 40}]},
            "attribute 'bmi', type: Input should be 'int', 'float', 'bool', 'category' or 'string'",
            id="unknown-type",
        ),
        pytest.param(
            {"attributes": [{"name": "mood", "type": "category", "choices": []}]},
            "attribute 'mood': a category needs at least one choice",
            id="empty-choices",
        ),
        pytest.param({"rows": 0}, "rows: a sample needs at least 1 row, not 0", id="zero-rows"),
        pytest.param({"rows": 5_000_000}, "rows: at most 1,000,000 rows, not 5,000,000", id="too-many-rows"),
        pytest.param(
            {"attributes": [{"name": "bmi", "min": 10, "max": 40}]},
            "attribute 'bmi', type: Field required",
            id="missing-field",
        ),
        pytest.param(
            {"attributes": [{"name": "b" * 300, "type": "bool"}]},
            "is not a valid name: use 1 to 64 letters",
            id="oversized-name",
        ),
        pytest.param(
            {"attributes": {"bmi": "float"}}, "attributes: Input should be a valid list", id="not-a-list"
        ),
    ],
)
def test_a_bad_schema_fails_the_dataset_with_the_reason_and_writes_nothing(
    uploads: list[str], change: dict[str, Any], reason: str
) -> None:
    # Given a dataset whose schema was stored without being checked
    record = _with_schema(recorded_event("datasets_stream_insert")["Records"][0], **change)
    event = _stored({"Records": [record]})

    # When the function handles its record
    response = lambda_runtime.invoke(FUNCTION, event)

    # Then that is an outcome, not a failure to retry
    assert response == {"batchItemFailures": []}
    # and the dataset failed with a reason a person can act on, and nothing was written
    dataset = DatasetRecord.get(_dataset_id(record))
    assert dataset.status == DatasetStatus.FAILED
    assert reason in dataset.status_reason
    assert uploads == []
    assert _objects(_dataset_id(record)) == {}


def test_when_s3_is_down_only_the_records_that_need_it_fail_and_a_retry_finishes_them(
    uploads: list[str],
) -> None:
    # Given a batch of three new datasets, the second with a bad schema, and the samples bucket gone
    event = _stored(recorded_event("datasets_stream_batch"))
    good, bad, other = event["Records"]
    aws.client("s3").delete_bucket(Bucket=storage.bucket_name(Bucket.SAMPLES))

    # When the function handles the batch
    response = lambda_runtime.invoke(FUNCTION, event)

    # Then the two records that hit the error are reported for a retry, and only them
    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert failed == [good["dynamodb"]["SequenceNumber"], other["dynamodb"]["SequenceNumber"]]
    assert DatasetRecord.get(_dataset_id(good)).status == DatasetStatus.REGISTERED
    # while the bad schema is settled all the same
    assert DatasetRecord.get(_dataset_id(bad)).status_reason == (
        "attribute 'bmi': min 40 > max 10; attribute 'mood': a category needs at least one choice"
    )

    # When S3 is back and the event source delivers again from the first failed record
    aws.client("s3").create_bucket(Bucket=storage.bucket_name(Bucket.SAMPLES))
    uploads.clear()
    response = lambda_runtime.invoke(FUNCTION, event)

    # Then both samples are written once, and the failed dataset is left as it was
    assert response == {"batchItemFailures": []}
    assert [DatasetRecord.get(_dataset_id(r)).status for r in (good, bad, other)] == [
        "ready",
        "failed",
        "ready",
    ]
    assert sorted(uploads) == sorted(
        samples.sample_key(_dataset_id(r), fmt) for r in (good, other) for fmt in ("csv", "parquet")
    )


def test_a_record_delivered_twice_is_generated_once(uploads: list[str]) -> None:
    # Given a dataset whose record arrives twice in one batch, then again in a later batch
    event = _stored(recorded_event("datasets_stream_insert"))
    dataset_id = _dataset_id(event["Records"][0])
    twice = {"Records": event["Records"] * 2}

    # When the function handles both batches
    first = lambda_runtime.invoke(FUNCTION, twice)
    written = _objects(dataset_id)
    second = lambda_runtime.invoke(FUNCTION, event)

    # Then the sample was generated and uploaded once, and left alone afterwards
    assert first == second == {"batchItemFailures": []}
    assert uploads == [samples.sample_key(dataset_id, "csv"), samples.sample_key(dataset_id, "parquet")]
    assert _objects(dataset_id) == written


def test_records_that_are_not_new_datasets_change_nothing(uploads: list[str]) -> None:
    # Given a MODIFY record (the event source filters them out; one slipping through is ignored)
    # and the INSERT of a dataset deleted since
    modify = copy.deepcopy(recorded_event("datasets_stream_insert"))
    modify["Records"][0]["eventName"] = "MODIFY"
    _stored(modify)
    deleted = _with_schema(recorded_event("datasets_stream_insert")["Records"][0])

    # When the function handles them
    response = lambda_runtime.invoke(FUNCTION, {"Records": [*modify["Records"], deleted]})

    # Then nothing fails and nothing is written
    assert response == {"batchItemFailures": []}
    assert uploads == []
    assert DatasetRecord.get(_dataset_id(modify["Records"][0])).status == DatasetStatus.REGISTERED


def test_a_record_off_the_contract_fails_alone(uploads: list[str]) -> None:
    # Given a batch whose first record lacks the dataset's key, followed by a good one
    event = _stored(recorded_event("datasets_stream_insert"))
    broken = copy.deepcopy(event["Records"][0])
    broken["dynamodb"]["Keys"] = {"id": {"S": "42"}}
    broken["dynamodb"]["SequenceNumber"] = "1"

    # When the function handles the batch
    response = lambda_runtime.invoke(FUNCTION, {"Records": [broken, *event["Records"]]})

    # Then only the broken record is reported, and the good one is done
    assert response == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert DatasetRecord.get(_dataset_id(event["Records"][0])).status == DatasetStatus.READY
