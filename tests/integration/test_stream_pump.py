"""The local stand-in for Lambda's event source on the datasets stream, against moto's DynamoDB streams."""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel

from cohort import aws
from cohort.domain.records import DatasetRecord, DatasetStatus
from cohort.local import lambda_runtime
from cohort.local.provision import UserPool
from cohort.local.stream_pump import BATCH_SIZE, MAX_RETRIES, StreamPump

GOOD_SCHEMA = [{"name": "age", "type": "int", "min": 18, "max": 90}]


class Function:
    """Stands in for the handler: records each event, and answers as told."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer: Any = lambda _: {"batchItemFailures": []}

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(json.loads(json.dumps(event)))  # what went over the wire, as JSON
        return self.answer(event)

    def batches(self) -> list[list[str]]:
        return [[r["dynamodb"]["Keys"]["dataset_id"]["S"] for r in event["Records"]] for event in self.events]


@pytest.fixture
def function() -> Function:
    return Function()


@pytest.fixture
def pump(
    account: UserPool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, function: Function
) -> StreamPump:
    """A pump past every record already in the stream."""
    # botocore sends stream calls to an account-specific host that moto does not route; the
    # regional one it does.
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "https://streams.dynamodb.us-east-1.amazonaws.com"
    )
    aws.reset_clients()
    pump = StreamPump(DatasetRecord.Meta.table_name, tmp_path / "failures.jsonl", function, retry_backoff=0)
    pump.pump_once()
    function.events.clear()
    return pump


def _register(count: int, attributes: list[dict[str, Any]] = GOOD_SCHEMA) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
    for dataset_id in ids:
        DatasetRecord(
            dataset_id, owner_id="o", app_name="app", attributes=attributes, rows=100, seed=1
        ).save()
    return ids


def test_new_datasets_reach_the_function_in_batches_shaped_as_lambda_delivers_them(
    pump: StreamPump, function: Function
) -> None:
    # Given twelve new datasets, one of them then changed and another deleted
    ids = _register(12)
    DatasetRecord.get(ids[0]).update(actions=[DatasetRecord.status.set(DatasetStatus.READY)])
    DatasetRecord.get(ids[1]).delete()

    # When the pump reads the stream
    delivered = pump.pump_once()

    # Then only the twelve INSERTs went to the function, in order, in batches of at most ten
    assert delivered == 12
    assert function.batches() == [ids[:BATCH_SIZE], ids[BATCH_SIZE:]]
    # and each record has the shape Lambda gives it, from this table's stream
    stream_arn = aws.client("dynamodb").describe_table(TableName=DatasetRecord.Meta.table_name)["Table"][
        "LatestStreamArn"
    ]
    for record in function.events[0]["Records"]:
        parsed = DynamoDBStreamRecordModel.model_validate(record)
        assert parsed.eventSourceARN == stream_arn
        assert parsed.dynamodb.NewImage["status"] == DatasetStatus.REGISTERED
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)

    # When the pump reads again, Then nothing is delivered twice
    assert pump.pump_once() == 0


def test_a_failed_record_is_retried_with_the_ones_after_it_then_parked(
    pump: StreamPump, function: Function, tmp_path: Path
) -> None:
    # Given a function that always reports the third of five records as failed
    ids = _register(5)

    def third_fails(event: dict[str, Any]) -> dict[str, Any]:
        failing = [r for r in event["Records"] if r["dynamodb"]["Keys"]["dataset_id"]["S"] == ids[2]]
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failing]}

    function.answer = third_fails

    # When the pump delivers them
    pump.pump_once()

    # Then, as Lambda does, delivery resumes from the failed record, three more times
    assert function.batches() == [ids] + [ids[2:]] * MAX_RETRIES
    # and then those records are parked with the reason, and the stream moves on
    (parked,) = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [r["dynamodb"]["Keys"]["dataset_id"]["S"] for r in parked["records"]] == ids[2:]
    assert parked["problem"] == "1 reported in batchItemFailures"
    assert pump.pump_once() == 0


def test_a_function_that_raises_gets_the_whole_batch_again(
    pump: StreamPump, function: Function, tmp_path: Path
) -> None:
    # Given a function that crashes once, then works
    ids = _register(3)
    answers = iter([RuntimeError("cold start failed"), {"batchItemFailures": []}])

    def flaky(_: dict[str, Any]) -> dict[str, Any]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    function.answer = flaky

    # When the pump delivers the records
    pump.pump_once()

    # Then the whole batch came twice, and nothing was parked
    assert function.batches() == [ids, ids]
    assert not (tmp_path / "failures.jsonl").exists()


def test_the_real_function_turns_a_stream_record_into_a_ready_sample(
    pump: StreamPump, function: Function
) -> None:
    # Given the pump wired to the dataset function, and a new dataset
    function.answer = partial(lambda_runtime.invoke, "dataset_generation")
    (dataset_id,) = _register(1)

    # When the pump reads the stream
    pump.pump_once()

    # Then the dataset's sample is ready
    dataset = DatasetRecord.get(dataset_id)
    assert dataset.status == DatasetStatus.READY
    assert set(dataset.sample_keys) == {"csv", "parquet"}
