"""The FL node: runs the rounds of one training job.

State transitions happen under one lock; work that can be slow (decoding and
storing an update) happens outside it. Anything the node has accepted is in its
store before the device hears so, and :meth:`FederatedNode.start` rebuilds the
open round from there after a restart. Every time the node acts on or records
comes from the one clock it is given.
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
from cohort.domain.errors import Conflict, Forbidden, InvalidInput
from cohort.domain.records import (
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
        job = self._store.job()
        self._job = job
        if job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            self.finished.set()
            return
        model = self._store.model(job.model_id)
        self._architecture = parse_architecture(model.architecture)
        self._signature = TensorSignature.of(self._architecture.build())
        self._client_config = ClientConfig.model_validate(job.client_config)
        self._server_config = ServerConfig.model_validate(job.server_config)
        self._global_weights = self._store.read_weights(job.global_weights_key, self._signature)
        self._model_key = job.global_weights_key
        self._job = self._store.mark_running(self._clock())
        record = self._store.round(job.current_round)
        if record is not None and record.status == RoundStatus.OPEN and record.attempt == job.round_attempt:
            self._resume(record)
        else:
            self._open(job.current_round, job.round_attempt)
        log.info(
            "node for job %s at round %s, attempt %s", job.job_id, self._state.number, self._state.attempt
        )

    def _open(self, round_number: int, attempt: int) -> None:
        now = self._clock()
        policy = self._server_config.policy
        self._state = RoundState(round_number, attempt, policy, opened_at=now)
        self._store.open_round(round_number, attempt, now, self._state.deadline)
        self._tally = _RoundTally(self._signature, self._server_config)
        CURRENT_ROUND.set(round_number)

    def _resume(self, record: RoundRecord) -> None:
        """Rebuild the open attempt, folding again every update already accepted."""
        self._state = RoundState(
            record.round_number,
            record.attempt,
            self._server_config.policy,
            opened_at=record.opened_at.timestamp(),
        )
        self._tally = _RoundTally(self._signature, self._server_config)
        for slot in self._store.participations(record.round_number, record.attempt):
            self._state.assignments[slot.device_id] = slot.request_key
            if slot.status == ParticipationStatus.REPORTED:
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
            deadline=assignment.deadline,
            model_url=self._store.model_url(self._model_key),
            architecture=self._architecture,
            client_config=self._client_config,
        )

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
                return ReportReceipt(status="duplicate", round=self._state.number)
        # Stored before it counts, outside the lock: S3 may be slow for big models.
        key = self._store.store_update(state.number, state.attempt, request_key, body)
        with self._lock:
            if self._current_for_report(device_id, request_key) is not state:
                REPORTS.labels("duplicate").inc()
                return ReportReceipt(status="duplicate", round=state.number)
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
                return ReportReceipt(status="duplicate", round=state.number)
            self._tally.add(update, report, key)
            state.record_report(request_key)
            REPORTS.labels("accepted").inc()
            self._close_if_due()
            return ReportReceipt(status="accepted", round=state.number)

    def _current_for_report(self, device_id: str, request_key: str) -> RoundState | None:
        """The open round if this report belongs in it, None if already counted."""
        if self.finished.is_set():
            raise Conflict(f"the job is {self._job.status}; the report was not counted")
        if self._state.check_report(device_id, request_key, self._clock()):
            return self._state
        return None

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
        if state.number >= self._server_config.rounds:
            self._finish(JobStatus.COMPLETED, f"trained for {state.number} rounds", checkpoint, now)
            return
        self._job = self._store.advance(state.number + 1, checkpoint, now)
        self._open(state.number + 1, 1)

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
            reason = f"round {state.number} failed {state.attempt} times: {reason}"
            self._finish(JobStatus.FAILED, reason, None, now)
            return
        self._job = self._store.retry(state.attempt + 1, now)
        self._open(state.number, state.attempt + 1)

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


def _new_request_key() -> str:
    return secrets.token_urlsafe(18)
