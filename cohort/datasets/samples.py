"""A registered dataset's sample: checked, generated, uploaded to S3, recorded on the dataset.

The dataset function calls :func:`generate` once per new dataset. Every outcome
a person can act on is recorded on the dataset (``ready``, or ``failed`` with the
reason); anything else raises, so the caller can retry it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError
from pynamodb.exceptions import UpdateError

from cohort import storage
from cohort.catalogue import Bucket
from cohort.datasets.schema import SAMPLE_FORMATS, DatasetSchema, SampleFormat, describe_schema_error
from cohort.domain.records import DatasetRecord, DatasetStatus

log = logging.getLogger(__name__)

CONTENT_TYPES: dict[SampleFormat, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


class Outcome(StrEnum):
    READY = "ready"
    FAILED = "failed"  # a bad schema: recorded on the dataset, nothing written to S3
    SKIPPED = "skipped"  # gone, or already done by an earlier delivery of the same record


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    rows: int = 0
    bytes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str | None = None


def sample_key(dataset_id: str, fmt: SampleFormat) -> str:
    return f"datasets/{dataset_id}/sample.{fmt}"


def generate(dataset_id: str) -> Result:
    """Generate the sample of a registered dataset; a dataset already done is skipped."""
    try:
        record = DatasetRecord.get(dataset_id, consistent_read=True)
    except DatasetRecord.DoesNotExist:
        log.warning("dataset %s no longer exists; nothing to generate", dataset_id)
        return Result(Outcome.SKIPPED)
    if record.status != DatasetStatus.REGISTERED:
        return Result(Outcome.SKIPPED)

    document = {"attributes": record.attributes, "rows": record.rows, "seed": record.seed}
    try:
        schema = DatasetSchema.model_validate({k: v for k, v in document.items() if v is not None})
    except ValidationError as exc:
        reason = describe_schema_error(exc, document)
        _finish(
            record, [DatasetRecord.status.set(DatasetStatus.FAILED), DatasetRecord.status_reason.set(reason)]
        )
        return Result(Outcome.FAILED, reason=reason)

    # numpy and pyarrow load with the first sample, not with the function: they would
    # more than double its cold start, and a record that needs no sample needs neither.
    from cohort.datasets.generation import write_sample

    seed = schema.seed if schema.seed is not None else legacy_seed(dataset_id)
    started = time.perf_counter()
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="cohort-sample-") as workdir:
        for fmt in SAMPLE_FORMATS:
            # One format at a time, so the temporary space holds one file at most.
            path = Path(workdir) / f"sample.{fmt}"
            sizes[fmt] = write_sample(schema, seed, path, fmt)
            storage.upload_file(Bucket.SAMPLES, sample_key(dataset_id, fmt), path, CONTENT_TYPES[fmt])
            path.unlink()
    _finish(
        record,
        [
            DatasetRecord.status.set(DatasetStatus.READY),
            DatasetRecord.rows.set(schema.rows),
            DatasetRecord.seed.set(seed),
            DatasetRecord.sample_keys.set({fmt: sample_key(dataset_id, fmt) for fmt in SAMPLE_FORMATS}),
        ],
    )
    return Result(Outcome.READY, rows=schema.rows, bytes=sizes, seconds=time.perf_counter() - started)


def legacy_seed(dataset_id: str) -> int:
    """The seed of a dataset registered without one: fixed by its id, so a retry draws the same rows."""
    return int.from_bytes(hashlib.sha256(dataset_id.encode()).digest()[:4], "big")


def _finish(record: DatasetRecord, actions: list) -> None:
    # Only a registered dataset moves on: a concurrent delivery that finished first wins.
    try:
        record.update(actions=actions, condition=DatasetRecord.status == DatasetStatus.REGISTERED)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        log.info("dataset %s was finished by another delivery", record.dataset_id)
