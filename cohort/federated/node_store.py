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
)
from cohort.domain.weights import Tensors, TensorSignature


def at_time(epoch_seconds: float) -> datetime:
    """A reading of the node's clock (Unix seconds) as the UTC datetime a record stores."""
    return datetime.fromtimestamp(epoch_seconds, UTC)


def checkpoint_key(job_id: str, round_number: int) -> str:
    """Where a round's aggregated model is kept: the next round's model, or the trained one."""
    return f"jobs/{job_id}/checkpoints/round-{round_number:06d}.safetensors"


def update_key(job_id: str, round_number: int, attempt: int, request_key: str) -> str:
    """Where one device's update is kept, under its round attempt."""
    return f"jobs/{job_id}/rounds/{round_number:06d}/attempt-{attempt:03d}/{request_key}.safetensors"


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
        to that attempt."""
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
        """Every slot of one round attempt, assigned or reported: what a restart refolds."""
        ...

    # -- announcements, once the job has ended ------------------------------------------------------
    def notify_owner(self, job: TrainingJobRecord) -> None:
        """Queue the training-finished email to the job's owner; queueing it twice sends one email."""
        ...

    def request_evaluation(self, job: TrainingJobRecord) -> str | None:
        """Queue the robustness evaluation a completed job asked for; its id, or None if none was
        queued."""
        ...
