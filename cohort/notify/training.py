"""The owner's notice that a training job has ended, built from the job's records.

The FL node sends it when it finishes the job; the orchestrator's supervisor when the job fails
because its node could not be kept running.
"""

from __future__ import annotations

from cohort.domain.records import ModelRecord, RoundRecord, RoundStatus, TrainingJobRecord, UserRecord
from cohort.domain.training import ServerConfig
from cohort.notify.messages import MAX_REASON, TrainingFinished
from cohort.notify.queue import enqueue


def training_finished(job: TrainingJobRecord) -> TrainingFinished:
    completed = [
        r for r in RoundRecord.query(job.job_id, consistent_read=True) if r.status == RoundStatus.COMPLETED
    ]
    last = completed[-1] if completed else None
    return TrainingFinished(
        notification_id=f"training-finished-{job.job_id}",  # one notice per job, however often sent
        to=UserRecord.get(job.owner_id).email,
        job_id=job.job_id,
        model_name=ModelRecord.get(job.model_id).name,
        status=job.status,
        reason=(job.status_reason or "")[:MAX_REASON],
        rounds_completed=len(completed),
        total_rounds=ServerConfig.model_validate(job.server_config).rounds,
        final_loss=last.loss if last else None,
        final_accuracy=last.accuracy if last else None,
    )


def notify_training_finished(job: TrainingJobRecord) -> str:
    """Queue the notice; returns the queued message's id."""
    return enqueue(training_finished(job))
