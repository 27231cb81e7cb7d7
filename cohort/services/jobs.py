"""Federated training jobs: start one, watch its rounds, fetch the trained model."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from cohort import storage
from cohort.catalogue import Bucket, Group
from cohort.domain.errors import Conflict
from cohort.domain.identifiers import Identifier
from cohort.domain.records import (
    OPEN_JOB_STATUSES,
    JobStatus,
    NodeHealth,
    ParticipationRecord,
    ParticipationStatus,
    RoundRecord,
    RoundStatus,
    TrainingJobRecord,
    attempt_prefix,
    utcnow,
)
from cohort.domain.training import ClientConfig, ServerConfig
from cohort.evaluation import jobs as evaluation_jobs
from cohort.evaluation.spec import EvaluationSpec
from cohort.services import datasets, models, quotas
from cohort.services.ownership import owned_record
from cohort.settings import get_settings
from cohort.web.auth import Principal


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_id: Identifier
    dataset_id: Identifier
    client_config: ClientConfig = ClientConfig()
    server_config: ServerConfig = ServerConfig()
    evaluate_on_completion: EvaluationSpec | None = Field(
        None, description="Evaluate the trained model's robustness with this spec once the job completes"
    )


class RoundView(BaseModel):
    round: int
    status: str
    attempt: int
    devices: int | None = Field(
        description="Devices admitted to the round's attempt: live while the round is open; once it has "
        "closed, those of its last attempt (null for rounds closed before this was recorded)"
    )
    reports: int = Field(description="Reports counted: live while the round is open")
    samples: int
    loss: float | None
    accuracy: float | None
    opened_at: str
    closed_at: str | None
    failures: list[str]

    @classmethod
    def of(cls, record: RoundRecord) -> RoundView:
        return cls(
            round=int(record.round_number),
            status=record.status,
            attempt=int(record.attempt),
            devices=None if record.devices is None else int(record.devices),
            reports=int(record.reports),
            samples=int(record.samples),
            loss=record.loss,
            accuracy=record.accuracy,
            opened_at=record.opened_at.isoformat(),
            closed_at=record.closed_at.isoformat() if record.closed_at else None,
            failures=[f"attempt {int(f.attempt)}: {f.reason}" for f in record.failures],
        )


class NodeView(BaseModel):
    """The job's FL node, as the orchestrator's supervisor last found it."""

    health: NodeHealth = Field(
        description="waiting (to be launched), launching, booting, healthy, unreachable, down (its launch "
        "failed or it stopped; relaunched within the limit), released (the job ended)"
    )
    since: str | None = Field(description="When it entered this state")
    checked_at: str | None = Field(description="When the supervisor last checked it")
    launches: int = Field(description="How often the job's node was launched, relaunches included")
    max_launches: int = Field(description="After this many launches a node that stops fails the job")
    detail: str | None = Field(
        description="The last problem seen with it: why it is not healthy, or why it was last relaunched"
    )

    @classmethod
    def of(cls, record: TrainingJobRecord) -> NodeView | None:
        if record.node_health is None:
            return None  # a job started before nodes were supervised
        return cls(
            health=NodeHealth(record.node_health),
            since=record.node_health_since.isoformat() if record.node_health_since else None,
            checked_at=record.node_checked_at.isoformat() if record.node_checked_at else None,
            launches=int(record.node_launches or 0),
            max_launches=get_settings().max_node_launches,
            detail=record.node_detail,
        )


class JobView(BaseModel):
    job_id: str
    model_id: str
    dataset_id: str
    status: JobStatus
    status_reason: str | None
    current_round: int
    total_rounds: int
    client_config: ClientConfig
    server_config: ServerConfig
    evaluation_id: str | None = Field(
        description="The robustness evaluation the job asked for on completion, once it has completed"
    )
    node: NodeView | None = Field(description="The job's FL node and its health")
    created_at: str
    updated_at: str
    rounds: list[RoundView] = Field(default_factory=list)

    @classmethod
    def of(cls, record: TrainingJobRecord, rounds: list[RoundView] | None = None) -> JobView:
        server_config = ServerConfig.model_validate(record.server_config)
        evaluated = record.evaluation_spec is not None and record.status == JobStatus.COMPLETED
        return cls(
            job_id=record.job_id,
            model_id=record.model_id,
            dataset_id=record.dataset_id,
            status=JobStatus(record.status),
            status_reason=record.status_reason,
            current_round=int(record.current_round),
            total_rounds=server_config.rounds,
            client_config=ClientConfig.model_validate(record.client_config),
            server_config=server_config,
            evaluation_id=evaluation_jobs.auto_evaluation_id(record.job_id) if evaluated else None,
            node=NodeView.of(record),
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            rounds=rounds or [],
        )


class DatasetJobView(BaseModel):
    """What the app developer sees of a job on their app's devices: its progress, not the
    scientist's model or configuration."""

    job_id: str
    status: JobStatus
    status_reason: str | None
    current_round: int
    total_rounds: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, record: TrainingJobRecord) -> DatasetJobView:
        return cls(
            job_id=record.job_id,
            status=JobStatus(record.status),
            status_reason=record.status_reason,
            current_round=int(record.current_round),
            total_rounds=ServerConfig.model_validate(record.server_config).rounds,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
        )


# All the dataset's jobs view reads of a job: the scientist's model and client config stay unread.
_DATASET_JOB_ATTRIBUTES = [
    "job_id",
    "status",
    "status_reason",
    "current_round",
    "server_config",
    "created_at",
    "updated_at",
]


class OpenJob(BaseModel):
    """What a device sees of a job it may join."""

    job_id: str
    node_url: str
    current_round: int


def start(owner: Principal, request: TrainingRequest) -> JobView:
    """Create the job, ``starting``; the supervisor launches its node (cohort/services/supervisor.py)."""
    owner.require(Group.SCIENTISTS)
    quotas.check_training(owner)
    model = models.usable(owner, request.model_id)
    datasets.get(request.dataset_id)
    evaluation = request.evaluate_on_completion
    if evaluation is not None:
        evaluation_jobs.check_spec(model, evaluation)  # refused now, not when training ends
    job = TrainingJobRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        model_id=model.model_id,
        dataset_id=request.dataset_id,
        client_config=request.client_config.model_dump(mode="json"),
        server_config=request.server_config.model_dump(mode="json"),
        global_weights_key=model.weights_key,
        evaluation_spec=evaluation.model_dump(mode="json") if evaluation else None,
        status=JobStatus.STARTING,
        # On the live-node index from the start: that is where the supervisor finds jobs to launch.
        live_node=get_settings().launcher,
        node_health=NodeHealth.WAITING,
        node_health_since=utcnow(),
    )
    job.save()
    return JobView.of(job)


def owned(owner: Principal, job_id: str) -> TrainingJobRecord:
    return owned_record(TrainingJobRecord, job_id, owner, "training job")


def status(owner: Principal, job_id: str) -> JobView:
    record = owned(owner, job_id)
    rounds = []
    for round_record in RoundRecord.query(job_id, consistent_read=True):
        view = RoundView.of(round_record)
        if round_record.status == RoundStatus.OPEN:
            # The node writes a round's counts only when it closes; the open one is read live.
            view.devices, view.reports = _live_progress(
                job_id, int(round_record.round_number), int(round_record.attempt)
            )
        rounds.append(view)
    return JobView.of(record, rounds)


def _live_progress(job_id: str, round_number: int, attempt: int) -> tuple[int, int]:
    """Devices admitted to the attempt and reports taken so far: one query over the attempt's slots."""
    admitted = reported = 0
    for slot in ParticipationRecord.query(
        job_id,
        ParticipationRecord.slot.startswith(attempt_prefix(round_number, attempt)),
        consistent_read=True,
        attributes_to_get=["status"],
    ):
        admitted += 1
        reported += slot.status == ParticipationStatus.REPORTED
    return admitted, reported


def list_owned(owner: Principal) -> list[JobView]:
    return [JobView.of(r) for r in TrainingJobRecord.by_owner.query(owner.user_id, scan_index_forward=False)]


def for_dataset(owner: Principal, dataset_id: str) -> list[DatasetJobView]:
    """The jobs that train on the app's devices, newest first, for the app developer who registered it."""
    datasets.owned(owner, dataset_id)
    records = TrainingJobRecord.by_dataset_status.query(dataset_id, attributes_to_get=_DATASET_JOB_ATTRIBUTES)
    # The index sorts by status; a dataset has few jobs, so they are ordered by age here.
    return [DatasetJobView.of(r) for r in sorted(records, key=lambda record: record.created_at, reverse=True)]


def download_trained(owner: Principal, job_id: str) -> storage.Download:
    record = owned(owner, job_id)
    if record.status != JobStatus.COMPLETED or not record.trained_weights_key:
        raise Conflict(f"the job is {record.status}; the trained model is there once it completes")
    return storage.download(Bucket.MODELS, record.trained_weights_key, filename=f"{job_id}.safetensors")


def open_for_dataset(dataset_id: str) -> list[OpenJob]:
    """Open jobs whose node has had a URL. While a node is relaunched its job stays listed with the
    last URL, which devices look up again when it does not answer; an ended job is not listed."""
    jobs = []
    for status_ in OPEN_JOB_STATUSES:
        for record in TrainingJobRecord.by_dataset_status.query(
            dataset_id, TrainingJobRecord.status == status_
        ):
            if record.node_url:
                jobs.append(
                    OpenJob(
                        job_id=record.job_id, node_url=record.node_url, current_round=record.current_round
                    )
                )
    return jobs
