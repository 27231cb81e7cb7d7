"""The FL node's rounds, over the in-memory store and a clock the test moves: no AWS, no sleep."""

from __future__ import annotations

import math

import pytest
import torch

from cohort.domain.architecture import parse_architecture
from cohort.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from cohort.domain.records import JobStatus, ParticipationStatus, RoundStatus
from cohort.domain.training import Availability, ServerConfig
from cohort.domain.weights import TensorSignature, encode
from cohort.federated.memory_store import MemoryNodeStore
from cohort.federated.node import CycleAccepted, CycleRejected, DeviceReport, FederatedNode
from cohort.federated.node_store import at_time, checkpoint_key, update_key
from cohort.federated.rounds import MAX_RETRY_AFTER_SECONDS

from .node_setting import (
    AVAILABLE,
    CLIENT_CONFIG,
    DATASET_ID,
    INITIAL_WEIGHTS_KEY,
    JOB_ID,
    SIGNATURE,
    START,
    TINY_MLP,
    FakeClock,
    Mortal,
    NodeKilled,
    delta,
    initial_weights,
    memory_store,
)

DEADLINE_SECONDS = 60.0
ZERO = encode(delta(0.0))


class Harness:
    """A started node over a memory store, and the devices' side of the protocol, in plain calls."""

    def __init__(
        self, store: MemoryNodeStore | None = None, clock: FakeClock | None = None, **config: object
    ) -> None:
        config.setdefault("round_deadline_seconds", DEADLINE_SECONDS)
        self.store = store or memory_store(**config)
        self.clock = clock or FakeClock()
        self.node = FederatedNode(self.store, self.clock)
        self.node.start()

    def cycle(
        self, device_id: str, availability: Availability = AVAILABLE, dataset_id: str = DATASET_ID
    ) -> CycleAccepted | CycleRejected:
        return self.node.request_cycle(device_id, dataset_id, availability)

    def admit(self, device_id: str) -> str:
        answer = self.cycle(device_id)
        assert isinstance(answer, CycleAccepted), answer
        return answer.request_key

    def report(
        self,
        device_id: str,
        request_key: str,
        body: bytes = ZERO,
        num_samples: int = 10,
        loss: float = 0.5,
        accuracy: float = 0.5,
    ) -> str:
        report = DeviceReport(num_samples=num_samples, loss=loss, accuracy=accuracy)
        return self.node.submit_report(device_id, DATASET_ID, request_key, report, body).status

    def slots(self, round_number: int = 1, attempt: int = 1) -> dict[str, str]:
        """Device id -> participation status, as stored."""
        return {s.device_id: s.status for s in self.store.participations(round_number, attempt)}

    def weights(self, key: str) -> dict[str, torch.Tensor]:
        return self.store.read_weights(key, SIGNATURE)


def _moved_by(weights: dict[str, torch.Tensor], step: float) -> None:
    for name, initial in initial_weights().items():
        torch.testing.assert_close(weights[name], initial + step)


# -- admission ---------------------------------------------------------------------------------------


def test_an_eligible_device_gets_a_slot_the_model_url_and_the_deadline() -> None:
    # Given a job whose node has just started
    harness = Harness(rounds=2, min_reports=1, max_reports=2)

    # When an eligible device asks for a cycle
    answer = harness.cycle("phone-1")

    # Then it is accepted into round 1 with the round's model and its deadline
    assert isinstance(answer, CycleAccepted)
    assert (answer.round, answer.deadline) == (1, START + DEADLINE_SECONDS)
    assert answer.model_url == harness.store.model_url(INITIAL_WEIGHTS_KEY)
    assert answer.architecture == parse_architecture(TINY_MLP)
    assert answer.client_config.model_dump() == CLIENT_CONFIG
    # And its slot is stored, at the node's time
    (slot,) = harness.store.participations(1, 1)
    assert (slot.device_id, slot.request_key, slot.status) == ("phone-1", answer.request_key, "assigned")
    assert slot.assigned_at == at_time(START)


def test_the_node_marks_the_job_running_and_opens_round_one_at_its_clock() -> None:
    harness = Harness(rounds=2, min_reports=1, max_reports=2)

    job, round_one = harness.store.job(), harness.store.round(1)

    assert (job.status, job.current_round, job.round_attempt) == (JobStatus.RUNNING, 1, 1)
    assert job.updated_at == at_time(START)
    assert (round_one.status, round_one.attempt) == (RoundStatus.OPEN, 1)
    assert (round_one.opened_at, round_one.deadline) == (at_time(START), at_time(START + DEADLINE_SECONDS))


@pytest.mark.parametrize(
    ("availability", "config", "reason"),
    [
        (Availability(battery=0.9, charging=True, network="none"), {}, "offline"),
        (
            Availability(battery=0.1, charging=False, network="wifi"),
            {"min_battery": 0.2},
            "battery below 20%",
        ),
        (
            Availability(battery=0.9, charging=True, network="cellular"),
            {"require_unmetered_network": True},
            "unmetered",
        ),
    ],
    ids=["offline", "low-battery", "metered-network"],
)
def test_an_ineligible_device_is_told_to_come_back_and_takes_no_slot(
    availability: Availability, config: dict, reason: str
) -> None:
    harness = Harness(min_reports=1, max_reports=1, **config)

    answer = harness.cycle("phone-1", availability)

    assert isinstance(answer, CycleRejected)
    assert (answer.status, answer.retry_after) == ("rejected", 60.0)
    assert reason in answer.reason
    assert harness.slots() == {}


def test_the_cohort_is_capped_and_later_devices_are_told_when_to_retry() -> None:
    # Given a round that admits two devices
    harness = Harness(min_reports=1, max_reports=2, cohort_size=2)

    # When three ask for a cycle
    answers = [harness.cycle(f"phone-{i}") for i in range(3)]

    # Then two are accepted with slots of their own, and the third is paced
    first, second, third = answers
    assert isinstance(first, CycleAccepted)
    assert isinstance(second, CycleAccepted)
    assert first.request_key != second.request_key
    assert isinstance(third, CycleRejected)
    assert third.reason == "the round's cohort is full"
    assert 0 < third.retry_after <= MAX_RETRY_AFTER_SECONDS
    assert set(harness.slots()) == {"phone-0", "phone-1"}


def test_asking_twice_returns_the_same_slot() -> None:
    harness = Harness(min_reports=1, max_reports=2)
    key = harness.admit("phone-1")

    harness.clock.advance(5)
    again = harness.cycle("phone-1")

    assert isinstance(again, CycleAccepted)
    assert (again.request_key, again.deadline) == (key, START + DEADLINE_SECONDS)
    assert len(list(harness.store.participations(1, 1))) == 1


def test_a_device_of_another_app_is_refused_and_changes_nothing() -> None:
    harness = Harness(min_reports=1, max_reports=1)
    key = harness.admit("phone-1")

    with pytest.raises(Forbidden, match="does not take part"):
        harness.cycle("outsider", dataset_id="another-app")
    with pytest.raises(Forbidden, match="does not take part"):
        harness.node.submit_report("phone-1", "another-app", key, DeviceReport(10, 0.5, 0.5), ZERO)

    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}


# -- reports -----------------------------------------------------------------------------------------


def test_a_replayed_report_is_counted_once() -> None:
    # Given a round that needs two reports and a device holding a slot in it
    harness = Harness(min_reports=2, max_reports=2)
    key = harness.admit("phone-1")

    # When the device sends the same report three times
    receipts = [harness.report("phone-1", key) for _ in range(3)]

    # Then one is accepted, the replays are duplicates, and the round is still open
    assert receipts == ["accepted", "duplicate", "duplicate"]
    assert harness.store.round(1).status == RoundStatus.OPEN
    # And the device may not take a second slot in the round
    again = harness.cycle("phone-1")
    assert isinstance(again, CycleRejected)
    assert "reported for this round already" in again.reason

    # And a second device's report completes the round with exactly two reports
    assert harness.report("phone-2", harness.admit("phone-2")) == "accepted"
    round_one = harness.store.round(1)
    assert (round_one.status, round_one.reports, round_one.samples) == (RoundStatus.COMPLETED, 2, 20)


@pytest.mark.parametrize(
    "body",
    [encode({**delta(0.0), "0.weight": torch.full((3, 4), float("nan"))}), b"not a safetensors file"],
    ids=["nan", "garbage"],
)
def test_a_bad_update_is_refused_and_the_slot_is_still_usable(body: bytes) -> None:
    # Given a device with a slot in a round that one report completes
    harness = Harness(min_reports=1, max_reports=1)
    key = harness.admit("phone-1")

    # When it reports an update that is not valid for the model
    with pytest.raises(InvalidInput):
        harness.report("phone-1", key, body)

    # Then nothing was stored or counted
    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}
    with pytest.raises(NotFound):
        harness.store.read_update(update_key(JOB_ID, 1, 1, key), SIGNATURE)
    assert harness.store.round(1).status == RoundStatus.OPEN
    # And a good report is still taken
    assert harness.report("phone-1", key) == "accepted"


def test_a_report_with_a_key_the_round_never_issued_is_not_found() -> None:
    harness = Harness(min_reports=1, max_reports=1)
    harness.admit("phone-1")

    with pytest.raises(NotFound, match="unknown request key"):
        harness.report("phone-1", "made-up-key")

    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}


def test_a_report_with_another_devices_key_is_forbidden() -> None:
    harness = Harness(min_reports=1, max_reports=1)
    key = harness.admit("phone-1")

    with pytest.raises(Forbidden, match="issued to another device"):
        harness.report("thief", key)

    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}
    assert harness.report("phone-1", key) == "accepted"


def test_a_report_after_the_deadline_is_refused_and_not_counted() -> None:
    # Given a device admitted to a round that needs two reports
    harness = Harness(min_reports=2, max_reports=2)
    key = harness.admit("phone-1")

    # When its report arrives at the deadline, before the round has been closed
    harness.clock.advance(DEADLINE_SECONDS)
    with pytest.raises(Conflict, match="deadline has passed"):
        harness.report("phone-1", key)

    # Then it is not counted
    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}


def test_the_report_is_recorded_at_the_nodes_time() -> None:
    harness = Harness(min_reports=2, max_reports=2)
    key = harness.admit("phone-1")
    harness.clock.advance(7)

    harness.report("phone-1", key, num_samples=12)

    (slot,) = harness.store.participations(1, 1)
    assert (slot.status, slot.num_samples, slot.reported_at) == ("reported", 12, at_time(START + 7))
    assert slot.update_key == update_key(JOB_ID, 1, 1, key)


# -- bounded reports ---------------------------------------------------------------------------------


def _spying_on_read_backs(store: MemoryNodeStore) -> list[str]:
    """The keys of the updates the node reads back from its store, from now on."""
    keys: list[str] = []
    read_update = store.read_update

    def spy(key: str, signature: TensorSignature) -> dict[str, torch.Tensor]:
        keys.append(key)
        return read_update(key, signature)

    store.read_update = spy  # type: ignore[method-assign]
    return keys


def test_an_update_above_the_norm_bound_is_refused_and_changes_nothing() -> None:
    # Given a round beside an honest report, and a device whose update holds one value of 3e38 with
    # num_samples=2: folded into a float32 sum, it made the next model infinite
    harness = Harness(min_reports=2, max_reports=2, max_update_norm=1_000.0)
    harness.report("honest", harness.admit("honest"), encode(delta(0.01)))
    key = harness.admit("attacker")
    hostile = delta(0.0)
    hostile["0.weight"][0, 0] = 3e38

    # When it reports, then it is refused, saying the norm, the bound and what to do
    with pytest.raises(InvalidInput, match=r"L2 norm is 3e\+38, above this job's max_update_norm of 1,000"):
        harness.report("attacker", key, encode(hostile), num_samples=2)

    # And nothing was stored or counted: the round waits for a good report
    assert harness.slots() == {
        "honest": ParticipationStatus.REPORTED,
        "attacker": ParticipationStatus.ASSIGNED,
    }
    with pytest.raises(NotFound):
        harness.store.read_update(update_key(JOB_ID, 1, 1, key), SIGNATURE)
    assert harness.store.round(1).status == RoundStatus.OPEN
    assert harness.report("attacker", key, encode(delta(0.01))) == "accepted"
    assert harness.store.round(1).status == RoundStatus.COMPLETED


def test_a_report_claiming_more_samples_than_the_job_allows_is_refused_and_changes_nothing() -> None:
    harness = Harness(min_reports=1, max_reports=1, max_samples_per_report=500)
    key = harness.admit("phone-1")

    with pytest.raises(
        InvalidInput, match="num_samples is 10,000,000, above this job's max_samples_per_report"
    ):
        harness.report("phone-1", key, num_samples=10_000_000)

    assert harness.slots() == {"phone-1": ParticipationStatus.ASSIGNED}
    assert harness.report("phone-1", key, num_samples=500) == "accepted"


def test_an_update_above_clip_norm_is_scaled_down_to_it_before_it_is_averaged() -> None:
    # Given a job that clips updates to a norm of 1, and an update moving each weight by +1
    harness = Harness(min_reports=1, max_reports=1, clip_norm=1.0)
    values = sum(math.prod(shape) for shape in SIGNATURE.shapes.values())

    # When it is the round's only report
    harness.report("phone-1", harness.admit("phone-1"), encode(delta(1.0)))

    # Then the model moved by that update scaled to norm 1: each weight by 1 / sqrt(values)
    _moved_by(harness.weights(checkpoint_key(JOB_ID, 1)), 1 / math.sqrt(values))


def test_nine_honest_devices_and_one_claiming_the_cap_leave_it_the_share_cap_and_no_more() -> None:
    # Given a round of ten reports under the default bounds: nine honest devices with about 180
    # samples whose updates move nothing, and one claiming the sample cap whose update moves every
    # weight by +1
    harness = Harness(min_reports=10, max_reports=10)
    bounds = ServerConfig()
    read_backs = _spying_on_read_backs(harness.store)
    honest = [180, 175, 190, 170, 185, 182, 178, 181, 179]
    for i, samples in enumerate(honest):
        harness.report(f"honest-{i}", harness.admit(f"honest-{i}"), ZERO, num_samples=samples, loss=0.5)
    attacker = harness.admit("attacker")
    harness.report(
        "attacker", attacker, encode(delta(1.0)), num_samples=bounds.max_samples_per_report, loss=0.0
    )

    # Then the round closed, recording the samples as claimed
    round_one = harness.store.round(1)
    assert (round_one.status, round_one.samples) == (RoundStatus.COMPLETED, sum(honest) + 10_000)
    # And the attacker moved the model by exactly its capped share, not by its 86% of the samples
    _moved_by(harness.weights(round_one.checkpoint_key), bounds.max_report_share)
    # And its claimed loss of 0 weighs as much, no more
    assert round_one.loss == pytest.approx((1 - bounds.max_report_share) * 0.5)
    # And only its update was read back to take out its excess weight
    assert read_backs == [update_key(JOB_ID, 1, 1, attacker)]


def test_a_round_of_fewer_reports_than_the_share_cap_allows_weighs_them_equally() -> None:
    # Given a share cap of a quarter and a round of two reports: 300 samples of +1 and 100 of 0
    harness = Harness(min_reports=2, max_reports=2, max_report_share=0.25)
    harness.report("big", harness.admit("big"), encode(delta(1.0)), num_samples=300)
    harness.report("small", harness.admit("small"), ZERO, num_samples=100)

    # Then no weights but equal ones come as near the cap: the model moves by the plain mean
    _moved_by(harness.weights(checkpoint_key(JOB_ID, 1)), 0.5)


def test_a_restarted_node_gives_exactly_the_same_clipped_and_capped_model() -> None:
    # Given the same four reports, one of them large and over-claiming, taken by a node that runs
    # the round through and by one that is restarted after three of them
    reports = [
        ("a", delta(0.25), 180, 0.4),
        ("attacker", delta(4.0), 9_000, 0.0),
        ("b", delta(-0.5), 170, 0.6),
        ("c", delta(0.125), 190, 0.5),
    ]
    config = {"min_reports": 4, "max_reports": 4, "clip_norm": 5.0, "max_report_share": 0.3}
    uninterrupted, first_life = Harness(**config), Harness(**config)
    keys = {}
    for harness in (uninterrupted, first_life):
        keys[harness] = [harness.admit(device) for device, *_ in reports]
    for (device, update, samples, loss), key in zip(reports, keys[uninterrupted], strict=True):
        uninterrupted.report(device, key, encode(update), num_samples=samples, loss=loss)
    for (device, update, samples, loss), key in zip(reports[:3], keys[first_life][:3], strict=True):
        first_life.report(device, key, encode(update), num_samples=samples, loss=loss)

    # When the second node is restarted and the last report arrives
    second_life = Harness(first_life.store, first_life.clock)
    device, update, samples, loss = reports[3]
    assert second_life.report(
        device, keys[first_life][3], encode(update), num_samples=samples, loss=loss
    ) == ("accepted")

    # Then both closed the round with the same figures and the very same model
    resumed, straight = second_life.store.round(1), uninterrupted.store.round(1)
    assert (resumed.status, resumed.samples, resumed.loss) == (
        straight.status,
        straight.samples,
        straight.loss,
    )
    for name, tensor in uninterrupted.weights(straight.checkpoint_key).items():
        assert torch.equal(second_life.weights(resumed.checkpoint_key)[name], tensor)


def test_a_restarted_node_folds_its_reports_again_in_the_order_they_arrived() -> None:
    # Given twenty reports of random updates (whose float32 partial sums round differently in another
    # order), taken by a node that runs the round through and by one restarted before the last
    generator = torch.Generator().manual_seed(7)
    updates = [
        {name: torch.randn(shape, generator=generator) / 10 for name, shape in SIGNATURE.shapes.items()}
        for _ in range(20)
    ]
    config = {"min_reports": 20, "max_reports": 20, "max_report_share": 1.0}
    uninterrupted, first_life = Harness(**config), Harness(**config)
    keys = {
        harness: [harness.admit(f"phone-{i}") for i in range(20)] for harness in (uninterrupted, first_life)
    }
    # reports arrive in the reverse of the order their request keys sort in
    order = sorted(range(20), key=lambda i: keys[first_life][i], reverse=True)
    for harness, reports in ((uninterrupted, order), (first_life, order[:-1])):
        for i in reports:
            harness.clock.advance(1.0)
            harness.report(f"phone-{i}", keys[harness][i], encode(updates[i]), num_samples=100 + i)

    # When the second node is restarted and the last report arrives
    second_life = Harness(first_life.store, first_life.clock)
    last = order[-1]
    second_life.report(f"phone-{last}", keys[first_life][last], encode(updates[last]), num_samples=100 + last)

    # Then both trained the very same model, to the last bit
    resumed, straight = second_life.store.round(1), uninterrupted.store.round(1)
    for name, tensor in uninterrupted.weights(straight.checkpoint_key).items():
        assert torch.equal(second_life.weights(resumed.checkpoint_key)[name], tensor), name


def test_a_round_whose_aggregate_is_not_finite_fails_and_the_previous_model_stays() -> None:
    # Given a round whose tally holds a non-finite sum, which no accepted report can cause: here it is
    # crafted, to prove the last line of defence
    harness = Harness(rounds=2, min_reports=1, max_reports=2, max_round_attempts=2)
    harness.report("phone-1", harness.admit("phone-1"), encode(delta(1.0)))
    harness.node._tally.fedavg.add(delta(math.inf), 1)

    # When its deadline passes
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()

    # Then the attempt failed saying why, no checkpoint was written, and the job still trains the
    # initial model in a fresh attempt
    round_one, job = harness.store.round(1), harness.store.job()
    ((failure),) = round_one.failures
    assert failure.reason == "the aggregate is not finite (tensor '0.bias' holds NaN or inf)"
    assert (round_one.status, round_one.attempt, round_one.checkpoint_key) == (RoundStatus.OPEN, 2, None)
    assert (job.status, job.current_round, job.global_weights_key) == (
        JobStatus.RUNNING,
        1,
        INITIAL_WEIGHTS_KEY,
    )
    answer = harness.cycle("phone-2")
    assert isinstance(answer, CycleAccepted)
    assert answer.model_url == harness.store.model_url(INITIAL_WEIGHTS_KEY)
    # And the next attempt aggregates normally from that model
    harness.report("phone-2", answer.request_key, encode(delta(1.0)))
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()
    _moved_by(harness.weights(checkpoint_key(JOB_ID, 1)), 1.0)


# -- closing rounds ----------------------------------------------------------------------------------


def test_at_the_deadline_a_round_with_its_quorum_is_aggregated_by_fedavg() -> None:
    # Given a round of at most three reports that has two: 30 samples of +1 and 10 of 0, and no
    # share cap (with two reports, the default one would weigh them equally)
    harness = Harness(rounds=2, min_reports=2, max_reports=3, max_report_share=1.0)
    first, second = harness.admit("phone-1"), harness.admit("phone-2")
    harness.report("phone-1", first, encode(delta(1.0)), num_samples=30, loss=0.2, accuracy=0.9)
    harness.report("phone-2", second, ZERO, num_samples=10, loss=0.6, accuracy=0.5)

    # When its deadline passes with no further report
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()

    # Then it closes with the sample-weighted mean step: every weight moves by 0.75
    round_one = harness.store.round(1)
    assert (round_one.status, round_one.devices, round_one.reports, round_one.samples) == (
        "completed",
        2,
        2,
        40,
    )
    # with the metrics weighted by samples too
    assert (round_one.loss, round_one.accuracy) == (pytest.approx(0.3), pytest.approx(0.8))
    assert round_one.closed_at == at_time(START + DEADLINE_SECONDS)
    assert round_one.checkpoint_key == checkpoint_key(JOB_ID, 1)
    _moved_by(harness.weights(round_one.checkpoint_key), 0.75)
    # And round 2 opens on that checkpoint, at the node's time
    job = harness.store.job()
    assert (job.current_round, job.round_attempt, job.global_weights_key) == (2, 1, round_one.checkpoint_key)
    assert harness.store.round(2).opened_at == at_time(START + DEADLINE_SECONDS)
    assert harness.cycle("phone-1").model_url == harness.store.model_url(round_one.checkpoint_key)


def test_a_round_closes_at_its_deadline_on_a_cycle_request_too() -> None:
    harness = Harness(rounds=2, min_reports=1, max_reports=2)
    harness.report("phone-1", harness.admit("phone-1"))
    harness.clock.advance(DEADLINE_SECONDS)

    answer = harness.cycle("phone-2")  # before any tick

    assert isinstance(answer, CycleAccepted)
    assert answer.round == 2
    assert harness.store.round(1).status == RoundStatus.COMPLETED


def test_a_round_closes_early_once_max_reports_have_arrived() -> None:
    harness = Harness(min_reports=1, max_reports=2)
    keys = [harness.admit("phone-1"), harness.admit("phone-2")]
    harness.clock.advance(5)

    harness.report("phone-1", keys[0])
    assert harness.store.round(1).status == RoundStatus.OPEN
    harness.report("phone-2", keys[1])

    round_one = harness.store.round(1)
    assert (round_one.status, round_one.reports, round_one.closed_at) == ("completed", 2, at_time(START + 5))


def test_a_deadline_without_quorum_fails_the_attempt_and_retries_keeping_its_reports() -> None:
    # Given a round that needs two reports, has one (+1 on 30 samples), and a device that never reported
    harness = Harness(rounds=2, min_reports=2, max_reports=2, max_round_attempts=3, max_report_share=1.0)
    reported, silent = harness.admit("phone-1"), harness.admit("phone-2")
    assert harness.report("phone-1", reported, encode(delta(1.0)), num_samples=30) == "accepted"

    # When its deadline passes
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()

    # Then the attempt failed, saying why, and attempt 2 is open from now
    round_one, job = harness.store.round(1), harness.store.job()
    assert (round_one.status, round_one.attempt) == (RoundStatus.OPEN, 2)
    ((failure),) = round_one.failures
    assert (failure.attempt, failure.failed_at) == (1, at_time(START + DEADLINE_SECONDS))
    assert failure.reason == "quorum not met by the deadline: 1 of 2 reports needed"
    assert round_one.opened_at == at_time(START + DEADLINE_SECONDS)
    assert (job.status, job.round_attempt) == (JobStatus.RUNNING, 2)
    # And the accepted report is kept: its device is not asked again, and a replay is a duplicate
    again = harness.cycle("phone-1")
    assert isinstance(again, CycleRejected)
    assert "reported for this round already" in again.reason
    assert harness.report("phone-1", reported, encode(delta(1.0)), num_samples=30) == "duplicate"
    assert harness.slots(1, 2) == {"phone-1": ParticipationStatus.REPORTED}
    # And the silent device's slot is released: its old key is unknown, and it gets a new one
    with pytest.raises(NotFound):
        harness.report("phone-2", silent)
    fresh = harness.admit("phone-2")
    assert fresh != silent

    # When that device reports in attempt 2 (0 on 10 samples)
    assert harness.report("phone-2", fresh, ZERO, num_samples=10) == "accepted"

    # Then the round completes with both reports, each counted once: every weight moves by 0.75
    round_one = harness.store.round(1)
    assert (round_one.status, round_one.reports, round_one.samples) == (RoundStatus.COMPLETED, 2, 40)
    _moved_by(harness.weights(round_one.checkpoint_key), 0.75)


def test_the_last_attempt_failing_fails_the_job_with_a_reason() -> None:
    # Given a job whose round 1 may be tried twice, and a device admitted to the second attempt
    harness = Harness(rounds=2, min_reports=1, max_reports=1, max_round_attempts=2)
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()
    key = harness.admit("phone-1")

    # When the second deadline passes with no report
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()

    # Then the job failed and says which round failed and why
    job, round_one = harness.store.job(), harness.store.round(1)
    assert job.status == JobStatus.FAILED
    assert (
        job.status_reason == "round 1 failed 2 times: quorum not met by the deadline: 0 of 1 reports needed"
    )
    assert job.trained_weights_key is None
    assert (round_one.status, round_one.devices) == (RoundStatus.FAILED, 1)  # the last attempt's cohort
    assert round_one.closed_at == at_time(START + 2 * DEADLINE_SECONDS)
    assert [f.attempt for f in round_one.failures] == [1, 2]
    assert harness.node.finished.is_set()
    # And devices are told it is over
    answer = harness.cycle("phone-2")
    assert isinstance(answer, CycleRejected)
    assert (answer.status, answer.reason, answer.retry_after) == ("finished", "the job is failed", None)
    with pytest.raises(Conflict, match="the job is failed"):
        harness.report("phone-1", key)


def test_rounds_advance_until_the_job_completes_with_a_checkpoint_per_round() -> None:
    # Given a job of three rounds, each closed by one report
    harness = Harness(rounds=3, min_reports=1, max_reports=1)

    # When each round a device reports a step of +1
    for number in (1, 2, 3):
        answer = harness.cycle(f"phone-{number}")
        assert isinstance(answer, CycleAccepted)
        assert answer.round == number
        expected_model = INITIAL_WEIGHTS_KEY if number == 1 else checkpoint_key(JOB_ID, number - 1)
        assert answer.model_url == harness.store.model_url(expected_model)
        harness.clock.advance(1)
        assert harness.report(f"phone-{number}", answer.request_key, encode(delta(1.0))) == "accepted"

    # Then the job completed, its trained model is the last checkpoint, and each round kept its own
    job = harness.store.job()
    assert (job.status, job.status_reason) == (JobStatus.COMPLETED, "trained for 3 rounds")
    assert job.trained_weights_key == checkpoint_key(JOB_ID, 3)
    assert job.updated_at == at_time(START + 3)
    for number in (1, 2, 3):
        assert harness.store.round(number).checkpoint_key == checkpoint_key(JOB_ID, number)
        _moved_by(harness.weights(checkpoint_key(JOB_ID, number)), float(number))
    assert harness.node.finished.is_set()
    assert harness.cycle("late").status == "finished"


# -- restart -----------------------------------------------------------------------------------------


def test_a_restarted_node_resumes_the_open_round_without_losing_reports() -> None:
    # Given a round that needs two reports, one of which the node has accepted: 30 samples of +1
    first_life = Harness(min_reports=2, max_reports=2, max_report_share=1.0)
    early, late = first_life.admit("early"), first_life.admit("late")
    first_life.report("early", early, encode(delta(1.0)), num_samples=30)

    # When a new node starts over the same store
    clock = first_life.clock
    clock.advance(10)
    second_life = Harness(first_life.store, clock)

    # Then the replayed early report is a duplicate and the late device's slot still works
    assert second_life.report("early", early, encode(delta(1.0)), num_samples=30) == "duplicate"
    retry = second_life.cycle("late")
    assert isinstance(retry, CycleAccepted)
    assert retry.request_key == late
    assert retry.deadline == START + DEADLINE_SECONDS  # the same round, not a new one
    assert second_life.report("late", late, ZERO, num_samples=10) == "accepted"

    # And the aggregate weighs both reports, the one folded again from the store included
    round_one = second_life.store.round(1)
    assert (round_one.status, round_one.reports, round_one.samples) == ("completed", 2, 40)
    _moved_by(second_life.weights(round_one.checkpoint_key), 0.75)


def test_a_restarted_node_resumes_a_retried_attempt() -> None:
    first_life = Harness(min_reports=1, max_reports=2, max_round_attempts=2)
    first_life.clock.advance(DEADLINE_SECONDS)
    first_life.node.tick()
    key = first_life.admit("phone-1")

    second_life = Harness(first_life.store, first_life.clock)

    answer = second_life.cycle("phone-1")
    assert isinstance(answer, CycleAccepted)
    assert answer.request_key == key
    assert answer.deadline == START + 2 * DEADLINE_SECONDS


def test_a_node_started_for_an_ended_job_runs_no_round() -> None:
    ended = Harness(rounds=1, min_reports=1, max_reports=1)
    ended.report("phone-1", ended.admit("phone-1"))

    again = Harness(ended.store, ended.clock)

    assert again.node.finished.is_set()
    assert again.cycle("phone-2").status == "finished"
    assert again.store.round(2) is None


# -- killed between two writes -------------------------------------------------------------------------


def _reporting_round(store, *, clock: FakeClock | None = None) -> tuple[Harness, dict[str, str]]:
    """A node over ``store`` whose round 1 has taken two reports: +1 on 30 samples and 0 on 10."""
    harness = Harness(store, clock)
    keys = {device: harness.admit(device) for device in ("phone-1", "phone-2")}
    harness.report("phone-1", keys["phone-1"], encode(delta(1.0)), num_samples=30)
    return harness, keys


def test_a_node_killed_between_completing_a_round_and_opening_the_next_keeps_the_rounds_result() -> None:
    # Given a node that dies once round 1 is recorded completed, before the job advances to round 2
    store = memory_store(rounds=2, min_reports=2, max_reports=2, round_deadline_seconds=DEADLINE_SECONDS)
    first_life, keys = _reporting_round(mortal := Mortal(store))
    mortal.die_at("advance")
    with pytest.raises(NodeKilled):
        first_life.report("phone-2", keys["phone-2"], ZERO, num_samples=10)
    assert (store.round(1).status, store.job().current_round) == (RoundStatus.COMPLETED, 1)

    # When a new node starts over the same store
    second_life = Harness(store, first_life.clock)

    # Then round 1 keeps its result, and round 2 trains its checkpoint
    round_one, job = store.round(1), store.job()
    assert (round_one.status, round_one.reports, round_one.samples) == (RoundStatus.COMPLETED, 2, 40)
    assert (job.current_round, job.round_attempt, job.global_weights_key) == (2, 1, checkpoint_key(JOB_ID, 1))
    assert store.round(2).status == RoundStatus.OPEN
    answer = second_life.cycle("phone-3")
    assert (answer.round, answer.model_url) == (2, store.model_url(checkpoint_key(JOB_ID, 1)))
    # And the reports of round 1 are not taken again
    with pytest.raises(NotFound):
        second_life.report("phone-2", keys["phone-2"])


def test_a_node_killed_after_its_last_round_completed_completes_the_job() -> None:
    store = memory_store(rounds=1, min_reports=2, max_reports=2, round_deadline_seconds=DEADLINE_SECONDS)
    first_life, keys = _reporting_round(mortal := Mortal(store))
    mortal.die_at("finish")
    with pytest.raises(NodeKilled):
        first_life.report("phone-2", keys["phone-2"], ZERO, num_samples=10)

    second_life = Harness(store, first_life.clock)

    job = store.job()
    assert (job.status, job.trained_weights_key) == (JobStatus.COMPLETED, checkpoint_key(JOB_ID, 1))
    assert second_life.node.finished.is_set()
    assert store.round(2) is None


@pytest.mark.parametrize("killed_at", ["carry_reports", "retry", "open_round"])
def test_a_node_killed_while_retrying_a_round_resumes_the_retry_with_its_reports(killed_at: str) -> None:
    # Given a node that dies while moving round 1 from its failed attempt 1 to attempt 2
    store = memory_store(
        rounds=1, min_reports=2, max_reports=2, round_deadline_seconds=DEADLINE_SECONDS, max_report_share=1.0
    )
    first_life, _ = _reporting_round(mortal := Mortal(store))
    mortal.die_at(killed_at)
    first_life.clock.advance(DEADLINE_SECONDS)
    with pytest.raises(NodeKilled):
        first_life.node.tick()

    # When a new node starts over the same store
    second_life = Harness(store, first_life.clock)

    # Then attempt 2 is open, its failure recorded once, and the accepted report is carried into it
    round_one = store.round(1)
    assert (round_one.status, round_one.attempt, store.job().round_attempt) == (RoundStatus.OPEN, 2, 2)
    assert [failure.attempt for failure in round_one.failures] == [1]
    assert second_life.slots(1, 2) == {"phone-1": ParticipationStatus.REPORTED}
    # And one more report completes the round with both, each counted once
    second_life.report("phone-3", second_life.admit("phone-3"), ZERO, num_samples=10)
    round_one = store.round(1)
    assert (round_one.status, round_one.reports, round_one.samples) == (RoundStatus.COMPLETED, 2, 40)
    _moved_by(second_life.weights(round_one.checkpoint_key), 0.75)


def test_a_node_killed_after_the_final_attempt_failed_fails_the_job() -> None:
    store = memory_store(min_reports=2, max_reports=2, max_round_attempts=1)
    first_life, _ = _reporting_round(mortal := Mortal(store))
    mortal.die_at("finish")
    first_life.clock.advance(DEADLINE_SECONDS)
    with pytest.raises(NodeKilled):
        first_life.node.tick()

    second_life = Harness(store, first_life.clock)

    job = store.job()
    assert (job.status, store.round(1).status) == (JobStatus.FAILED, RoundStatus.FAILED)
    assert job.status_reason == (
        "round 1 failed 1 times: quorum not met by the deadline: 1 of 2 reports needed"
    )
    assert second_life.node.finished.is_set()


def test_a_restarted_node_fails_an_attempt_whose_deadline_passed_while_it_was_down() -> None:
    first_life, _ = _reporting_round(memory_store(min_reports=2, max_reports=2, max_round_attempts=2))
    first_life.clock.advance(DEADLINE_SECONDS + 5)

    Harness(first_life.store, first_life.clock)

    round_one = first_life.store.round(1)
    assert (round_one.attempt, [f.attempt for f in round_one.failures]) == (2, [1])
    assert round_one.opened_at == at_time(START + DEADLINE_SECONDS + 5)


# -- what became of a report ---------------------------------------------------------------------------


def _fate(harness: Harness, device_id: str, key: str, round_number: int = 1, attempt: int = 1) -> tuple:
    fate = harness.node.report_fate(device_id, DATASET_ID, key, round_number, attempt)
    return fate.status, fate.reason


def test_a_device_learns_its_report_is_pending_then_counted() -> None:
    # Given a report accepted in attempt 1 of a round that then misses its quorum
    harness = Harness(rounds=2, min_reports=2, max_reports=2)
    early, never = harness.admit("early"), harness.admit("never")
    harness.report("early", early)
    assert _fate(harness, "early", early)[0] == "pending"
    assert _fate(harness, "never", never) == (
        "not_received",
        "no report arrived under this key; send it before the deadline",
    )
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()

    # When the retried attempt completes the round
    assert _fate(harness, "early", early) == ("pending", "held for round 1, attempt 2, which is still open")
    harness.report("late", harness.admit("late"))

    # Then the early report was counted in round 1; the silent device's key took no report
    assert _fate(harness, "early", early) == ("counted", "counted in round 1, with 2 reports in all")
    assert _fate(harness, "never", never)[0] == "not_received"


def test_a_device_learns_its_report_was_discarded_when_the_round_failed_for_good() -> None:
    harness = Harness(min_reports=2, max_reports=2, max_round_attempts=2)
    key = harness.admit("phone-1")
    harness.report("phone-1", key)
    for _ in range(2):
        harness.clock.advance(DEADLINE_SECONDS)
        harness.node.tick()

    status, reason = _fate(harness, "phone-1", key)

    assert status == "discarded"
    assert reason == (
        "round 1 failed 2 times: quorum not met by the deadline: 1 of 2 reports needed; "
        "its reports count in no model"
    )


def test_only_the_device_a_key_was_issued_to_learns_its_fate() -> None:
    harness = Harness(min_reports=2, max_reports=2)
    key = harness.admit("phone-1")
    harness.report("phone-1", key)

    with pytest.raises(NotFound):
        harness.node.report_fate("thief", DATASET_ID, key, 1, 1)
    with pytest.raises(NotFound):
        harness.node.report_fate("phone-1", DATASET_ID, key, 1, 2)
    with pytest.raises(Forbidden):
        harness.node.report_fate("phone-1", "another-app", key, 1, 1)


# -- device updates once their round is checkpointed ---------------------------------------------------


def test_a_rounds_updates_are_deleted_once_its_checkpoint_is_written() -> None:
    # Given a round whose first attempt took one report and failed, and whose second completes it
    harness = Harness(rounds=2, min_reports=2, max_reports=2)
    harness.report("phone-1", harness.admit("phone-1"))
    harness.clock.advance(DEADLINE_SECONDS)
    harness.node.tick()
    harness.report("phone-2", harness.admit("phone-2"))
    assert harness.store.round(1).status == RoundStatus.COMPLETED

    # When a device reports in round 2, which is still open
    key = harness.admit("phone-3")
    harness.report("phone-3", key)

    # Then no update of round 1 is kept, of either attempt; round 2's is, until its round closes
    assert harness.store.update_keys() == [update_key(JOB_ID, 2, 1, key)]
    assert harness.weights(checkpoint_key(JOB_ID, 1))  # the checkpoint stays


def test_a_job_that_asks_for_audit_retention_keeps_every_update() -> None:
    harness = Harness(rounds=1, min_reports=1, max_reports=1, retain_updates=True)
    key = harness.admit("phone-1")

    harness.report("phone-1", key)

    assert harness.store.job().status == JobStatus.COMPLETED
    assert harness.store.update_keys() == [update_key(JOB_ID, 1, 1, key)]


def test_failing_to_delete_updates_is_logged_and_the_round_stands(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(rounds=2, min_reports=1, max_reports=1)

    def unavailable(round_number: int) -> int:
        raise RuntimeError("S3 unavailable")

    monkeypatch.setattr(harness.store, "delete_updates", unavailable)

    harness.report("phone-1", harness.admit("phone-1"))

    assert "the updates of round 1 were not deleted" in caplog.text
    assert harness.store.round(1).status == RoundStatus.COMPLETED
    assert harness.store.job().current_round == 2
    assert len(harness.store.update_keys()) == 1  # the bucket's expiry rule is the backstop


# -- announcing the end ------------------------------------------------------------------------------


def _completed() -> Harness:
    harness = Harness(rounds=1, min_reports=1, max_reports=1)
    harness.report("phone-1", harness.admit("phone-1"))
    assert harness.node.finished.is_set()
    return harness


def test_announce_queues_the_owners_email_and_the_evaluation_once() -> None:
    harness = _completed()

    harness.node.announce()

    (notified,) = harness.store.owner_notifications
    (evaluated,) = harness.store.evaluation_requests
    for job in (notified, evaluated):
        assert (job.status, job.trained_weights_key) == (JobStatus.COMPLETED, checkpoint_key(JOB_ID, 1))


@pytest.mark.parametrize("failing", ["notify_owner", "request_evaluation"])
def test_a_failing_announcement_never_changes_the_outcome(
    failing: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a completed job whose notification or evaluation cannot be queued
    harness = _completed()

    def broken(job) -> None:
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr(harness.store, failing, broken)

    # When the node announces the end
    harness.node.announce()

    # Then the failure is logged, the other announcement still goes out, and the job stands
    assert "was not queued" in caplog.text
    assert len(harness.store.owner_notifications) + len(harness.store.evaluation_requests) == 1
    assert harness.store.job().status == JobStatus.COMPLETED
    assert harness.node.job.status == JobStatus.COMPLETED
