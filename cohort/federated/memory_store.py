"""The node's store in memory, for tests and benchmarks: no AWS, no emulator, no disk.

It honours the contract of :mod:`cohort.federated.node_store` as the DynamoDB and S3 store does
(``tests/unit/test_node_store_contract.py`` runs the same checks on both). Records are kept the way
DynamoDB keeps them, serialized by their own pynamodb attributes, so every read is a fresh copy with
the stored types, and a record the node changes changes nothing here. Blobs are kept as ``bytes``.
Nothing is queued when a job ends: the requests are recorded for a test to read.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pynamodb.models import Model

from cohort.domain.errors import NotFound
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
from cohort.federated.node_store import (
    at_time,
    carried_report,
    checkpoint_key,
    round_updates_prefix,
    update_key,
)

_Item = dict[str, dict[str, Any]]  # a record as DynamoDB holds it
_R = TypeVar("_R", bound=Model)


class MemoryNodeStore:
    def __init__(
        self, job: TrainingJobRecord, model: ModelRecord, models_bucket: Mapping[str, bytes]
    ) -> None:
        """A store holding one job, its model record, and the models bucket's blobs by key (at least
        the job's ``global_weights_key``)."""
        self.job_id = job.job_id
        self._lock = threading.Lock()  # the node writes from its request threads and its watcher
        self._job = job.serialize()
        self._model = model.serialize()
        self._models: dict[str, bytes] = {key: bytes(data) for key, data in models_bucket.items()}
        self._updates: dict[str, bytes] = {}
        self._rounds: dict[int, _Item] = {}
        self._slots: dict[str, _Item] = {}  # by participation slot, which sorts by round and attempt
        self.owner_notifications: list[TrainingJobRecord] = []  # the job, each time notify_owner was called
        self.evaluation_requests: list[TrainingJobRecord] = []  # likewise for request_evaluation

    # -- job and model ------------------------------------------------------------
    def job(self) -> TrainingJobRecord:
        return _record(TrainingJobRecord, self._job)

    def model(self, model_id: str) -> ModelRecord:
        model = _record(ModelRecord, self._model)
        if model.model_id != model_id:
            raise ModelRecord.DoesNotExist()
        return model

    def mark_running(self, at: float) -> TrainingJobRecord:
        return self._update_job(at, status=JobStatus.RUNNING)

    def advance(self, round_number: int, weights_key: str, at: float) -> TrainingJobRecord:
        changes = {"current_round": round_number, "round_attempt": 1, "global_weights_key": weights_key}
        return self._update_job(at, **changes)

    def retry(self, attempt: int, at: float) -> TrainingJobRecord:
        return self._update_job(at, round_attempt=attempt)

    def finish(self, status: JobStatus, reason: str, trained_key: str | None, at: float) -> TrainingJobRecord:
        changes: dict[str, object] = {"status": status, "status_reason": reason}
        if trained_key:
            changes["trained_weights_key"] = trained_key
        return self._update_job(at, **changes)

    def _update_job(self, at: float, **changes: object) -> TrainingJobRecord:
        with self._lock:
            job = self.job()
            _assign(job, updated_at=at_time(at), **changes)
            self._job = job.serialize()
            return self.job()

    def notify_owner(self, job: TrainingJobRecord) -> None:
        self.owner_notifications.append(_record(TrainingJobRecord, job.serialize()))

    def request_evaluation(self, job: TrainingJobRecord) -> str | None:
        """Recorded only: no evaluator runs here, so no evaluation id comes back."""
        self.evaluation_requests.append(_record(TrainingJobRecord, job.serialize()))
        return None

    # -- weights --------------------------------------------------------------------
    def read_weights(self, key: str, signature: TensorSignature) -> Tensors:
        return decode(_blob(self._models, key), signature, what=f"weights at {key}")

    def write_checkpoint(self, round_number: int, weights: Tensors) -> str:
        key = checkpoint_key(self.job_id, round_number)
        self._models[key] = encode(weights)
        return key

    def model_url(self, key: str) -> str:
        return f"memory://models/{key}"

    # -- rounds -----------------------------------------------------------------------
    def round(self, round_number: int) -> RoundRecord | None:
        item = self._rounds.get(round_number)
        return _record(RoundRecord, item) if item else None

    def open_round(self, round_number: int, attempt: int, opened_at: float, deadline: float) -> None:
        with self._lock:
            record = self.round(round_number) or RoundRecord(self.job_id, round_number)
            _assign(
                record,
                attempt=attempt,
                status=RoundStatus.OPEN,
                opened_at=at_time(opened_at),
                deadline=at_time(deadline),
            )
            self._rounds[round_number] = record.serialize()

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
        with self._editing_round(round_number) as record:
            _assign(
                record,
                status=RoundStatus.COMPLETED,
                closed_at=at_time(closed_at),
                devices=devices,
                reports=reports,
                samples=samples,
                loss=loss,
                accuracy=accuracy,
                checkpoint_key=checkpoint,
            )

    def fail_attempt(
        self, round_number: int, attempt: int, reason: str, *, failed_at: float, devices: int, final: bool
    ) -> None:
        failure = RoundAttemptFailure(attempt=attempt, reason=reason, failed_at=at_time(failed_at))
        with self._editing_round(round_number) as record:
            if len(record.failures) >= attempt:
                return  # this attempt's failure is recorded already
            record.failures = [*record.failures, failure]
            if final:
                _assign(record, status=RoundStatus.FAILED, closed_at=at_time(failed_at), devices=devices)

    @contextmanager
    def _editing_round(self, round_number: int) -> Iterator[RoundRecord]:
        """The stored round to change; it is stored again unless the block returns early."""
        with self._lock:
            record = self.round(round_number)
            if record is None:  # the contract updates only rounds that open_round recorded
                raise LookupError(f"round {round_number} of job {self.job_id} was never opened")
            before = record.serialize()
            yield record
            if record.serialize() != before:
                self._rounds[round_number] = record.serialize()

    # -- participations ---------------------------------------------------------------
    def assign(self, round_number: int, attempt: int, device_id: str, request_key: str, at: float) -> None:
        slot = participation_slot(round_number, attempt, request_key)
        record = ParticipationRecord(
            self.job_id,
            slot,
            request_key=request_key,
            device_id=device_id,
            round_number=round_number,
            attempt=attempt,
            assigned_at=at_time(at),
        )
        with self._lock:
            self._slots.setdefault(slot, record.serialize())  # the first one recorded stays

    def store_update(self, round_number: int, attempt: int, request_key: str, data: bytes) -> str:
        key = update_key(self.job_id, round_number, attempt, request_key)
        with self._lock:
            self._updates[key] = bytes(data)
        return key

    def delete_updates(self, round_number: int) -> int:
        prefix = round_updates_prefix(self.job_id, round_number)
        with self._lock:
            doomed = [key for key in self._updates if key.startswith(prefix)]
            for key in doomed:
                del self._updates[key]
        return len(doomed)

    def update_keys(self) -> list[str]:
        """Every update stored, for a test to read (not part of the contract)."""
        with self._lock:
            return sorted(self._updates)

    def read_update(self, key: str, signature: TensorSignature) -> Tensors:
        return decode(_blob(self._updates, key), signature, what=f"update at {key}")

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
        slot = participation_slot(round_number, attempt, request_key)
        with self._lock:
            item = self._slots.get(slot)
            if item is None:
                return False
            record = _record(ParticipationRecord, item)
            if record.status != ParticipationStatus.ASSIGNED:
                return False
            _assign(
                record,
                status=ParticipationStatus.REPORTED,
                reported_at=at_time(at),
                num_samples=num_samples,
                loss=loss,
                accuracy=accuracy,
                update_key=key,
            )
            self._slots[slot] = record.serialize()
            return True

    def participations(self, round_number: int, attempt: int) -> Iterator[ParticipationRecord]:
        prefix = attempt_prefix(round_number, attempt)
        with self._lock:
            items = [item for slot, item in sorted(self._slots.items()) if slot.startswith(prefix)]
        # An iterator that can be read once, as DynamoDB's query results are.
        return (_record(ParticipationRecord, item) for item in items)

    def participation(self, round_number: int, attempt: int, request_key: str) -> ParticipationRecord | None:
        item = self._slots.get(participation_slot(round_number, attempt, request_key))
        return _record(ParticipationRecord, item) if item else None

    def carry_reports(self, round_number: int, from_attempt: int, to_attempt: int) -> None:
        for record in self.participations(round_number, from_attempt):
            if record.status == ParticipationStatus.REPORTED:
                carried = carried_report(record, to_attempt)
                with self._lock:
                    self._slots[carried.slot] = carried.serialize()


def _record(cls: type[_R], item: _Item) -> _R:
    # A record is built on the item's nested dicts and lists; a deep copy keeps the stored one apart.
    return cls.from_raw_data(copy.deepcopy(item))


def _assign(record: object, **changes: object) -> None:
    for name, value in changes.items():
        setattr(record, name, value)


def _blob(bucket: Mapping[str, bytes], key: str) -> bytes:
    try:
        return bucket[key]
    except KeyError:
        raise NotFound(f"nothing has been uploaded to {key}") from None
