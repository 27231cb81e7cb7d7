"""Orchestrator, FL node and devices over real HTTP, against the emulator: what only the whole
platform can show. The node's rules are tested at its own layer: tests/unit/test_federated_node.py
(rounds, over the in-memory store) and tests/unit/test_node_http.py (its HTTP API, in process)."""

from __future__ import annotations

import math
import time

import httpx
import pytest
import torch

from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import TrainingJobRecord
from cohort.domain.weights import TensorSignature, decode, encode, load_into
from cohort.federated.device import DeviceClient
from cohort.federated.simulator import simulate
from cohort.federated.training import accuracy
from cohort.local.platform import PlatformState

from .scenario import TINY_MLP, Device, Setting, wait_for_job

pytestmark = pytest.mark.usefixtures("platform")


def _zero_delta() -> dict[str, torch.Tensor]:
    return TensorSignature.of(parse_architecture(TINY_MLP).build()).zeros()


def test_devices_train_a_model_that_the_owner_downloads(platform: PlatformState, setting: Setting) -> None:
    # Given a job of 3 rounds on 4 devices with non-IID shards
    job = setting.start(rounds=3, min_reports=3, max_reports=4, round_deadline_seconds=30)
    train, test = digits.load()

    # When the simulated devices take part until it ends
    result = simulate(platform.orchestrator_url, setting.api_key, job["job_id"], train, 4, max_seconds=120)
    job = wait_for_job(setting.scientist, job["job_id"], {"completed", "failed"})

    # Then every round closed with reports and metrics, and the model learned
    assert result.errors == []
    assert job["status"] == "completed", job["status_reason"]
    assert [r["round"] for r in job["rounds"]] == [1, 2, 3]
    assert all(r["status"] == "completed" and r["reports"] >= 3 for r in job["rounds"])
    assert all(0 <= r["accuracy"] <= 1 and math.isfinite(r["loss"]) for r in job["rounds"])
    model = parse_architecture(TINY_MLP).build()
    load_into(
        model, decode(setting.scientist.download_trained_model(job["job_id"]), TensorSignature.of(model))
    )
    assert accuracy(model, test) > 0.5  # ten classes: chance is 0.1


def test_a_device_whose_node_has_shut_down_learns_that_the_job_ended(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a one-round job that a first device completes, and a second device
    # that saw the job open but comes back only after the node has shut down
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    late = DeviceClient(platform.orchestrator_url, setting.api_key, "late", digits.load()[0])
    listing = next(j for j in late.open_jobs() if j["job_id"] == job["job_id"])
    first = Device(platform, setting.api_key, "first")
    slot = first.cycle(listing["node_url"]).json()
    first.report(listing["node_url"], slot["request_key"], encode(_zero_delta()))
    wait_for_job(setting.scientist, job["job_id"], {"completed"})
    _wait_until_unreachable(listing["node_url"])

    # When the late device takes part
    stats = late.participate(listing, max_seconds=30)
    late.close()

    # Then it stops cleanly, told that the job ended, instead of failing
    assert stats.outcome == "the job has ended"
    assert stats.rounds_trained == 0


def _wait_until_unreachable(node_url: str, timeout: float = 30.0) -> None:
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        try:
            httpx.get(node_url, timeout=1.0)  # any answer at all means it is still up
        except httpx.TransportError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the node at {node_url} is still up after {timeout}s")


def test_the_open_round_shows_its_devices_and_reports_as_they_come(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a round that needs three reports, and two devices admitted to it
    job = setting.start(rounds=1, min_reports=3, max_reports=3, round_deadline_seconds=30)
    devices = [Device(platform, setting.api_key, f"live-{i}") for i in range(3)]
    node = devices[0].node_url(job["job_id"])
    slots = [device.cycle(node).json() for device in devices[:2]]

    # When one of them reports
    assert devices[0].report(node, slots[0]["request_key"], encode(_zero_delta())).status_code == 202

    # Then the round is still open, and its status counts two devices in and one report
    (open_round,) = setting.scientist.job(job["job_id"])["rounds"]
    assert (open_round["status"], open_round["devices"], open_round["reports"]) == ("open", 2, 1)
    assert (open_round["samples"], open_round["loss"]) == (0, None)  # written when it closes

    # And once a third device is in and all have reported, the closed round keeps its counts
    slots.append(devices[2].cycle(node).json())
    for device, slot in zip(devices[1:], slots[1:], strict=True):
        assert device.report(node, slot["request_key"], encode(_zero_delta())).status_code == 202
    (closed,) = wait_for_job(setting.scientist, job["job_id"], {"completed"})["rounds"]
    assert (closed["status"], closed["devices"], closed["reports"], closed["samples"]) == (
        "completed",
        3,
        3,
        30,
    )


def test_a_deadline_with_no_reports_fails_the_round_and_retries_it(setting: Setting) -> None:
    # Given a job whose rounds close after one second, and no device at all
    job = setting.start(
        rounds=2, min_reports=1, max_reports=2, round_deadline_seconds=1, max_round_attempts=2
    )

    # When the deadlines pass
    job = wait_for_job(setting.scientist, job["job_id"], {"failed"}, timeout=30)

    # Then both attempts of round 1 failed for want of a quorum, and the job says why
    assert "round 1 failed 2 times" in job["status_reason"]
    (round_one,) = job["rounds"]
    assert round_one["status"] == "failed"
    assert [f.split(":")[0] for f in round_one["failures"]] == ["attempt 1", "attempt 2"]
    assert all("0 of 1 reports" in f for f in round_one["failures"])

    # And the orchestrator releases the ended job's node registration
    give_up_at = time.monotonic() + 30
    while TrainingJobRecord.get(job["job_id"]).live_node and time.monotonic() < give_up_at:
        time.sleep(0.5)
    assert TrainingJobRecord.get(job["job_id"]).live_node is None


def test_devices_of_another_app_cannot_join(platform: PlatformState, setting: Setting, people) -> None:
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    outsider_dev = people.client(Group.APP_DEVELOPERS)
    other = outsider_dev.register_dataset("other-app", [{"name": "y", "type": "bool"}])
    outsider = Device(platform, outsider_dev.create_api_key(other["dataset_id"])["api_key"], "outsider")
    insider = Device(platform, setting.api_key, "insider")
    node = insider.node_url(job["job_id"])

    # The other app's devices do not see the job, and the node refuses them
    assert httpx.get(f"{platform.orchestrator_url}/v1/devices/jobs", headers=outsider.headers).json() == []
    assert outsider.cycle(node).status_code == 403


def _trained_minus_initial(setting: Setting, job_id: str) -> dict[str, torch.Tensor]:
    signature = TensorSignature.of(parse_architecture(TINY_MLP).build())
    trained = decode(setting.scientist.download_trained_model(job_id), signature)
    return {name: trained[name] - initial for name, initial in setting.initial_weights.items()}


def test_an_update_that_overflows_a_float32_sum_is_refused_and_the_next_model_is_finite(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a one-round job of two reports, and beside two honest devices one whose update holds a
    # single value of 3e38 with num_samples=2: folded into a float32 sum, it made the model infinite
    job = setting.start(rounds=1, min_reports=2, max_reports=2, cohort_size=3, round_deadline_seconds=30)
    honest = [Device(platform, setting.api_key, f"honest-{i}") for i in range(2)]
    attacker = Device(platform, setting.api_key, "attacker")
    node = attacker.node_url(job["job_id"])
    slots = [device.cycle(node).json() for device in [*honest, attacker]]
    hostile = _zero_delta()
    hostile["1.weight"][0, 0] = 3e38

    # When the attacker reports first
    refused = attacker.report(node, slots[2]["request_key"], encode(hostile), num_samples=2)

    # Then it is refused, told the norm and the job's bound
    assert refused.status_code == 422
    assert "max_update_norm" in str(refused.json()["detail"])
    # And once the honest devices report, the round closes on theirs, with a finite model that
    # moved by their step
    small = {name: torch.full_like(t, 0.01) for name, t in _zero_delta().items()}
    for device, slot in zip(honest, slots, strict=False):
        assert device.report(node, slot["request_key"], encode(small)).status_code == 202
    job = wait_for_job(setting.scientist, job["job_id"], {"completed", "failed"})
    assert job["status"] == "completed", job["status_reason"]
    assert job["rounds"][0]["reports"] == 2
    for step in _trained_minus_initial(setting, job["job_id"]).values():
        assert torch.isfinite(step).all()
        torch.testing.assert_close(step, torch.full_like(step, 0.01))


def test_one_device_claiming_the_most_samples_carries_no_more_than_the_share_cap(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a one-round job of ten reports, nine honest devices with about 180 samples whose updates
    # move nothing, and one whose update moves every weight by +1
    job = setting.start(rounds=1, min_reports=10, max_reports=10, round_deadline_seconds=30)
    bounds = job["server_config"]
    devices = [Device(platform, setting.api_key, f"phone-{i}") for i in range(10)]
    node = devices[0].node_url(job["job_id"])
    slots = [device.cycle(node).json() for device in devices]
    zero, ones = _zero_delta(), {name: torch.ones_like(t) for name, t in _zero_delta().items()}
    for i, (device, slot) in enumerate(zip(devices[:9], slots, strict=False)):
        assert device.report(node, slot["request_key"], encode(zero), num_samples=175 + i).status_code == 202

    # When the last one claims 10,000,000 samples
    attacker, slot = devices[9], slots[9]
    claimed_too_many = attacker.report(node, slot["request_key"], encode(ones), num_samples=10_000_000)

    # Then the claim is refused, naming the job's cap
    assert claimed_too_many.status_code == 422
    assert "max_samples_per_report" in str(claimed_too_many.json()["detail"])
    # And when it then claims the most the job allows, the report is taken
    claimed_the_cap = attacker.report(
        node, slot["request_key"], encode(ones), num_samples=bounds["max_samples_per_report"]
    )
    assert claimed_the_cap.status_code == 202
    job = wait_for_job(setting.scientist, job["job_id"], {"completed", "failed"})
    assert job["status"] == "completed", job["status_reason"]
    # And the model moved by the attacker's share of the round: at most the cap, though it claimed
    # most of the round's samples
    (closed,) = job["rounds"]
    assert bounds["max_samples_per_report"] / closed["samples"] > 0.8
    steps = torch.cat([step.flatten() for step in _trained_minus_initial(setting, job["job_id"]).values()])
    share = float(steps.mean())
    assert 0 < share <= bounds["max_report_share"] + 1e-6
    # And so the model's mean |w| grew by at most that share of the attacker's step
    initial = torch.cat([w.flatten() for w in setting.initial_weights.values()])
    assert float((initial + steps).abs().mean()) <= float(initial.abs().mean()) + share + 1e-6
