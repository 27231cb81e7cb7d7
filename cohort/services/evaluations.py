"""Robustness evaluations: submit one, watch it, fetch its report.

The API only records the request and queues the evaluation's id; the
evaluator worker (``cohort.evaluation.worker``) does the work and writes the
outcome back to the same record.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pynamodb.exceptions import PutError

from cohort import aws
from cohort.catalogue import Bucket, Group, Queue
from cohort.domain.errors import Conflict, InvalidInput
from cohort.domain.records import (
    EvaluationRecord,
    EvaluationStatus,
    JobStatus,
    ModelRecord,
    ModelStatus,
    TrainingJobRecord,
    utcnow,
)
from cohort.evaluation.engine import SEARCH_ITERATIONS
from cohort.evaluation.spec import ATTACK_NORMS, BUILTIN_DATASET, EvaluationSpec
from cohort.services import models, storage
from cohort.services.auth import Principal
from cohort.services.ownership import owned_record
from cohort.settings import get_settings

log = logging.getLogger(__name__)

# Work budget of one evaluation, in per-sample gradient passes: what keeps one
# request from holding a GPU for hours. 20 million is a few minutes for a small
# CNN on one GPU (see docs/evaluation.md).
MAX_GRADIENT_PASSES = 20_000_000
_REPORT_FORMATS = {"html": "report.html", "json": "report.json"}


def _evaluation_set_pattern(owner_id: str) -> re.Pattern[str]:
    return re.compile(rf"evaluation-sets/{re.escape(owner_id)}/[0-9a-f]{{32}}\.safetensors")


class EvaluationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: str = Field(min_length=1, max_length=64)
    job_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
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


class EvaluationMessage(BaseModel):
    """The evaluations queue's message: ids only, the record holds the rest."""

    model_config = ConfigDict(extra="forbid")
    evaluation_id: str


# -- checks ---------------------------------------------------------------------------------------


def gradient_passes(spec: EvaluationSpec) -> int:
    """The most work an evaluation can ask for, in per-sample forward and backward passes.

    The engine attacks only correctly classified samples, so a run usually does less.
    """
    restarts = spec.restarts if spec.random_start else 1
    per_sample = sum(
        sum(1 for eps in spec.epsilons(ATTACK_NORMS[attack]) if eps > 0)
        * (1 if attack == "fgsm" else spec.steps * restarts)
        for attack in spec.attacks
    )
    if spec.minimal_perturbation and spec.uses("linf"):
        per_sample += SEARCH_ITERATIONS * spec.steps
    return spec.samples * per_sample


def check_spec(owner_id: str, spec: EvaluationSpec) -> None:
    """What the spec's own validation cannot see: the work budget and whose the data is."""
    passes = gradient_passes(spec)
    if passes > MAX_GRADIENT_PASSES:
        raise InvalidInput(
            f"spec: the evaluation needs about {passes:,} gradient passes (samples x attacks x ε values x "
            f"steps x restarts); the limit is {MAX_GRADIENT_PASSES:,}: lower samples, steps or the ε grids"
        )
    if spec.dataset == BUILTIN_DATASET:
        return
    if not _evaluation_set_pattern(owner_id).fullmatch(spec.dataset) or not storage.exists(
        Bucket.MODELS, spec.dataset
    ):
        raise InvalidInput(
            f"spec.dataset: {BUILTIN_DATASET!r} or the 'dataset' of an evaluation set you uploaded "
            "through POST /v1/evaluations/uploads"
        )


# -- use cases ------------------------------------------------------------------------------------


def submit(caller: Principal, request: EvaluationRequest) -> EvaluationView:
    """Queue the evaluation of a model the caller owns: its uploaded weights, or a job's trained ones."""
    caller.require(Group.SCIENTISTS)
    model = models.owned(caller, request.model_id)
    if model.status != ModelStatus.READY:
        raise Conflict("the model's weights have not been committed; upload them and call commit first")
    weights_key = model.weights_key
    if request.job_id is not None:
        job = owned_record(TrainingJobRecord, request.job_id, caller, "training job")
        if job.model_id != model.model_id:
            raise InvalidInput(f"job_id: training job {job.job_id} trained another model")
        if job.status != JobStatus.COMPLETED or not job.trained_weights_key:
            raise Conflict(f"the job is {job.status}; its trained model can be evaluated once it completes")
        weights_key = job.trained_weights_key
    return EvaluationView.of(
        _create(uuid.uuid4().hex, model, request.spec, weights_key=weights_key, job_id=request.job_id)
    )


def auto_evaluation_id(job_id: str) -> str:
    """The id of a job's evaluation on completion: derived, so a restarted node creates it only once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cohort:trained-model:{job_id}").hex


def evaluate_trained(job: TrainingJobRecord) -> str | None:
    """Queue the evaluation a completed job asked for; its id, or None if it asked for none."""
    if job.evaluation_spec is None or job.status != JobStatus.COMPLETED or not job.trained_weights_key:
        return None
    evaluation_id = auto_evaluation_id(job.job_id)
    model = ModelRecord.get(job.model_id)
    spec = EvaluationSpec.model_validate(job.evaluation_spec)
    _create(evaluation_id, model, spec, weights_key=job.trained_weights_key, job_id=job.job_id)
    return evaluation_id


def _create(
    evaluation_id: str, model: ModelRecord, spec: EvaluationSpec, *, weights_key: str, job_id: str | None
) -> EvaluationRecord:
    check_spec(model.owner_id, spec)
    record = EvaluationRecord(
        evaluation_id,
        owner_id=model.owner_id,
        model_id=model.model_id,
        job_id=job_id,
        weights_key=weights_key,
        status=EvaluationStatus.QUEUED,
        request=spec.model_dump(mode="json"),
    )
    try:
        record.save(condition=EvaluationRecord.evaluation_id.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return EvaluationRecord.get(evaluation_id, consistent_read=True)  # created and queued before
    try:
        _send(EvaluationMessage(evaluation_id=evaluation_id))
    except Exception as exc:
        log.exception("queueing evaluation %s failed", evaluation_id)
        fail(record, f"the evaluation could not be queued: {exc}")
        raise
    return record


def _send(message: EvaluationMessage) -> None:
    sqs = aws.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.EVALUATIONS))["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=message.model_dump_json())


def fail(record: EvaluationRecord, reason: str) -> None:
    record.update(
        actions=[
            EvaluationRecord.status.set(EvaluationStatus.FAILED),
            EvaluationRecord.status_reason.set(reason[:2000]),
            EvaluationRecord.updated_at.set(utcnow()),
        ]
    )


def owned(caller: Principal, evaluation_id: str) -> EvaluationRecord:
    return owned_record(EvaluationRecord, evaluation_id, caller, "evaluation")


def status(caller: Principal, evaluation_id: str) -> EvaluationView:
    return EvaluationView.of(owned(caller, evaluation_id))


def list_owned(caller: Principal) -> list[EvaluationView]:
    records = EvaluationRecord.by_owner.query(caller.user_id, scan_index_forward=False)
    return [EvaluationView.of(record) for record in records]


def report_key(evaluation_id: str, filename: str) -> str:
    return f"evaluations/{evaluation_id}/{filename}"


def report(caller: Principal, evaluation_id: str, fmt: Literal["html", "json"]) -> storage.Download:
    record = owned(caller, evaluation_id)
    if record.status != EvaluationStatus.COMPLETED:
        raise Conflict(f"the evaluation is {record.status}; its report is there once it completes")
    filename = _REPORT_FORMATS[fmt]
    return storage.download(
        Bucket.REPORTS, report_key(evaluation_id, filename), filename=f"evaluation-{evaluation_id}-{filename}"
    )


def create_upload(caller: Principal, request: UploadRequest) -> EvaluationSetUpload:
    """A presigned PUT for an evaluation set under the caller's own prefix, bound to its declared size."""
    caller.require(Group.SCIENTISTS)
    max_bytes = get_settings().max_evaluation_set_bytes
    if request.size_bytes > max_bytes:
        raise InvalidInput(f"size_bytes: an evaluation set is at most {max_bytes:,} bytes")
    key = f"evaluation-sets/{caller.user_id}/{uuid.uuid4().hex}.safetensors"
    return EvaluationSetUpload(
        dataset=key,
        upload_url=storage.presigned_put(Bucket.MODELS, key, content_length=request.size_bytes),
        expires_in=get_settings().presigned_url_ttl_seconds,
        max_bytes=max_bytes,
    )
