"""The node supervisor's effects on the jobs table (moto, in process), with a scripted launcher.

Its decisions are tested one by one in tests/unit/test_supervision.py; here the passes carry them
out: conditional writes, the live-node index, launches in the background, two orchestrators at once.
Real nodes over real HTTP are in test_node_supervision.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from cohort.catalogue import Group
from cohort.domain.records import JobStatus, ModelRecord, NodeHealth, TrainingJobRecord, UserRecord, utcnow
from cohort.services.launcher import LaunchedNode, Liveness, NodeCheck
from cohort.services.supervisor import Supervisor
from cohort.settings import Settings, get_settings

from .functions import queued_notifications

pytestmark = pytest.mark.usefixtures("account")

LAUNCH_SECONDS = 30.0


@dataclass
class ScriptedLauncher:
    """Launches succeed unless told otherwise; checks answer what the test last said."""

    fail_with: str | None = None
    liveness: dict[str, NodeCheck] = field(default_factory=dict)
    launches: list[tuple[str, int]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    hold: threading.Event | None = None  # while set, launches wait for it
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def launch(self, job_id: str, number: int) -> LaunchedNode:
        with self._lock:
            self.launches.append((job_id, number))
        if self.hold is not None:
            self.hold.wait(LAUNCH_SECONDS)
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        return LaunchedNode(url=f"http://127.0.0.1:9/jobs/{job_id}", ref=f"node-{job_id}-{number}")

    def check(self, job_id: str, node: LaunchedNode) -> NodeCheck:
        return self.liveness.get(job_id, NodeCheck(Liveness.HEALTHY))

    def stop(self, job_id: str, ref: str) -> None:
        with self._lock:
            self.stopped.append((job_id, ref))


class Clock:
    def __init__(self) -> None:
        self.now = utcnow().timestamp()

    def __call__(self) -> float:
        return self.now


def _settings(**overrides: object) -> Settings:
    return get_settings().model_copy(update={"max_node_launches": 3, **overrides})


def _new_job() -> TrainingJobRecord:
    """A job as POST /v1/jobs leaves it: starting, on the live-node index, its node waiting."""
    owner = UserRecord(uuid.uuid4().hex, email="scientist@example.org", role=Group.SCIENTISTS)
    owner.save()
    model = ModelRecord(
        uuid.uuid4().hex, owner_id=owner.user_id, name="tiny", weights_key="models/initial.safetensors"
    )
    model.save()
    job = TrainingJobRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        model_id=model.model_id,
        dataset_id="dataset",
        client_config={},
        server_config={"rounds": 2},
        global_weights_key="models/initial.safetensors",
        status=JobStatus.STARTING,
        live_node=get_settings().launcher,
        node_health=NodeHealth.WAITING,
        node_health_since=utcnow(),
    )
    job.save()
    return job


def _pass(supervisor: Supervisor) -> None:
    supervisor.run_pass()
    supervisor.wait_for_launches(LAUNCH_SECONDS)


def _of(job: TrainingJobRecord, calls: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The calls about this job: earlier tests' jobs share the module's tables."""
    return [call for call in calls if call[0] == job.job_id]


def _job(job_id: str) -> TrainingJobRecord:
    return TrainingJobRecord.get(job_id, consistent_read=True)


@pytest.fixture
def launcher() -> ScriptedLauncher:
    return ScriptedLauncher()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def supervisor(launcher: ScriptedLauncher, clock: Clock) -> Iterator[Supervisor]:
    supervisor = Supervisor(launcher, _settings(), clock)
    yield supervisor
    supervisor.stop()


def _mark_running(job_id: str) -> None:
    """What a node does when it starts."""
    TrainingJobRecord(job_id).update(actions=[TrainingJobRecord.status.set(JobStatus.RUNNING)])


def test_a_new_job_gets_one_node_even_with_two_orchestrators(
    launcher: ScriptedLauncher, clock: Clock, supervisor: Supervisor
) -> None:
    # Given a new job, and a second orchestrator's supervisor beside the first
    job = _new_job()
    other = Supervisor(launcher, _settings(), clock)
    launcher.hold = threading.Event()  # both passes run while the first launch is under way
    try:
        # When both pass over the jobs at the same time
        supervisor.run_pass()
        other.run_pass()
        launcher.hold.set()
        supervisor.wait_for_launches(LAUNCH_SECONDS)
        other.wait_for_launches(LAUNCH_SECONDS)
    finally:
        other.stop()

    # Then the node was launched once, and the job records it, booting, devices' URL and all
    assert _of(job, launcher.launches) == [(job.job_id, 1)]
    record = _job(job.job_id)
    assert (record.status, record.node_health, int(record.node_launches)) == (
        JobStatus.STARTING,
        NodeHealth.BOOTING,
        1,
    )
    assert record.node_url == f"http://127.0.0.1:9/jobs/{job.job_id}"
    assert record.live_node == get_settings().launcher

    # And once it answers its check, it is healthy
    _pass(supervisor)
    assert _job(job.job_id).node_health == NodeHealth.HEALTHY


def test_a_dead_node_is_relaunched_and_the_job_is_starting_meanwhile(
    launcher: ScriptedLauncher, supervisor: Supervisor
) -> None:
    # Given a running job with a healthy node
    job = _new_job()
    _pass(supervisor)
    _mark_running(job.job_id)
    _pass(supervisor)
    assert _job(job.job_id).node_health == NodeHealth.HEALTHY

    # When its process dies, and the supervisor passes while the relaunch is under way
    launcher.liveness[job.job_id] = NodeCheck(Liveness.DEAD, "its process exited with code -9")
    launcher.hold = threading.Event()
    supervisor.run_pass()

    # Then the job is starting again, its node relaunching, with the reason
    record = _job(job.job_id)
    assert (record.status, record.node_health, int(record.node_launches)) == (
        JobStatus.STARTING,
        NodeHealth.LAUNCHING,
        2,
    )
    assert record.node_detail == "launch 1: its process exited with code -9"

    # And once the second node is up, the first was stopped and the job points at the second
    launcher.hold.set()
    supervisor.wait_for_launches(LAUNCH_SECONDS)
    del launcher.liveness[job.job_id]
    assert (job.job_id, f"node-{job.job_id}-1") in launcher.stopped
    assert _of(job, launcher.launches)[-1] == (job.job_id, 2)
    record = _job(job.job_id)
    assert (record.node_ref, record.node_health) == (f"node-{job.job_id}-2", NodeHealth.BOOTING)


def test_a_node_that_cannot_start_fails_the_job_with_the_reason(
    launcher: ScriptedLauncher, supervisor: Supervisor
) -> None:
    # Given a job whose node exits at every start
    job = _new_job()
    launcher.fail_with = "the FL node exited with code 3; see fl-node.log"

    # When the supervisor has passed as often as the launch limit allows, and once more
    for _ in range(4):
        _pass(supervisor)

    # Then it launched the node three times, and the job failed saying why
    assert _of(job, launcher.launches) == [(job.job_id, 1), (job.job_id, 2), (job.job_id, 3)]
    record = _job(job.job_id)
    assert record.status == JobStatus.FAILED
    assert "launched 3 times" in record.status_reason
    assert "exited with code 3; see fl-node.log" in record.status_reason
    # and its owner is told
    [notice] = [n for n in queued_notifications() if n.get("job_id") == job.job_id]
    assert (notice["kind"], notice["status"], notice["to"]) == (
        "training_finished",
        "failed",
        "scientist@example.org",
    )
    assert "exited with code 3" in notice["reason"]
    # and the job left the live-node index, its node released
    assert record.live_node is None
    assert record.node_health == NodeHealth.RELEASED
    assert job.job_id not in {j.job_id for j in TrainingJobRecord.by_live_node.query(get_settings().launcher)}


def test_an_unreachable_node_is_replaced_after_the_grace(
    launcher: ScriptedLauncher, clock: Clock, supervisor: Supervisor
) -> None:
    # Given a running node, found healthy, that stops answering
    job = _new_job()
    _pass(supervisor)
    _mark_running(job.job_id)
    _pass(supervisor)
    launcher.liveness[job.job_id] = NodeCheck(Liveness.UNREACHABLE, "its health check failed: ReadTimeout")

    # When the supervisor passes within the grace, the node is kept and recorded unreachable
    _pass(supervisor)
    clock.now += _settings().node_unreachable_grace_seconds - 1
    _pass(supervisor)
    record = _job(job.job_id)
    assert (record.status, record.node_health, int(record.node_launches)) == (
        JobStatus.RUNNING,
        NodeHealth.UNREACHABLE,
        1,
    )

    # And after it, the node is stopped and replaced
    clock.now += 1
    _pass(supervisor)
    assert _of(job, launcher.launches)[-1] == (job.job_id, 2)
    assert (job.job_id, f"node-{job.job_id}-1") in launcher.stopped


def test_an_ended_job_s_node_is_released(launcher: ScriptedLauncher, supervisor: Supervisor) -> None:
    # Given a job whose node has finished it
    job = _new_job()
    _pass(supervisor)
    TrainingJobRecord(job.job_id).update(actions=[TrainingJobRecord.status.set(JobStatus.COMPLETED)])

    # When the supervisor passes
    _pass(supervisor)

    # Then the node is stopped and the job leaves the live-node index
    assert _of(job, launcher.stopped) == [(job.job_id, f"node-{job.job_id}-1")]
    record = _job(job.job_id)
    assert (record.live_node, record.node_health, record.status) == (
        None,
        NodeHealth.RELEASED,
        JobStatus.COMPLETED,
    )
