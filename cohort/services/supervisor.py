"""The orchestrator's node supervisor: every job that needs an FL node has a live one, or fails.

One loop, one pass every ``supervise_interval_seconds`` (and at once when a job
is started). Each pass is one query of the sparse live-node index, which holds
every job from its creation until its node is released; for each job the pure
rules of :mod:`cohort.services.supervision` decide, and this module carries
the decision out:

- a job without a node gets one; a node whose process or task has ended is
  relaunched at once, one that stops answering after a grace period. The new
  node resumes the round from the job's checkpoint and its store;
- the job is ``starting`` while its node is (re)launched, ``running`` once the
  node has started (the node marks it so);
- after ``max_node_launches`` launches the job fails with the reason and its
  node is released, so devices no longer find it in the open-jobs listing;
- the nodes of ended jobs are stopped and released.

Launches run in a small pool, beside the passes, so one slow launch holds up
no other job. Every write is conditional on the launch count that the pass
read, so two orchestrators never launch the same node twice and a pass never
undoes a newer launch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition

from cohort.domain.records import (
    OPEN_JOB_STATUSES,
    JobStatus,
    NodeHealth,
    TrainingJobRecord,
)
from cohort.notify.training import notify_training_finished
from cohort.services.launcher import LaunchedNode, Launcher, Liveness, NodeCheck
from cohort.services.supervision import (
    Action,
    Fail,
    JobNode,
    Launch,
    Policy,
    Probe,
    Record,
    Release,
    Wait,
    judge,
    plan,
)
from cohort.settings import Settings

log = logging.getLogger(__name__)

_CHECKERS = 8  # health checks run side by side, so a pass lasts about one health timeout


def job_node(record: TrainingJobRecord) -> JobNode:
    return JobNode(
        status=JobStatus(record.status),
        health=NodeHealth(record.node_health) if record.node_health else None,
        health_since=record.node_health_since.timestamp() if record.node_health_since else None,
        launches=int(record.node_launches or 0),
        has_node=bool(record.node_url and record.node_ref),
        detail=record.node_detail,
    )


class Supervisor:
    def __init__(
        self, launcher: Launcher, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._launcher = launcher
        self._kind = settings.launcher
        self._interval = settings.supervise_interval_seconds
        self._policy = Policy.of(settings)
        self._clock = clock
        self._launches = ThreadPoolExecutor(settings.max_concurrent_node_launches, "node-launch")
        self._checks = ThreadPoolExecutor(_CHECKERS, "node-check")
        self._in_flight: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None

    # -- the loop -----------------------------------------------------------------------
    def start(self) -> None:
        self._loop = threading.Thread(target=self._run, name="node-supervisor", daemon=True)
        self._loop.start()

    def wake(self) -> None:
        """Run a pass now: a job was started."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout=30)
        self._checks.shutdown(wait=False, cancel_futures=True)
        self._launches.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a wake during the pass below runs the next one at once
            try:
                self.run_pass()
            except Exception:
                log.exception("a supervision pass failed; the next one retries")
            self._wake.wait(self._interval)

    def wait_for_launches(self, timeout: float) -> None:
        """Block until the launches under way have ended (for tests, which then read their outcome)."""
        with self._lock:
            running = list(self._in_flight.values())
        for future in running:
            future.exception(timeout=timeout)

    # -- one pass -------------------------------------------------------------------------
    def run_pass(self) -> None:
        now = self._clock()
        checks: list[tuple[TrainingJobRecord, Future[NodeCheck]]] = []
        for record in TrainingJobRecord.by_live_node.query(self._kind):
            with self._lock:
                if record.job_id in self._in_flight:
                    continue
            action = plan(job_node(record), now, self._policy)
            if isinstance(action, Probe):
                checks.append((record, self._checks.submit(self._check, record)))
            else:
                self._carry_out(record, action)
        for record, check in checks:
            self._carry_out(record, judge(job_node(record), check.result(), self._clock(), self._policy))

    def _check(self, record: TrainingJobRecord) -> NodeCheck:
        node = LaunchedNode(url=record.node_url or "", ref=record.node_ref or "")
        try:
            return self._launcher.check(record.job_id, node)
        except Exception as exc:  # the check itself failed (a throttled API): not proof of death
            log.warning("checking the node of job %s failed: %s", record.job_id, exc)
            return NodeCheck(Liveness.UNREACHABLE, f"it could not be checked: {exc}")

    def _carry_out(self, record: TrainingJobRecord, action: Action) -> None:
        try:
            if isinstance(action, Release):
                self._release(record)
            elif isinstance(action, Record):
                self._record(record, action)
            elif isinstance(action, Launch):
                self._claim_and_launch(record, action)
            elif isinstance(action, Fail):
                self._fail(record, action)
            elif not isinstance(action, Wait):
                raise TypeError(f"no effect for {action!r}")
        except _Superseded:
            log.info("job %s changed during the pass; the next pass looks again", record.job_id)
        except Exception:
            log.exception("supervising job %s failed; the next pass retries", record.job_id)

    # -- effects ----------------------------------------------------------------------------
    def _release(self, record: TrainingJobRecord) -> None:
        self._launcher.stop(record.job_id, record.node_ref or "")
        record.update(
            actions=[
                TrainingJobRecord.live_node.remove(),
                TrainingJobRecord.node_health.set(NodeHealth.RELEASED),
                TrainingJobRecord.node_health_since.set(self._now()),
            ]
        )
        log.info("released the node of job %s, which is %s", record.job_id, record.status)

    def _record(self, record: TrainingJobRecord, action: Record) -> None:
        now = self._now()
        actions = [
            TrainingJobRecord.node_health.set(action.health),
            TrainingJobRecord.node_checked_at.set(now),
        ]
        if action.detail:
            actions.append(TrainingJobRecord.node_detail.set(action.detail))
        if record.node_health != action.health:
            actions.append(TrainingJobRecord.node_health_since.set(now))
            log.info("the node of job %s is %s %s", record.job_id, action.health, action.detail or "")
        self._update(record, actions, _same_launch(record) & _open())

    def _claim_and_launch(self, record: TrainingJobRecord, action: Launch) -> None:
        now = self._now()
        actions = [
            TrainingJobRecord.status.set(JobStatus.STARTING),
            TrainingJobRecord.node_launches.set(action.number),
            TrainingJobRecord.node_health.set(NodeHealth.LAUNCHING),
            TrainingJobRecord.node_health_since.set(now),
            TrainingJobRecord.node_checked_at.set(now),
        ]
        if action.reason:
            actions.append(TrainingJobRecord.node_detail.set(f"launch {action.number - 1}: {action.reason}"))
        self._update(record, actions, _same_launch(record) & _open())
        if action.reason:
            log.warning(
                "relaunching the node of job %s (launch %d): %s", record.job_id, action.number, action.reason
            )
        with self._lock:
            self._in_flight[record.job_id] = self._launches.submit(
                self._launch, record.job_id, action.number, record.node_ref
            )

    def _launch(self, job_id: str, number: int, previous_ref: str | None) -> None:
        up = False
        try:
            if previous_ref:
                self._stop_quietly(job_id, previous_ref)  # a hung node must not keep serving
            try:
                node = self._launcher.launch(job_id, number)
            except Exception as exc:
                log.warning("launch %d of the node of job %s failed: %s", number, job_id, exc)
                self._after_launch(
                    job_id,
                    number,
                    [
                        TrainingJobRecord.node_health.set(NodeHealth.DOWN),
                        TrainingJobRecord.node_detail.set(f"it did not start: {exc}"),
                    ],
                )
                return
            try:
                self._after_launch(
                    job_id,
                    number,
                    [
                        TrainingJobRecord.node_url.set(node.url),
                        TrainingJobRecord.node_ref.set(node.ref),
                        TrainingJobRecord.node_health.set(NodeHealth.BOOTING),
                    ],
                )
            except _Superseded:
                log.warning("launch %d of job %s was taken over; stopping its node", number, job_id)
                self._stop_quietly(job_id, node.ref)
                return
            log.info("launch %d of the node of job %s is up at %s", number, job_id, node.url)
            up = True
        except Exception:
            log.exception("launch %d of the node of job %s went wrong", number, job_id)
        finally:
            with self._lock:
                self._in_flight.pop(job_id, None)
            if up:
                self._wake.set()  # check the new node now; after a failed launch, wait for the next pass

    def _after_launch(self, job_id: str, number: int, actions: list) -> None:
        now = self._now()
        record = TrainingJobRecord(job_id)
        condition = TrainingJobRecord.node_launches == number
        self._update(
            record,
            [
                *actions,
                TrainingJobRecord.node_health_since.set(now),
                TrainingJobRecord.node_checked_at.set(now),
            ],
            condition,
        )

    def _fail(self, record: TrainingJobRecord, action: Fail) -> None:
        now = self._now()
        self._update(
            record,
            [
                TrainingJobRecord.status.set(JobStatus.FAILED),
                TrainingJobRecord.status_reason.set(action.reason),
                TrainingJobRecord.node_health.set(NodeHealth.DOWN),
                TrainingJobRecord.node_health_since.set(now),
                TrainingJobRecord.node_checked_at.set(now),
                TrainingJobRecord.updated_at.set(now),
            ],
            _same_launch(record) & _open(),
        )
        log.warning("job %s failed: %s", record.job_id, action.reason)
        try:
            notify_training_finished(record)  # its node cannot tell the owner: it never kept running
        except Exception:
            log.exception("the training-finished notification of job %s was not queued", record.job_id)
        self._release(record)

    # -- helpers ------------------------------------------------------------------------------
    def _stop_quietly(self, job_id: str, ref: str) -> None:
        try:
            self._launcher.stop(job_id, ref)
        except Exception as exc:
            log.warning("stopping a node of job %s failed: %s", job_id, exc)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @staticmethod
    def _update(record: TrainingJobRecord, actions: list, condition: Condition) -> None:
        try:
            record.update(actions=actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise _Superseded from error
            raise


class _Superseded(Exception):
    """The record moved on since the pass read it: another launch, or the job ended."""


def _same_launch(record: TrainingJobRecord) -> Condition:
    launches = int(record.node_launches or 0)
    same = TrainingJobRecord.node_launches == launches
    # Jobs created before nodes were supervised have no count yet.
    return same | TrainingJobRecord.node_launches.does_not_exist() if launches == 0 else same


def _open() -> Condition:
    return TrainingJobRecord.status.is_in(*OPEN_JOB_STATUSES)
