"""The FL node: runs the rounds of one training job.

State transitions happen under one lock; work that can be slow (decoding and
storing an update) happens outside it. Anything the node has accepted is in its
store before the device hears so, and counts in its round: a retried attempt
keeps the reports of the failed one. :meth:`FederatedNode.start` takes the job
up from the store after a restart, wherever the node died between two writes.
Every time the node acts on or records comes from the one clock it is given.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field

from cohort.domain.architecture import ArchitectureSpec, parse_architecture
from cohort.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from cohort.domain.records import (
    OPEN_JOB_STATUSES,
    JobStatus,
    ParticipationStatus,
    RoundRecord,
    RoundStatus,
    TrainingJobRecord,
)
from cohort.domain.training import Availability, ClientConfig, ServerConfig
from cohort.domain.weights import Tensors, TensorSignature, view_tensors
from cohort.federated.aggregation import StreamingFedAvg
from cohort.federated.bounds import (
    MeasuredUpdate,
    capped_weights,
    check_sample_count,
    clip_factor,
    first_non_finite,
    measure,
)
from cohort.federated.node_store import NodeStore
from cohort.federated.rounds import Assignment, Outcome, Rejection, RoundState

log = logging.getLogger(__name__)

CYCLES = Counter("cohort_node_cycle_requests_total", "Cycle requests", ["outcome"])
REPORTS = Counter("cohort_node_reports_total", "Device reports", ["outcome"])
ROUNDS = Counter("cohort_node_rounds_total", "Closed round attempts", ["outcome"])
CURRENT_ROUND = Gauge("cohort_node_current_round", "Round in progress")


class CycleAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    request_key: str
    round: int
    attempt: int = Field(description="The round's attempt that issued the request key")
    deadline: float = Field(description="Unix time by which the report must arrive")
    model_url: str = Field(description="Presigned URL of the round's model, in safetensors")
    architecture: ArchitectureSpec
    client_config: ClientConfig


class CycleRejected(BaseModel):
    status: Literal["rejected", "finished"] = "rejected"
    reason: str
    retry_after: float | None = Field(description="Seconds to wait before asking again; null once finished")


class ReportReceipt(BaseModel):
    status: Literal["accepted", "duplicate"]
    round: int
    attempt: int = Field(
        description="The round's attempt that holds the report; with the round and the request key, "
        "it names the report whose fate GET /reports/{request_key} tells"
    )


class ReportFate(BaseModel):
    status: Literal["pending", "counted", "discarded", "not_received"] = Field(
        description="pending: held for the open round; counted: in the round's result; discarded: the round "
        "or the job failed before the round completed; not_received: the node holds no report under this key"
    )
    round: int
    attempt: int
    reason: str = Field(description="Why, in words")


@dataclass(frozen=True)
class DeviceReport:
    num_samples: int
    loss: float
    accuracy: float

    def __post_init__(self) -> None:
        # The job's own cap (max_samples_per_report) is checked where the job is known.
        if self.num_samples < 1:
            raise InvalidInput("num_samples must be at least 1")
        if not (math.isfinite(self.loss) and self.loss >= 0):
            raise InvalidInput("loss must be a finite, non-negative number")
        if not 0.0 <= self.accuracy <= 1.0:
            raise InvalidInput("accuracy must lie between 0 and 1")


@dataclass
class _Folded:
    """A report as the tally folded it in: enough to change its weight later, without its update."""

    update_key: str
    report: DeviceReport
    factor: float  # its clipping factor
    weight: float  # the weight its update carries in the sum now


class _RoundTally:
    """The running aggregate and metrics of the open round attempt.

    Each update is clipped and folded in with its full sample count as it arrives. Which reports
    exceed the share cap is known only at the close, and only they are read back from the store
    then, to take their excess out: exact, and memory stays at the one running sum.
    """

    def __init__(self, signature: TensorSignature, config: ServerConfig) -> None:
        self.fedavg = StreamingFedAvg(signature)
        self._config = config
        self._folded: list[_Folded] = []

    def add(self, update: MeasuredUpdate, report: DeviceReport, update_key: str) -> None:
        factor = clip_factor(update.norm, self._config.clip_norm)
        self.fedavg.add(update.tensors, report.num_samples, factor)
        self._folded.append(_Folded(update_key, report, factor, float(report.num_samples)))

    def settle(self, read_update: Callable[[str], Tensors]) -> None:
        """Bring every report to its capped weight; safe to repeat after a failure part way."""
        samples = [folded.report.num_samples for folded in self._folded]
        weights = capped_weights(samples, self._config.max_report_share)
        for folded, weight in zip(self._folded, weights, strict=True):
            if float(weight) != folded.weight:
                delta = read_update(folded.update_key)
                self.fedavg.reweigh(delta, folded.factor, folded.weight, float(weight))
                folded.weight = float(weight)

    @property
    def samples(self) -> int:
        """The samples the reports claimed, before any cap."""
        return sum(folded.report.num_samples for folded in self._folded)

    @property
    def capped(self) -> int:
        return sum(folded.weight < folded.report.num_samples for folded in self._folded)

    def mean(self, metric: Callable[[DeviceReport], float]) -> float:
        """A reported metric, averaged with the reports' current weights."""
        return math.fsum(metric(f.report) * f.weight for f in self._folded) / self.fedavg.total_weight


class FederatedNode:
    def __init__(self, store: NodeStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self.finished = threading.Event()

    # -- start-up and resume ------------------------------------------------------
    def start(self) -> None:
        """Take the job up where the store says it is, after a crash between any two writes too
        (the order of those writes is in :mod:`cohort.federated.node_store`)."""
        job = self._store.job()
        self._job = job
        if job.status not in OPEN_JOB_STATUSES:
            self.finished.set()
            return
        model = self._store.model(job.model_id)
        self._architecture = parse_architecture(model.architecture)
        self._signature = TensorSignature.of(self._architecture.build())
        self._client_config = ClientConfig.model_validate(job.client_config)
        self._server_config = ServerConfig.model_validate(job.server_config)
        self._global_weights = self._store.read_weights(job.global_weights_key, self._signature)
        self._model_key = job.global_weights_key
        now = self._clock()
        self._job = self._store.mark_running(now)
        number, attempt = int(job.current_round), int(job.round_attempt)
        record = self._store.round(number)
        if record is None:  # a new job, or killed after advancing to this round
            self._open(number, now)
        elif record.status == RoundStatus.COMPLETED:  # killed after completing it, before advancing
            self._global_weights = self._store.read_weights(record.checkpoint_key, self._signature)
            self._model_key = record.checkpoint_key
            self._after_round(number, record.checkpoint_key, now)
        elif record.status == RoundStatus.FAILED:  # killed after its final failure, before failing the job
            self._finish(JobStatus.FAILED, _failed_round_reason(record), None, now)
        else:
            if record.attempt != attempt:  # killed after moving the job to a retry, before opening it
                policy = self._server_config.policy
                self._store.open_round(number, attempt, now, now + policy.deadline_seconds)
                record = self._store.round(number)
            self._resume(record)
            self._close_if_due()  # an attempt whose deadline passed while no node ran
        if not self.finished.is_set():
            log.info(
                "node for job %s at round %s, attempt %s", job.job_id, self._state.number, self._state.attempt
            )

    def _open(self, round_number: int, now: float) -> None:
        """Open the first attempt of a round."""
        self._state = RoundState(round_number, 1, self._server_config.policy, opened_at=now)
        self._store.open_round(round_number, 1, now, self._state.deadline)
        self._tally = _RoundTally(self._signature, self._server_config)
        CURRENT_ROUND.set(round_number)

    def _resume(self, record: RoundRecord) -> None:
        """Rebuild the open attempt, folding again every update it holds, those carried into it included."""
        self._state = RoundState(
            record.round_number,
            record.attempt,
            self._server_config.policy,
            opened_at=record.opened_at.timestamp(),
        )
        self._tally = _RoundTally(self._signature, self._server_config)
        slots = list(self._store.participations(record.round_number, record.attempt))
        for slot in slots:
            self._state.assignments[slot.device_id] = slot.request_key
        # Folded again in the order they arrived, so that the float32 partial sums round as they did.
        reported = [slot for slot in slots if slot.status == ParticipationStatus.REPORTED]
        for slot in sorted(reported, key=lambda slot: slot.reported_at):
            delta = self._store.read_update(slot.update_key, self._signature)
            report = DeviceReport(int(slot.num_samples), float(slot.loss), float(slot.accuracy))
            # Accepted earlier, so within the bound then: measured again for its clipping factor.
            self._tally.add(measure(delta, math.inf), report, slot.update_key)
            self._state.record_report(slot.request_key)
        CURRENT_ROUND.set(record.round_number)

    # -- device requests ---------------------------------------------------------------
    def _check_dataset(self, dataset_id: str) -> None:
        if dataset_id != self._job.dataset_id:
            raise Forbidden("this device's app does not take part in this job")

    def request_cycle(
        self, device_id: str, dataset_id: str, availability: Availability
    ) -> CycleAccepted | CycleRejected:
        self._check_dataset(dataset_id)
        with self._lock:
            if not self.finished.is_set():
                self._close_if_due()  # a due round closes now, not at the next tick
            if self.finished.is_set():
                CYCLES.labels("finished").inc()
                return CycleRejected(
                    status="finished", reason=f"the job is {self._job.status}", retry_after=None
                )
            reason = availability.ineligibility(self._server_config)
            if reason:
                CYCLES.labels("ineligible").inc()
                return CycleRejected(reason=reason, retry_after=60.0)
            state, now = self._state, self._clock()
            decision = state.assign(device_id, now, _new_request_key)
            if isinstance(decision, Rejection):
                CYCLES.labels("rejected").inc()
                return CycleRejected(reason=decision.reason, retry_after=decision.retry_after)
            self._store.assign(state.number, state.attempt, device_id, decision.request_key, now)
            CYCLES.labels("accepted").inc()
            return self._accepted(decision)

    def _accepted(self, assignment: Assignment) -> CycleAccepted:
        return CycleAccepted(
            request_key=assignment.request_key,
            round=self._state.number,
            attempt=self._state.attempt,
            deadline=assignment.deadline,
            model_url=self._store.model_url(self._model_key),
            architecture=self._architecture,
            client_config=self._client_config,
        )

    @property
    def max_update_bytes(self) -> int:
        """The largest update body this job's model admits."""
        return self._signature.max_file_bytes

    def expect_report(self, device_id: str, dataset_id: str, request_key: str) -> ReportReceipt | None:
        """Whether a report may be sent, decided before its body is read: None if the open round awaits
        it, the receipt if it was counted already; raises as :meth:`submit_report` would for a key that
        is not this device's in the open round, or a round past its deadline."""
        self._check_dataset(dataset_id)
        with self._lock:
            if self._current_for_report(device_id, request_key) is None:
                REPORTS.labels("duplicate").inc()
                return _receipt("duplicate", self._state)
            return None

    def submit_report(
        self, device_id: str, dataset_id: str, request_key: str, report: DeviceReport, body: bytes
    ) -> ReportReceipt:
        self._check_dataset(dataset_id)
        check_sample_count(report.num_samples, self._server_config.max_samples_per_report)
        update = measure(
            view_tensors(body, self._signature, what="the update"), self._server_config.max_update_norm
        )
        with self._lock:
            state = self._current_for_report(device_id, request_key)
            if state is None:
                REPORTS.labels("duplicate").inc()
                return _receipt("duplicate", self._state)
        # Stored before it counts, outside the lock: S3 may be slow for big models.
        key = self._store.store_update(state.number, state.attempt, request_key, body)
        with self._lock:
            if self._current_for_report(device_id, request_key) is not state:
                REPORTS.labels("duplicate").inc()
                return _receipt("duplicate", state)
            first = self._store.mark_reported(
                state.number,
                state.attempt,
                request_key,
                num_samples=report.num_samples,
                loss=report.loss,
                accuracy=report.accuracy,
                key=key,
                at=self._clock(),
            )
            if not first:
                REPORTS.labels("duplicate").inc()
                return _receipt("duplicate", state)
            self._tally.add(update, report, key)
            state.record_report(request_key)
            REPORTS.labels("accepted").inc()
            self._close_if_due()
            return _receipt("accepted", state)

    def _current_for_report(self, device_id: str, request_key: str) -> RoundState | None:
        """The open round if this report belongs in it, None if already counted."""
        if self.finished.is_set():
            raise Conflict(f"the job is {self._job.status}; the report was not counted")
        if self._state.check_report(device_id, request_key, self._clock()):
            return self._state
        return None

    def report_fate(
        self, device_id: str, dataset_id: str, request_key: str, round_number: int, attempt: int
    ) -> ReportFate:
        """What became of the report a device sent under ``request_key`` in a round attempt, as stored."""
        self._check_dataset(dataset_id)
        slot = self._store.participation(round_number, attempt, request_key)
        if slot is None or slot.device_id != device_id:
            raise NotFound(f"round {round_number}, attempt {attempt} issued this device no such request key")

        def fate(status: str, reason: str) -> ReportFate:
            return ReportFate(status=status, round=round_number, attempt=attempt, reason=reason)

        record = self._store.round(round_number)
        job = self._job
        if slot.status != ParticipationStatus.REPORTED:
            if record.status == RoundStatus.OPEN and record.attempt == attempt and not self.finished.is_set():
                return fate("not_received", "no report arrived under this key; send it before the deadline")
            return fate("not_received", "no report arrived under this key before its attempt closed")
        if record.status == RoundStatus.COMPLETED:
            return fate("counted", f"counted in round {round_number}, with {record.reports} reports in all")
        if record.status == RoundStatus.FAILED:
            return fate("discarded", f"{_failed_round_reason(record)}; its reports count in no model")
        if job.status not in OPEN_JOB_STATUSES:
            return fate(
                "discarded", f"the job is {job.status} ({job.status_reason}) and the round never closed"
            )
        return fate(
            "pending", f"held for round {round_number}, attempt {record.attempt}, which is still open"
        )

    # -- closing rounds ----------------------------------------------------------------
    def tick(self) -> None:
        """Close the round if it is due; called on a timer so deadlines fire without reports."""
        with self._lock:
            if not self.finished.is_set():
                self._close_if_due()

    def seconds_to_deadline(self) -> float:
        if self.finished.is_set():
            return 0.0
        return max(self._state.deadline - self._clock(), 0.0)

    def _close_if_due(self) -> None:
        now = self._clock()
        outcome = self._state.outcome(now)
        if outcome is Outcome.AGGREGATE:
            self._aggregate(now)
        elif outcome is Outcome.FAIL:
            self._fail_attempt(now)

    def _aggregate(self, now: float) -> None:
        state, tally = self._state, self._tally
        tally.settle(lambda key: self._store.read_update(key, self._signature))
        weights = tally.fedavg.apply_to(self._global_weights)
        culprit = first_non_finite(weights)
        if culprit is not None:  # the previous model stays, and the attempt is retried
            self._fail_attempt(now, f"the aggregate is not finite (tensor '{culprit}' holds NaN or inf)")
            if not self.finished.is_set():
                # Every update was checked as it came, so the fault is in the fold held in memory: the
                # retry folds the reports it carries again, from the store, as a restart would.
                self._resume(self._store.round(state.number))
            return
        self._global_weights = weights
        checkpoint = self._store.write_checkpoint(state.number, self._global_weights)
        self._store.complete_round(
            state.number,
            closed_at=now,
            devices=len(state.assignments),
            reports=tally.fedavg.reports,
            samples=tally.samples,
            loss=tally.mean(lambda report: report.loss),
            accuracy=tally.mean(lambda report: report.accuracy),
            checkpoint=checkpoint,
        )
        ROUNDS.labels("completed").inc()
        self._model_key = checkpoint
        log.info(
            "round %s closed: %s reports, %s samples, %s weight(s) capped to a share of %s",
            state.number,
            tally.fedavg.reports,
            tally.samples,
            tally.capped,
            self._server_config.max_report_share,
        )
        self._after_round(state.number, checkpoint, now)

    def _after_round(self, completed: int, checkpoint: str, now: float) -> None:
        """Once round ``completed`` is recorded completed: drop its updates, then end the job after
        its last round, or open the next round on ``checkpoint``."""
        self._discard_updates(completed)
        if completed >= self._server_config.rounds:
            self._finish(JobStatus.COMPLETED, f"trained for {completed} rounds", checkpoint, now)
            return
        self._job = self._store.advance(completed + 1, checkpoint, now)
        self._open(completed + 1, now)

    def _fail_attempt(self, now: float, reason: str | None = None) -> None:
        state = self._state
        reports, quorum = len(state.reported), state.policy.min_reports
        reason = reason or f"quorum not met by the deadline: {reports} of {quorum} reports needed"
        final = state.attempt >= self._server_config.max_round_attempts
        self._store.fail_attempt(
            state.number, state.attempt, reason, failed_at=now, devices=len(state.assignments), final=final
        )
        ROUNDS.labels("failed").inc()
        log.warning("round %s attempt %s failed: %s", state.number, state.attempt, reason)
        if final:
            self._discard_updates(state.number)
            self._finish(JobStatus.FAILED, _round_failed(state.number, state.attempt, reason), None, now)
            return
        # The next attempt keeps what this one took: its reports stay folded in the tally, and are
        # carried into the next attempt's slots before the job moves there, so a restart finds them.
        retried = state.retried(now)
        self._store.carry_reports(state.number, state.attempt, retried.attempt)
        self._job = self._store.retry(retried.attempt, now)
        self._store.open_round(state.number, retried.attempt, now, retried.deadline)
        self._state = retried

    def _discard_updates(self, round_number: int) -> None:
        """Delete a closed round's individual updates, unless the job keeps them for audit; a failure is
        logged and changes nothing else (the bucket's expiry rule deletes them later)."""
        if self._server_config.retain_updates:
            return
        try:
            deleted = self._store.delete_updates(round_number)
        except Exception:
            log.exception("the updates of round %s were not deleted; the bucket's expiry will", round_number)
            return
        log.info("round %s: %s stored updates deleted", round_number, deleted)

    def _finish(self, status: JobStatus, reason: str, trained_key: str | None, now: float) -> None:
        self._job = self._store.finish(status, reason, trained_key, now)
        self.finished.set()

    def announce(self) -> None:
        """Tell the owner the job has ended, and queue the evaluation it asked for; called once it
        has, outside the lock, as both may be slow.

        Neither may change the job's outcome: a failure is logged, and the job stands.
        """
        try:
            evaluation_id = self._store.request_evaluation(self._job)
            if evaluation_id:
                log.info("evaluation %s of job %s's trained model queued", evaluation_id, self._job.job_id)
        except Exception:
            log.exception("the evaluation of job %s's trained model was not queued", self._job.job_id)
        try:
            self._store.notify_owner(self._job)
        except Exception:
            log.exception("the training-finished notification of job %s was not queued", self._job.job_id)

    @property
    def job(self) -> TrainingJobRecord:
        return self._job


def _receipt(status: Literal["accepted", "duplicate"], state: RoundState) -> ReportReceipt:
    return ReportReceipt(status=status, round=state.number, attempt=state.attempt)


def _round_failed(round_number: int, attempts: int, reason: str) -> str:
    return f"round {round_number} failed {attempts} times: {reason}"


def _failed_round_reason(record: RoundRecord) -> str:
    failures = record.failures
    last = failures[-1].reason if failures else "no reason recorded"
    return _round_failed(int(record.round_number), len(failures), last)


def _new_request_key() -> str:
    return secrets.token_urlsafe(18)
