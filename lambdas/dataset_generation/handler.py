"""The dataset function: new datasets from the datasets table's DynamoDB stream get their sample.

Each INSERT record is handled on its own (``cohort.datasets.samples``): the
schema is checked, the sample is written to the samples bucket as CSV and
Parquet, and the dataset becomes ``ready``. A bad schema is an outcome, not an
error: the dataset becomes ``failed`` with the reason, and nothing is written.
Anything else (S3 or DynamoDB unavailable) fails only that record, which the
event source retries; a record delivered again finds its dataset done and is
skipped.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from cohort.datasets import samples
from cohort.domain.records import bind_tables
from cohort.settings import get_settings

logger = Logger()
metrics = Metrics()


# The part of a stream record this function reads, typed. Powertools' own models
# would do, but importing them (every event source's) takes a third of the
# 300 ms the function may spend on its imports.
class StringValue(BaseModel):
    S: str


class DatasetKeys(BaseModel):
    dataset_id: StringValue


class DatasetChange(BaseModel):
    Keys: DatasetKeys
    SequenceNumber: str  # what a failure is reported by


class DatasetStreamRecord(BaseModel):
    event_name: Literal["INSERT", "MODIFY", "REMOVE"] = Field(alias="eventName")
    event_source: Literal["aws:dynamodb"] = Field(alias="eventSource")
    dynamodb: DatasetChange


processor = BatchProcessor(event_type=EventType.DynamoDBStreams, model=DatasetStreamRecord)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bind_tables(get_settings())
    return process_partial_response(
        event=event, record_handler=_on_record, processor=processor, context=context
    )


def _on_record(record: DatasetStreamRecord) -> None:
    dataset_id = record.dynamodb.Keys.dataset_id.S
    if record.event_name != "INSERT":  # the event source filters these out; a stray one changes nothing
        logger.info(
            "not a new dataset: ignored", extra={"dataset_id": dataset_id, "event": record.event_name}
        )
        return
    try:
        result = samples.generate(dataset_id)
    except Exception:
        logger.exception(
            "sample generation failed: the record is reported for a retry", extra={"dataset_id": dataset_id}
        )
        metrics.add_metric(name="SampleErrors", unit=MetricUnit.Count, value=1)
        raise
    about = {"dataset_id": dataset_id, "outcome": result.outcome}
    if result.outcome == samples.Outcome.READY:
        logger.info(
            "sample written",
            extra={**about, "rows": result.rows, "bytes": result.bytes, "seconds": round(result.seconds, 3)},
        )
        metrics.add_metric(name="SamplesGenerated", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="SampleRows", unit=MetricUnit.Count, value=result.rows)
        metrics.add_metric(name="SampleSeconds", unit=MetricUnit.Seconds, value=result.seconds)
    elif result.outcome == samples.Outcome.FAILED:
        logger.warning("schema refused: dataset marked failed", extra={**about, "reason": result.reason})
        metrics.add_metric(name="SchemasRefused", unit=MetricUnit.Count, value=1)
    else:
        logger.info("already done, or gone: skipped", extra=about)
