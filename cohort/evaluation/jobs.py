"""The evaluation job's contract: how an evaluation is created, queued, failed and reported.

Three parties share it: the orchestrator's API (a scientist's request), the FL node (the evaluation
a job asked for once it completes) and the evaluator worker that runs it. The queue message carries
ids only; the evaluation record holds the request and, later, the outcome.
"""

from __future__ import annotations

import logging
import re
import uuid

from pydantic import BaseModel, ConfigDict
from pynamodb.exceptions import PutError

from cohort import aws, storage
from cohort.catalogue import Bucket, Queue
from cohort.domain.architecture import parse_architecture
from cohort.domain.errors import InvalidInput
from cohort.domain.records import (
    EvaluationRecord,
    EvaluationStatus,
    JobStatus,
    ModelRecord,
    TrainingJobRecord,
    utcnow,
)
from cohort.evaluation import budgets, work
from cohort.evaluation.spec import BUILTIN_DATASET, EvaluationSpec
from cohort.notify.messages import MAX_REASON
from cohort.settings import get_settings

log = logging.getLogger(__name__)

# Work budget of one evaluation, in per-sample gradient passes: what keeps one
# request from holding a GPU for hours. 50 million is a quarter of an hour for a small
# CNN on one GPU, and admits the standard AutoAttack on 10,000 samples at one budget
# (42 million at most: the cascade usually does far less), or on 1,000 samples over
# the default grids (33 million); see docs/evaluation.md.
MAX_GRADIENT_PASSES = 50_000_000


class EvaluationMessage(BaseModel):
    """The evaluations queue's message: ids only, the record holds the rest."""

    model_config = ConfigDict(extra="forbid")
    evaluation_id: str


def report_key(evaluation_id: str, filename: str) -> str:
    return f"evaluations/{evaluation_id}/{filename}"


def evaluation_set_key(owner_id: str) -> str:
    """Where a scientist's next uploaded evaluation set goes: under their own prefix, never guessed."""
    return f"evaluation-sets/{owner_id}/{uuid.uuid4().hex}.safetensors"


def _is_evaluation_set_of(owner_id: str, key: str) -> bool:
    return (
        re.fullmatch(rf"evaluation-sets/{re.escape(owner_id)}/[0-9a-f]{{32}}\.safetensors", key) is not None
    )


# -- checks ---------------------------------------------------------------------------------------


def gradient_passes(spec: EvaluationSpec) -> int:
    """The most work an evaluation can ask for, in per-sample forward and backward passes.

    The engine attacks only correctly classified samples, so a run usually does less.
    """
    return work.gradient_passes(spec, spec.samples)


def check_spec(model: ModelRecord, spec: EvaluationSpec) -> None:
    """What the spec's own validation cannot see: the headline's budget for this model's inputs, the
    work, and whose the data is."""
    spec, _ = budgets.resolve(spec, parse_architecture(model.architecture).input_shape)
    owner_id = model.owner_id
    passes = gradient_passes(spec)
    if passes > MAX_GRADIENT_PASSES:
        raise InvalidInput(
            f"spec: the evaluation needs about {passes:,} gradient passes (samples x attacks x ε values x "
            f"steps x restarts); the limit is {MAX_GRADIENT_PASSES:,}: lower samples, steps or the ε grids"
        )
    if spec.dataset == BUILTIN_DATASET:
        return
    if not _is_evaluation_set_of(owner_id, spec.dataset) or not storage.exists(Bucket.MODELS, spec.dataset):
        raise InvalidInput(
            f"spec.dataset: {BUILTIN_DATASET!r} or the 'dataset' of an evaluation set you uploaded "
            "through POST /v1/evaluations/uploads"
        )


# -- creating, queueing and failing ---------------------------------------------------------------


def create(
    evaluation_id: str, model: ModelRecord, spec: EvaluationSpec, *, weights_key: str, job_id: str | None
) -> EvaluationRecord:
    """Record an evaluation and queue it; creating one that exists returns it and queues nothing."""
    check_spec(model, spec)
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
    create(evaluation_id, model, spec, weights_key=job.trained_weights_key, job_id=job.job_id)
    return evaluation_id


def _send(message: EvaluationMessage) -> None:
    sqs = aws.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.EVALUATIONS))["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=message.model_dump_json())


def fail(record: EvaluationRecord, reason: str) -> None:
    record.update(
        actions=[
            EvaluationRecord.status.set(EvaluationStatus.FAILED),
            EvaluationRecord.status_reason.set(reason[:MAX_REASON]),
            EvaluationRecord.updated_at.set(utcnow()),
        ]
    )
