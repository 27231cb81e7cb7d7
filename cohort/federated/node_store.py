"""The FL node's persistence contract: what it keeps outside its memory, and what a restart reads back.

Two stores honour it: :class:`~cohort.federated.aws_store.AwsNodeStore` (DynamoDB records and S3
blobs; the node process uses it) and :class:`~cohort.federated.memory_store.MemoryNodeStore` (for
tests and benchmarks). ``tests/unit/test_node_store_contract.py`` holds both to the same checks.

Common rules:

- **Durable on return.** A write has happened when its method returns; a node that dies just
  after it, restarted over the same store, reads it back.
- **Times come from the node.** Every time a store records (opened, closed, failed, assigned,
  reported, updated) is the Unix time the node passes in, read from its one clock; a store never
  reads a clock of its own.
- **Reads are copies.** Records are the domain's records (:mod:`cohort.domain.records`) as stored
  when read; changing one changes nothing in the store.
- **One store, one job.** A store is made for one job id, and every method is about that job.
- **Idempotent where a restart repeats.** A node may die between any two writes; the restart repeats
  the step it was in, so the writes it may repeat (:meth:`NodeStore.fail_attempt`,
  :meth:`NodeStore.carry_reports`, :meth:`NodeStore.delete_updates`, :meth:`NodeStore.assign`,
  :meth:`NodeStore.mark_reported`) change nothing the second time.

Each step between rounds is several writes, never one transaction; the node orders them so that a
restart reading :meth:`NodeStore.job` and the job's current :meth:`NodeStore.round` knows where it
stopped (``FederatedNode.start``):

- *Closing a round:* checkpoint, :meth:`~NodeStore.complete_round`, :meth:`~NodeStore.delete_updates`,
  then :meth:`~NodeStore.advance` (or :meth:`~NodeStore.finish` after the last round), then
  :meth:`~NodeStore.open_round` of the next. A restart that finds the job's current round
  ``completed`` goes on from its checkpoint; its result is kept, and none of its reports is taken
  again. One that finds no record of the current round opens it.
- *Retrying a round:* :meth:`~NodeStore.fail_attempt`, :meth:`~NodeStore.carry_reports` into the next
  attempt, :meth:`~NodeStore.retry`, then :meth:`~NodeStore.open_round` of that attempt. A restart
  that finds the round open at an earlier attempt than the job's opens the job's attempt, whose
  carried reports are already there; one that finds the failed attempt still current fails it again
  (its deadline has passed), which repeats the same writes.
- *Failing the job:* the final :meth:`~NodeStore.fail_attempt`, then :meth:`~NodeStore.finish`. A
  restart that finds the current round ``failed`` fails the job with the round's reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from cohort.domain.records import (
    JobStatus,
    ModelRecord,
    ParticipationRecord,
    RoundRecord,
    TrainingJobRecord,
    participation_slot,
)
from cohort.domain.weights import Tensors, TensorSignature


def carried_report(slot: ParticipationRecord, attempt: int) -> ParticipationRecord:
    """A reported slot as :meth:`NodeStore.carry_reports` copies it into a later attempt of its round."""
    key = participation_slot(int(slot.round_number), attempt, slot.request_key)
    return ParticipationRecord(**{**slot.attribute_values, "slot": key, "attempt": attempt})


def at_time(epoch_seconds: float) -> datetime:
    """A reading of the node's clock (Unix seconds) as the UTC datetime a record stores."""
    return datetime.fromtimestamp(epoch_seconds, UTC)


def checkpoint_key(job_id: str, round_number: int) -> str:
    """Where a round's aggregated model is kept: the next round's model, or the trained one."""
    return f"jobs/{job_id}/checkpoints/round-{round_number:06d}.safetensors"


def round_updates_prefix(job_id: str, round_number: int) -> str:
    """The key prefix of every update of one round, all its attempts."""
    return f"jobs/{job_id}/rounds/{round_number:06d}/"


def update_key(job_id: str, round_number: int, attempt: int, request_key: str) -> str:
    """Where one device's update is kept, under its round attempt."""
    return f"{round_updates_prefix(job_id, round_number)}attempt-{attempt:03d}/{request_key}.safetensors"


class NodeStore(Protocol):
    # -- the job and its model --------------------------------------------------------------------
    def job(self) -> TrainingJobRecord:
        """The job as stored (a consistent read). A restart starts here: its status, current round
        and attempt, and ``global_weights_key``, the model that round trains."""
        ...

    def model(self, model_id: str) -> ModelRecord:
        """The model record the job trains: its architecture, and its name for the owner's email."""
        ...

    def mark_running(self, at: float) -> TrainingJobRecord:
        """Set the job ``running``; the job as stored after the write. Repeating it is harmless."""
        ...

    def advance(self, round_number: int, weights_key: str, at: float) -> TrainingJobRecord:
        """Move the job to the first attempt of ``round_number``, which trains ``weights_key``; the job
        as stored after the write. A restart opens that round, not the one before."""
        ...

    def retry(self, attempt: int, at: float) -> TrainingJobRecord:
        """Move the job to ``attempt`` of its current round; the job as stored after the write."""
        ...

    def finish(self, status: JobStatus, reason: str, trained_key: str | None, at: float) -> TrainingJobRecord:
        """End the job with ``status`` and ``reason`` (and its trained model's key, when it has one);
        the job as stored after the write. A restart over a finished job runs no round."""
        ...

    # -- model blobs ------------------------------------------------------------------------------
    def read_weights(self, key: str, signature: TensorSignature) -> Tensors:
        """A stored model, validated against ``signature``; NotFound when nothing is stored there."""
        ...

    def write_checkpoint(self, round_number: int, weights: Tensors) -> str:
        """Store a round's aggregated model at :func:`checkpoint_key`, replacing an earlier write of the
        same round; its key."""
        ...

    def model_url(self, key: str) -> str:
        """A URL from which a device downloads the stored model at ``key`` without a token."""
        ...

    # -- rounds -----------------------------------------------------------------------------------
    def round(self, round_number: int) -> RoundRecord | None:
        """A round as stored, or None if it was never opened."""
        ...

    def open_round(self, round_number: int, attempt: int, opened_at: float, deadline: float) -> None:
        """Record ``attempt`` of a round as open until ``deadline``. Reopening a round for its next
        attempt keeps the failures of the earlier ones."""
        ...

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
        """Record a round that :meth:`open_round` recorded as completed, with its metrics and its
        checkpoint's key."""
        ...

    def fail_attempt(
        self, round_number: int, attempt: int, reason: str, *, failed_at: float, devices: int, final: bool
    ) -> None:
        """Add a failed attempt to the failures of a round that :meth:`open_round` recorded. When it is
        the ``final`` one, the round is failed and closed, and keeps ``devices``, the number admitted
        to that attempt. Conditional: an attempt whose failure is recorded already is not added again
        (attempts fail in order, so the round then holds ``attempt`` failures or more)."""
        ...

    # -- participations and updates ---------------------------------------------------------------
    def assign(self, round_number: int, attempt: int, device_id: str, request_key: str, at: float) -> None:
        """Record a device's slot in a round attempt. Conditional: a slot already recorded under
        ``request_key`` is kept as it is, so repeating the call is harmless."""
        ...

    def store_update(self, round_number: int, attempt: int, request_key: str, data: bytes) -> str:
        """Keep a device's update, as received, at :func:`update_key`; its key. Kept before the report
        counts, so that a restart can fold it again."""
        ...

    def read_update(self, key: str, signature: TensorSignature) -> Tensors:
        """A stored update, validated against ``signature``; NotFound when nothing is stored there."""
        ...

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
        """Record a slot's report and where its update is kept. Conditional: True the first time, False
        when the slot has reported already or was never assigned, and then nothing changes."""
        ...

    def participations(self, round_number: int, attempt: int) -> Iterable[ParticipationRecord]:
        """Every slot of one round attempt, assigned or reported (those carried into it included): what
        a restart refolds."""
        ...

    def participation(self, round_number: int, attempt: int, request_key: str) -> ParticipationRecord | None:
        """One slot of a round attempt, or None if that attempt never issued ``request_key``."""
        ...

    def carry_reports(self, round_number: int, from_attempt: int, to_attempt: int) -> None:
        """Copy every reported slot of ``from_attempt`` into ``to_attempt`` of the same round, as reported,
        with its request key, device, metrics, times and update key: a retried attempt keeps the reports
        the failed one took. Repeating it is harmless; the slots of ``from_attempt`` stay as they are."""
        ...

    def delete_updates(self, round_number: int) -> int:
        """Delete every update stored for a round, of all its attempts, reported or not (every version of
        it, where the bucket keeps versions); how many objects went. Called only once the round is
        recorded closed, since a restart never refolds a closed round. Repeating it is harmless."""
        ...

    # -- announcements, once the job has ended ------------------------------------------------------
    def notify_owner(self, job: TrainingJobRecord) -> None:
        """Queue the training-finished email to the job's owner; queueing it twice sends one email."""
        ...

    def request_evaluation(self, job: TrainingJobRecord) -> str | None:
        """Queue the robustness evaluation a completed job asked for; its id, or None if none was
        queued."""
        ...
