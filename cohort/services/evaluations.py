"""Robustness evaluations: submit one, watch it, fetch its report.

The API checks ownership and hands the request to the evaluation job's contract
(``cohort.evaluation.jobs``), which records it and queues its id; the evaluator
worker (``cohort.evaluation.worker``) does the work and writes the outcome back
to the same record.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cohort import storage
from cohort.catalogue import Bucket, Group
from cohort.domain.errors import Conflict, InvalidInput
from cohort.domain.identifiers import Identifier
from cohort.domain.records import (
    EvaluationRecord,
    EvaluationStatus,
    JobStatus,
    TrainingJobRecord,
)
from cohort.evaluation import jobs
from cohort.evaluation.spec import EvaluationSpec
from cohort.services import models, quotas
from cohort.services.ownership import owned_record
from cohort.settings import get_settings
from cohort.web.auth import Principal

# The report's files a client may download: the page, the data behind it, and the outcome per sample.
ReportFormat = Literal["html", "json", "csv"]
_REPORT_FORMATS: dict[ReportFormat, str] = {
    "html": "report.html",
    "json": "report.json",
    "csv": "samples.csv",
}


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: Identifier
    job_id: Identifier | None = Field(
        None,
        description="Evaluate this completed training job's trained model instead of the uploaded weights",
    )
    spec: EvaluationSpec = EvaluationSpec()


class EvaluationView(BaseModel):
    evaluation_id: str
    model_id: str
    job_id: str | None
    status: EvaluationStatus
    status_reason: str | None
    progress: float = Field(description="Fraction of the attack work done, 0 to 1")
    spec: EvaluationSpec
    summary: dict[str, float] | None = Field(description="Headline numbers, once completed")
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, record: EvaluationRecord) -> EvaluationView:
        return cls(
            evaluation_id=record.evaluation_id,
            model_id=record.model_id,
            job_id=record.job_id,
            status=EvaluationStatus(record.status),
            status_reason=record.status_reason,
            progress=float(record.progress),
            spec=EvaluationSpec.model_validate(record.request),
            summary=record.summary,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
        )


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size_bytes: Annotated[int, Field(ge=1, description="The file's exact size; the upload must match it")]


class EvaluationSetUpload(BaseModel):
    dataset: str = Field(description="Pass this as spec.dataset once the file is uploaded")
    upload_url: str = Field(description="Presigned PUT for a safetensors file of 'inputs' and 'labels'")
    expires_in: int
    max_bytes: int


# -- use cases ------------------------------------------------------------------------------------


def submit(caller: Principal, request: EvaluationRequest) -> EvaluationView:
    """Queue the evaluation of a model the caller owns: its uploaded weights, or a job's trained ones."""
    caller.require(Group.SCIENTISTS)
    quotas.check_evaluation(caller)
    model = models.usable(caller, request.model_id)
    weights_key = model.weights_key
    if request.job_id is not None:
        job = owned_record(TrainingJobRecord, request.job_id, caller, "training job")
        if job.model_id != model.model_id:
            raise InvalidInput(f"job_id: training job {job.job_id} trained another model")
        if job.status != JobStatus.COMPLETED or not job.trained_weights_key:
            raise Conflict(f"the job is {job.status}; its trained model can be evaluated once it completes")
        weights_key = job.trained_weights_key
    return EvaluationView.of(
        jobs.create(uuid.uuid4().hex, model, request.spec, weights_key=weights_key, job_id=request.job_id)
    )


def owned(caller: Principal, evaluation_id: str) -> EvaluationRecord:
    return owned_record(EvaluationRecord, evaluation_id, caller, "evaluation")


def status(caller: Principal, evaluation_id: str) -> EvaluationView:
    return EvaluationView.of(owned(caller, evaluation_id))


def list_owned(caller: Principal) -> list[EvaluationView]:
    records = EvaluationRecord.by_owner.query(caller.user_id, scan_index_forward=False)
    return [EvaluationView.of(record) for record in records]


def report(caller: Principal, evaluation_id: str, fmt: ReportFormat) -> storage.Download:
    record = owned(caller, evaluation_id)
    if record.status != EvaluationStatus.COMPLETED:
        raise Conflict(f"the evaluation is {record.status}; its report is there once it completes")
    filename = _REPORT_FORMATS[fmt]
    return storage.download(
        Bucket.REPORTS,
        jobs.report_key(evaluation_id, filename),
        filename=f"evaluation-{evaluation_id}-{filename}",
    )


def create_upload(caller: Principal, request: UploadRequest) -> EvaluationSetUpload:
    """A presigned PUT for an evaluation set under the caller's own prefix, bound to its declared size."""
    caller.require(Group.SCIENTISTS)
    max_bytes = get_settings().max_evaluation_set_bytes
    if request.size_bytes > max_bytes:
        raise InvalidInput(f"size_bytes: an evaluation set is at most {max_bytes:,} bytes")
    key = jobs.evaluation_set_key(caller.user_id)
    return EvaluationSetUpload(
        dataset=key,
        upload_url=storage.presigned_put(Bucket.MODELS, key, content_length=request.size_bytes),
        expires_in=get_settings().presigned_url_ttl_seconds,
        max_bytes=max_bytes,
    )
