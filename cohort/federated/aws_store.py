"""The node's store on AWS: DynamoDB records and S3 blobs (see :mod:`cohort.federated.node_store`).

Accepted updates are written to S3 before they count, so a node that restarts
can fold them again and lose nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action

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
    attempt_prefix,
    participation_slot,
)
from cohort.domain.weights import Tensors, TensorSignature, decode, encode
from cohort.evaluation import jobs as evaluation_jobs
from cohort.federated.node_store import (
    at_time,
    carried_report,
    checkpoint_key,
    round_updates_prefix,
    update_key,
)
from cohort.notify.training import notify_training_finished

# Participation records outlive their job by this long, then DynamoDB's TTL removes them.
PARTICIPATION_RETENTION = timedelta(days=30)


class AwsNodeStore:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    # -- job and model ------------------------------------------------------------
    def job(self) -> TrainingJobRecord:
        return TrainingJobRecord.get(self.job_id, consistent_read=True)

    def model(self, model_id: str) -> ModelRecord:
        return ModelRecord.get(model_id)

    def mark_running(self, at: float) -> TrainingJobRecord:
        return self._update_job([TrainingJobRecord.status.set(JobStatus.RUNNING)], at)

    def advance(self, round_number: int, weights_key: str, at: float) -> TrainingJobRecord:
        return self._update_job(
            [
                TrainingJobRecord.current_round.set(round_number),
                TrainingJobRecord.round_attempt.set(1),
                TrainingJobRecord.global_weights_key.set(weights_key),
            ],
            at,
        )

    def retry(self, attempt: int, at: float) -> TrainingJobRecord:
        return self._update_job([TrainingJobRecord.round_attempt.set(attempt)], at)

    def finish(self, status: JobStatus, reason: str, trained_key: str | None, at: float) -> TrainingJobRecord:
        actions = [TrainingJobRecord.status.set(status), TrainingJobRecord.status_reason.set(reason)]
        if trained_key:
            actions.append(TrainingJobRecord.trained_weights_key.set(trained_key))
        return self._update_job(actions, at)

    def _update_job(self, actions: list[Action], at: float) -> TrainingJobRecord:
        job = TrainingJobRecord(self.job_id)
        job.update(actions=[*actions, TrainingJobRecord.updated_at.set(at_time(at))])
        return job  # update() reads every attribute back from DynamoDB's answer

    def notify_owner(self, job: TrainingJobRecord) -> None:
        notify_training_finished(job)

    def request_evaluation(self, job: TrainingJobRecord) -> str | None:
        return evaluation_jobs.evaluate_trained(job)

    # -- weights --------------------------------------------------------------------
    def read_weights(self, key: str, signature: TensorSignature) -> Tensors:
        limit = signature.nbytes * 2 + 1_000_000
        data = storage.get_bytes(Bucket.MODELS, key, max_bytes=limit, sha256=self._sealed_sha256(key))
        return decode(data, signature, what=f"weights at {key}")

    def _sealed_sha256(self, key: str) -> str | None:
        """The digest recorded at commit if ``key`` is the model's uploaded weights; checkpoints, which
        only this node writes, have none. Read at start-up only, so the two lookups cost nothing."""
        model = self.model(self.job().model_id)
        return model.weights_sha256 if key == model.weights_key else None

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

    def open_round(self, round_number: int, attempt: int, opened_at: float, deadline: float) -> None:
        record = self.round(round_number) or RoundRecord(self.job_id, round_number)
        record.attempt = attempt
        record.status = RoundStatus.OPEN
        record.opened_at = at_time(opened_at)
        record.deadline = at_time(deadline)
        record.save()

    def complete_round(
        self,
        round_number: int,
        *,
        closed_at: float,
        devices: int,
        reports: int,
        samples: int,
        loss: float,
        accuracy: float,
        checkpoint: str,
    ) -> None:
        RoundRecord(self.job_id, round_number).update(
            actions=[
                RoundRecord.status.set(RoundStatus.COMPLETED),
                RoundRecord.closed_at.set(at_time(closed_at)),
                RoundRecord.devices.set(devices),
                RoundRecord.reports.set(reports),
                RoundRecord.samples.set(samples),
                RoundRecord.loss.set(loss),
                RoundRecord.accuracy.set(accuracy),
                RoundRecord.checkpoint_key.set(checkpoint),
            ]
        )

    def fail_attempt(
        self, round_number: int, attempt: int, reason: str, *, failed_at: float, devices: int, final: bool
    ) -> None:
        failure = RoundAttemptFailure(attempt=attempt, reason=reason, failed_at=at_time(failed_at))
        actions = [RoundRecord.failures.set(RoundRecord.failures.append([failure]))]
        if final:
            actions += [
                RoundRecord.status.set(RoundStatus.FAILED),
                RoundRecord.closed_at.set(at_time(failed_at)),
                RoundRecord.devices.set(devices),
            ]
        # Attempts fail in order: this one is recorded already if the list holds as many failures.
        not_yet = RoundRecord.failures.does_not_exist() | (size(RoundRecord.failures) < attempt)
        try:
            RoundRecord(self.job_id, round_number).update(actions=actions, condition=not_yet)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    # -- participations ---------------------------------------------------------------
    def assign(self, round_number: int, attempt: int, device_id: str, request_key: str, at: float) -> None:
        record = ParticipationRecord(
            self.job_id,
            participation_slot(round_number, attempt, request_key),
            request_key=request_key,
            device_id=device_id,
            round_number=round_number,
            attempt=attempt,
            assigned_at=at_time(at),
            expires_at=at_time(at) + PARTICIPATION_RETENTION,
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

    def delete_updates(self, round_number: int) -> int:
        return storage.delete_prefix(Bucket.UPDATES, round_updates_prefix(self.job_id, round_number))

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
        at: float,
    ) -> bool:
        record = ParticipationRecord(self.job_id, participation_slot(round_number, attempt, request_key))
        try:
            record.update(
                actions=[
                    ParticipationRecord.status.set(ParticipationStatus.REPORTED),
                    ParticipationRecord.reported_at.set(at_time(at)),
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

    def participation(self, round_number: int, attempt: int, request_key: str) -> ParticipationRecord | None:
        slot = participation_slot(round_number, attempt, request_key)
        try:
            return ParticipationRecord.get(self.job_id, slot, consistent_read=True)
        except ParticipationRecord.DoesNotExist:
            return None

    def carry_reports(self, round_number: int, from_attempt: int, to_attempt: int) -> None:
        reported = ParticipationRecord.status == ParticipationStatus.REPORTED
        slots = ParticipationRecord.query(
            self.job_id,
            ParticipationRecord.slot.startswith(attempt_prefix(round_number, from_attempt)),
            filter_condition=reported,
            consistent_read=True,
        )
        with ParticipationRecord.batch_write() as batch:  # 25 items a request, unprocessed ones retried
            for slot in slots:
                batch.save(carried_report(slot, to_attempt))
