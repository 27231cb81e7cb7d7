"""What the supervisor does about one job's FL node: pure decisions, no I/O.

The supervisor (:mod:`cohort.services.supervisor`) reads each job's record,
asks :func:`plan` what to do, checks the node when told to, asks :func:`judge`
what the check means, and carries the answer out. Both functions take the time
as an argument, so every rule below is tested without processes or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from cohort.domain.records import OPEN_JOB_STATUSES, JobStatus, NodeHealth
from cohort.services.launcher import Liveness, NodeCheck
from cohort.settings import Settings


@dataclass(frozen=True)
class Policy:
    max_launches: int  # launches per job, the first one included
    start_timeout: float  # seconds a launched node may take to become healthy
    unreachable_grace: float  # seconds a running node may fail its health checks before it is replaced

    @property
    def launch_lease(self) -> float:
        """How long a launch may stay under way before it counts as lost (its orchestrator died)."""
        return 2 * self.start_timeout

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            max_launches=settings.max_node_launches,
            start_timeout=settings.node_start_timeout_seconds,
            unreachable_grace=settings.node_unreachable_grace_seconds,
        )


@dataclass(frozen=True)
class JobNode:
    """What the decisions read of a job's record; times are Unix seconds."""

    status: JobStatus
    health: NodeHealth | None  # None on records written before nodes were supervised
    health_since: float | None
    launches: int
    has_node: bool  # a node was launched and its URL recorded
    detail: str | None


@dataclass(frozen=True)
class Wait:
    """A launch is under way; leave the job alone."""


@dataclass(frozen=True)
class Probe:
    """Check the node, then :func:`judge` the answer."""


@dataclass(frozen=True)
class Release:
    """The job has ended: stop its node and take it off the live-node index."""


@dataclass(frozen=True)
class Launch:
    number: int  # the job's launch count once this one starts
    reason: str | None  # why the previous node is replaced; None for the first launch


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Record:
    health: NodeHealth
    detail: str | None = None


Action = Wait | Probe | Release | Launch | Fail | Record


def plan(job: JobNode, now: float, policy: Policy) -> Wait | Probe | Release | Launch | Fail:
    """Before any check: what the record alone decides."""
    if job.status not in OPEN_JOB_STATUSES:
        return Release()
    if job.health == NodeHealth.LAUNCHING:
        if job.health_since is not None and now - job.health_since < policy.launch_lease:
            return Wait()
        return _replace(job, f"its launch did not finish within {policy.launch_lease:g}s", policy)
    if job.health in (NodeHealth.WAITING, NodeHealth.DOWN) or not job.has_node:
        return _replace(job, job.detail or "no node was running", policy)
    return Probe()


def judge(job: JobNode, check: NodeCheck, now: float, policy: Policy) -> Launch | Fail | Record:
    """After the check: keep the node, record what is wrong with it, or replace it."""
    if check.liveness == Liveness.HEALTHY:
        return Record(NodeHealth.HEALTHY)
    if check.liveness == Liveness.DEAD:
        return _replace(job, check.detail, policy)
    # A node just launched may take a while to answer: until the start timeout, it is booting.
    if check.liveness == Liveness.BOOTING or job.health == NodeHealth.BOOTING:
        booting_since = job.health_since if job.health == NodeHealth.BOOTING else now
        if booting_since is not None and now - booting_since >= policy.start_timeout:
            return _replace(job, f"it did not start serving within {policy.start_timeout:g}s", policy)
        return Record(NodeHealth.BOOTING, check.detail)
    unreachable_since = job.health_since if job.health == NodeHealth.UNREACHABLE else now
    if unreachable_since is not None and now - unreachable_since >= policy.unreachable_grace:
        return _replace(job, f"it did not answer for {now - unreachable_since:.0f}s ({check.detail})", policy)
    return Record(NodeHealth.UNREACHABLE, check.detail)


def _replace(job: JobNode, reason: str, policy: Policy) -> Launch | Fail:
    """Launch the job's next node, unless it has had all its launches."""
    if job.launches >= policy.max_launches:
        return Fail(failure_reason(job.launches, reason))
    return Launch(number=job.launches + 1, reason=None if job.launches == 0 else reason)


def failure_reason(launches: int, last: str) -> str:
    return (
        f"the FL node was launched {launches} time{'s' if launches != 1 else ''} (the limit, "
        f"COHORT_MAX_NODE_LAUNCHES) and did not keep running; the last time: {last}"
    )
