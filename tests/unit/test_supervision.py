"""The supervisor's rules for one job's FL node (cohort/services/supervision.py), without I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cohort.domain.records import JobStatus, NodeHealth
from cohort.services.launcher import Liveness, NodeCheck
from cohort.services.supervision import (
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

NOW = 1_000_000.0
POLICY = Policy(max_launches=3, start_timeout=60.0, unreachable_grace=10.0)
NEW_JOB = JobNode(
    status=JobStatus.STARTING,
    health=NodeHealth.WAITING,
    health_since=NOW,
    launches=0,
    has_node=False,
    detail=None,
)
RUNNING = JobNode(
    status=JobStatus.RUNNING,
    health=NodeHealth.HEALTHY,
    health_since=NOW - 100,
    launches=1,
    has_node=True,
    detail=None,
)
KILLED = NodeCheck(Liveness.DEAD, "its process exited with code -9")


def test_a_new_job_gets_its_first_node() -> None:
    assert plan(NEW_JOB, NOW, POLICY) == Launch(number=1, reason=None)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_an_ended_job_s_node_is_released(status: JobStatus) -> None:
    assert plan(replace(RUNNING, status=status), NOW, POLICY) == Release()


def test_a_running_node_is_checked() -> None:
    assert plan(RUNNING, NOW, POLICY) == Probe()


def test_a_launch_under_way_is_left_alone_until_its_lease_runs_out() -> None:
    # Given a launch that began a while ago
    launching = replace(NEW_JOB, health=NodeHealth.LAUNCHING, health_since=NOW, launches=1)

    # Then it is waited for within its lease, and counted as failed after it (its orchestrator died)
    assert plan(launching, NOW + POLICY.launch_lease - 1, POLICY) == Wait()
    after = plan(launching, NOW + POLICY.launch_lease, POLICY)
    assert isinstance(after, Launch)
    assert after.number == 2
    assert "did not finish" in (after.reason or "")


def test_a_failed_launch_is_retried_with_its_reason() -> None:
    down = replace(NEW_JOB, health=NodeHealth.DOWN, launches=1, detail="launch 1 failed: exited with code 3")
    assert plan(down, NOW, POLICY) == Launch(number=2, reason="launch 1 failed: exited with code 3")


def test_the_last_failed_launch_fails_the_job_with_the_reason() -> None:
    # Given a job whose node failed to start at each of its allowed launches
    down = replace(NEW_JOB, health=NodeHealth.DOWN, launches=3, detail="launch 3 failed: exited with code 3")

    # Then the job fails, saying how often and why
    decision = plan(down, NOW, POLICY)
    assert isinstance(decision, Fail)
    assert "launched 3 times" in decision.reason
    assert "launch 3 failed: exited with code 3" in decision.reason
    assert "COHORT_MAX_NODE_LAUNCHES" in decision.reason


def test_a_dead_node_is_relaunched_at_once() -> None:
    assert judge(RUNNING, KILLED, NOW, POLICY) == Launch(number=2, reason=KILLED.detail)


def test_a_dead_node_past_the_limit_fails_the_job() -> None:
    decision = judge(replace(RUNNING, launches=3), KILLED, NOW, POLICY)
    assert isinstance(decision, Fail)
    assert KILLED.detail in decision.reason


def test_a_healthy_node_is_recorded_healthy() -> None:
    assert judge(RUNNING, NodeCheck(Liveness.HEALTHY), NOW, POLICY) == Record(NodeHealth.HEALTHY)


def test_an_unreachable_node_gets_a_grace_period_then_is_replaced() -> None:
    # Given a running node that stops answering its health check
    silent = NodeCheck(Liveness.UNREACHABLE, "its health check failed: ReadTimeout")

    # When it is first found so, it is recorded unreachable and kept
    assert judge(RUNNING, silent, NOW, POLICY) == Record(NodeHealth.UNREACHABLE, silent.detail)

    # And while the grace lasts it is still kept
    unreachable = replace(RUNNING, health=NodeHealth.UNREACHABLE, health_since=NOW)
    assert judge(unreachable, silent, NOW + POLICY.unreachable_grace - 1, POLICY) == Record(
        NodeHealth.UNREACHABLE, silent.detail
    )

    # But once the grace is over it is replaced, saying for how long it was silent
    decision = judge(unreachable, silent, NOW + POLICY.unreachable_grace, POLICY)
    assert isinstance(decision, Launch)
    assert decision.number == 2
    assert "did not answer for 10s" in (decision.reason or "")


def test_a_node_that_answers_again_is_healthy_again() -> None:
    unreachable = replace(RUNNING, health=NodeHealth.UNREACHABLE, health_since=NOW)
    assert judge(unreachable, NodeCheck(Liveness.HEALTHY), NOW + 5, POLICY) == Record(NodeHealth.HEALTHY)


def test_a_booting_node_has_the_start_timeout_to_become_healthy() -> None:
    # Given a node just launched, whose task is still provisioning
    booting = replace(RUNNING, status=JobStatus.STARTING, health=NodeHealth.BOOTING, health_since=NOW)
    provisioning = NodeCheck(Liveness.BOOTING, "its task is provisioning")

    # Then it is waited for, even while it does not answer yet
    assert judge(booting, provisioning, NOW + 30, POLICY) == Record(NodeHealth.BOOTING, provisioning.detail)
    silent = NodeCheck(Liveness.UNREACHABLE, "its health check failed: ConnectError")
    assert judge(booting, silent, NOW + 30, POLICY) == Record(NodeHealth.BOOTING, silent.detail)

    # And once the start timeout is over, it counts as a failed launch
    decision = judge(booting, provisioning, NOW + POLICY.start_timeout, POLICY)
    assert isinstance(decision, Launch)
    assert "did not start serving within 60s" in (decision.reason or "")


def test_a_job_from_before_supervision_has_its_node_checked() -> None:
    # Given a running job whose record has no node health yet
    legacy = replace(RUNNING, health=None, health_since=None, launches=0)

    # Then its node is checked, and if it is dead the job gets a node of its own
    assert plan(legacy, NOW, POLICY) == Probe()
    assert judge(legacy, KILLED, NOW, POLICY) == Launch(number=1, reason=None)


def test_the_lease_outlasts_the_start_timeout() -> None:
    # A launch that is merely slow must never be taken over while it can still succeed.
    assert POLICY.launch_lease > POLICY.start_timeout
