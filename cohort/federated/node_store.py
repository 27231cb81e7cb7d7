"""Everything the FL node keeps outside its memory: DynamoDB records and S3 blobs.

Accepted updates are written to S3 before they count, so a node that restarts
can fold them again and lose nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PutError, UpdateError

from cohort import storage
from cohort.catalogue import Bucket
from cohort.domain.records import (
    JobStatus,
    ModelRecord,
    ParticipationRecord,
    ParticipationStatus,
    RoundAttemptFailure,
    RoundRecord,
    RoundStatus,
    TrainingJobRecord,
    UserRecord,
    attempt_prefix,
    participation_slot,
    utcnow,
)
from cohort.domain.training import ServerConfig
from cohort.domain.weights import Tensors, TensorSignature, decode, encode
from cohort.evaluation import jobs as evaluation_jobs
from cohort.notify.messages import MAX_REASON, TrainingFinished
from cohort.notify.queue import enqueue

# Participation records outlive their job by this long, then DynamoDB's TTL removes them.
PARTICIPATION_RETENTION = timedelta(days=30)


def _at(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def checkpoint_key(job_id: str, round_number: int) -> str:
    return f"jobs/{job_id}/checkpoints/round-{round_number:06d}.safetensors"


def update_key(job_id: str, round_number: int, attempt: int, request_key: str) -> str:
    return f"jobs/{job_id}/rounds/{round_number:06d}/attempt-{attempt:03d}/{request_key}.safetensors"


class NodeStore:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    # -- job and model ------------------------------------------------------------
    def job(self) -> TrainingJobRecord:
        return TrainingJobRecord.get(self.job_id, consistent_read=True)

    def model(self, model_id: str) -> ModelRecord:
        return ModelRecord.get(model_id)

    def mark_running(self, job: TrainingJobRecord) -> None:
        job.update(actions=[TrainingJobRecord.status.set(JobStatus.RUNNING), _touch()])

    def advance(self, job: TrainingJobRecord, round_number: int, weights_key: str) -> None:
        job.update(
            actions=[
                TrainingJobRecord.current_round.set(round_number),
                TrainingJobRecord.round_attempt.set(1),
                TrainingJobRecord.global_weights_key.set(weights_key),
                _touch(),
            ]
        )

    def retry(self, job: TrainingJobRecord, attempt: int) -> None:
        job.update(actions=[TrainingJobRecord.round_attempt.set(attempt), _touch()])

    def finish(self, job: TrainingJobRecord, status: JobStatus, reason: str, trained_key: str | None) -> None:
        actions = [
            TrainingJobRecord.status.set(status),
            TrainingJobRecord.status_reason.set(reason),
            _touch(),
        ]
        if trained_key:
            actions.append(TrainingJobRecord.trained_weights_key.set(trained_key))
        job.update(actions=actions)

    def notify_owner(self, job: TrainingJobRecord) -> None:
        """Queue the training-finished email to the job's owner; its id makes a repeat harmless."""
        completed = [r for r in self.rounds() if r.status == RoundStatus.COMPLETED]
        last = completed[-1] if completed else None
        enqueue(
            TrainingFinished(
                notification_id=f"training-finished-{job.job_id}",
                to=UserRecord.get(job.owner_id).email,
                job_id=job.job_id,
                model_name=self.model(job.model_id).name,
                status=job.status,
                reason=(job.status_reason or "")[:MAX_REASON],
                rounds_completed=len(completed),
                total_rounds=ServerConfig.model_validate(job.server_config).rounds,
                final_loss=last.loss if last else None,
                final_accuracy=last.accuracy if last else None,
            )
        )

    def request_evaluation(self, job: TrainingJobRecord) -> str | None:
        """Queue the robustness evaluation a completed job asked for; its id, or None."""
        return evaluation_jobs.evaluate_trained(job)

    # -- weights --------------------------------------------------------------------
    def read_weights(self, key: str, signature: TensorSignature) -> Tensors:
        data = storage.get_bytes(Bucket.MODELS, key, max_bytes=signature.nbytes * 2 + 1_000_000)
        return decode(data, signature, what=f"weights at {key}")

    def write_checkpoint(self, round_number: int, weights: Tensors) -> str:
        key = checkpoint_key(self.job_id, round_number)
        storage.put_bytes(Bucket.MODELS, key, encode(weights))
        return key

    def model_url(self, key: str) -> str:
        return storage.presigned_get(Bucket.MODELS, key)

    # -- rounds -----------------------------------------------------------------------
    def rounds(self) -> list[RoundRecord]:
        return list(RoundRecord.query(self.job_id, consistent_read=True))

    def round(self, round_number: int) -> RoundRecord | None:
        try:
            return RoundRecord.get(self.job_id, round_number, consistent_read=True)
        except RoundRecord.DoesNotExist:
            return None

    def open_round(self, round_number: int, attempt: int, opened_at: float, deadline: float) -> RoundRecord:
        record = self.round(round_number) or RoundRecord(self.job_id, round_number, deadline=_at(deadline))
        record.attempt = attempt
        record.status = RoundStatus.OPEN
        record.opened_at = _at(opened_at)
        record.deadline = _at(deadline)
        record.save()
        return record

    def complete_round(
        self,
        record: RoundRecord,
        *,
        devices: int,
        reports: int,
        samples: int,
        loss: float,
        accuracy: float,
        checkpoint: str,
    ) -> None:
        record.update(
            actions=[
                RoundRecord.status.set(RoundStatus.COMPLETED),
                RoundRecord.closed_at.set(utcnow()),
                RoundRecord.devices.set(devices),
                RoundRecord.reports.set(reports),
                RoundRecord.samples.set(samples),
                RoundRecord.loss.set(loss),
                RoundRecord.accuracy.set(accuracy),
                RoundRecord.checkpoint_key.set(checkpoint),
            ]
        )

    def fail_attempt(self, record: RoundRecord, reason: str, *, devices: int, final: bool) -> None:
        """Record a failed attempt; ``devices`` (admitted to it) is kept when it was the last one."""
        failure = RoundAttemptFailure(attempt=record.attempt, reason=reason, failed_at=utcnow())
        actions = [RoundRecord.failures.set(RoundRecord.failures.append([failure]))]
        if final:
            actions += [
                RoundRecord.status.set(RoundStatus.FAILED),
                RoundRecord.closed_at.set(utcnow()),
                RoundRecord.devices.set(devices),
            ]
        record.update(actions=actions)

    # -- participations ---------------------------------------------------------------
    def assign(self, round_number: int, attempt: int, device_id: str, request_key: str) -> None:
        record = ParticipationRecord(
            self.job_id,
            participation_slot(round_number, attempt, request_key),
            request_key=request_key,
            device_id=device_id,
            round_number=round_number,
            attempt=attempt,
            expires_at=PARTICIPATION_RETENTION,
        )
        try:
            record.save(condition=ParticipationRecord.slot.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def store_update(self, round_number: int, attempt: int, request_key: str, data: bytes) -> str:
        key = update_key(self.job_id, round_number, attempt, request_key)
        storage.put_bytes(Bucket.UPDATES, key, data)
        return key

    def read_update(self, key: str, signature: TensorSignature) -> Tensors:
        data = storage.get_bytes(Bucket.UPDATES, key, max_bytes=signature.nbytes * 2 + 1_000_000)
        return decode(data, signature, what=f"update at {key}")

    def mark_reported(
        self,
        round_number: int,
        attempt: int,
        request_key: str,
        *,
        num_samples: int,
        loss: float,
        accuracy: float,
        key: str,
    ) -> bool:
        """Record a report once; False if it had been recorded already."""
        record = ParticipationRecord(self.job_id, participation_slot(round_number, attempt, request_key))
        try:
            record.update(
                actions=[
                    ParticipationRecord.status.set(ParticipationStatus.REPORTED),
                    ParticipationRecord.reported_at.set(utcnow()),
                    ParticipationRecord.num_samples.set(num_samples),
                    ParticipationRecord.loss.set(loss),
                    ParticipationRecord.accuracy.set(accuracy),
                    ParticipationRecord.update_key.set(key),
                ],
                condition=ParticipationRecord.status == ParticipationStatus.ASSIGNED,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def participations(self, round_number: int, attempt: int) -> Iterator[ParticipationRecord]:
        return ParticipationRecord.query(
            self.job_id,
            ParticipationRecord.slot.startswith(attempt_prefix(round_number, attempt)),
            consistent_read=True,
        )


def _touch():
    return TrainingJobRecord.updated_at.set(utcnow())
