"""Supervised FL nodes on the local platform, over real HTTP: a job never hangs on its node.

The supervisor's rules are tested in tests/unit/test_supervision.py and its writes in
test_supervisor.py; here real nodes are started, killed and relaunched by the real orchestrator.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
import torch

from cohort.cli import _show_fl_nodes
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import ModelRecord, RoundRecord, TrainingJobRecord, bind_tables
from cohort.domain.weights import TensorSignature, decode, encode
from cohort.local.platform import PlatformState
from cohort.settings import get_settings

from .scenario import TINY_MLP, Device, Setting

CLIENT_CONFIG = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1}


def _zero_delta() -> dict[str, torch.Tensor]:
    return TensorSignature.of(parse_architecture(TINY_MLP).build()).zeros()


def _wait_for(setting: Setting, job_id: str, done, what: str, timeout: float = 180.0) -> dict:
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        job = setting.scientist.job(job_id)
        if done(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} is {job['status']}, its node {job['node']}: not {what}")


def _assert_trained_moved_by(setting: Setting, job_id: str, step: float) -> None:
    """The job's trained model is its initial one with every weight moved by exactly ``step``."""
    signature = TensorSignature.of(parse_architecture(TINY_MLP).build())
    trained = decode(setting.scientist.download_trained_model(job_id), signature)
    for name, initial in setting.initial_weights.items():
        torch.testing.assert_close(trained[name], initial + step)


def _start(platform: PlatformState, setting: Setting, **server_config: object) -> httpx.Response:
    """POST /v1/jobs as the scientist, answered as it is."""
    return httpx.post(
        f"{platform.orchestrator_url}/v1/jobs",
        json={
            "model_id": setting.model_id,
            "dataset_id": setting.dataset_id,
            "client_config": CLIENT_CONFIG,
            "server_config": server_config,
        },
        headers=setting.scientist._http.headers,
        timeout=60,
    )


def test_starting_a_job_answers_before_its_node_is_up(platform: PlatformState, setting: Setting) -> None:
    # When a scientist starts a job
    answer = _start(platform, setting, rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)

    # Then the request is accepted at once: the job is starting and its node not launched yet
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] == "starting"
    assert (job["node"]["health"], job["node"]["launches"]) == ("waiting", 0)

    # And the supervisor brings the node up: the job runs, its node healthy after one launch
    job = _wait_for(
        setting,
        job["job_id"],
        lambda j: j["status"] == "running" and j["node"]["health"] == "healthy",
        "running with a healthy node",
    )
    assert job["node"]["launches"] == 1
    # and devices find it, with its node's URL
    device = Device(platform, setting.api_key, "early-bird")
    assert device.node_url(job["job_id"]).endswith(f"/jobs/{job['job_id']}")


def test_a_killed_node_is_relaunched_and_its_round_counts_every_report_once(
    platform: PlatformState, setting: Setting, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a round that needs three reports, two of which the node has accepted, and a third
    # device admitted to it that has not reported yet
    # (weighted by sample counts: the default share cap would weigh three reports equally)
    job = setting.start(
        rounds=1, min_reports=3, max_reports=3, round_deadline_seconds=300, max_report_share=1.0
    )
    job_id = job["job_id"]
    first, second, third = (Device(platform, setting.api_key, f"kill-{name}") for name in "abc")
    node = first.node_url(job_id)
    slots = [device.cycle(node).json() for device in (first, second, third)]
    ones = encode({name: torch.full_like(t, 1.0) for name, t in _zero_delta().items()})
    zeros = encode(_zero_delta())
    assert first.report(node, slots[0]["request_key"], ones, num_samples=30).status_code == 202
    assert second.report(node, slots[1]["request_key"], zeros, num_samples=10).status_code == 202

    # When its node process is killed mid-round
    bind_tables(get_settings())
    os.kill(int(TrainingJobRecord.get(job_id, consistent_read=True).node_ref), signal.SIGKILL)

    # Then the orchestrator relaunches it, saying why, and the job runs again
    job = _wait_for(
        setting,
        job_id,
        lambda j: (
            j["node"]["launches"] == 2 and j["status"] == "running" and j["node"]["health"] == "healthy"
        ),
        "relaunched",
    )
    assert "launch 1: its process exited with code -9" in job["node"]["detail"]
    # and `cohort status` shows the node healthy, on its second launch
    _show_fl_nodes(platform)
    (line,) = [line for line in capsys.readouterr().out.splitlines() if job_id in line]
    assert f"node healthy (launch 2 of {get_settings().max_node_launches}" in line
    # and devices find the new node through the listing
    relaunched = first.node_url(job_id)
    assert relaunched != node
    # where the first report replayed is a duplicate, and the third device's slot is still valid
    assert (
        first.report(relaunched, slots[0]["request_key"], ones, num_samples=30).json()["status"]
        == "duplicate"
    )
    receipt = third.report(relaunched, slots[2]["request_key"], zeros, num_samples=20)
    assert receipt.status_code == 202, receipt.text
    assert receipt.json()["status"] == "accepted"

    # And the job completes with each accepted report counted exactly once
    job = _wait_for(setting, job_id, lambda j: j["status"] in ("completed", "failed"), "ended")
    assert job["status"] == "completed", job["status_reason"]
    (round_one,) = job["rounds"]
    assert (round_one["reports"], round_one["samples"]) == (3, 60)
    # 30 samples of +1, 10 and 20 of 0: each weight moves by exactly 0.5
    _assert_trained_moved_by(setting, job_id, 0.5)


def test_a_node_killed_between_completing_a_round_and_opening_the_next_keeps_the_round(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a two-round job whose first round has completed with two reports of +1
    job_id = setting.start(rounds=2, min_reports=2, max_reports=2, round_deadline_seconds=300)["job_id"]
    devices = [Device(platform, setting.api_key, f"window-{name}") for name in "ab"]
    ones = encode({name: torch.full_like(t, 1.0) for name, t in _zero_delta().items()})

    def both_report() -> None:
        node = devices[0].node_url(job_id)
        for device in devices:
            slot = device.cycle(node).json()
            assert device.report(node, slot["request_key"], ones, num_samples=10).status_code == 202

    both_report()
    _wait_for(setting, job_id, lambda j: j["current_round"] == 2, "in round 2")

    # When its node is killed in the window after round 1 was recorded completed and before the job
    # moved on: the store is put back as such a kill leaves it (the job at round 1 on the initial
    # model, round 2 never opened), then the node, idle between reports, is killed
    bind_tables(get_settings())
    record = TrainingJobRecord.get(job_id, consistent_read=True)
    record.update(
        actions=[
            TrainingJobRecord.current_round.set(1),
            TrainingJobRecord.round_attempt.set(1),
            TrainingJobRecord.global_weights_key.set(ModelRecord.get(setting.model_id).weights_key),
        ]
    )
    RoundRecord.get(job_id, 2, consistent_read=True).delete()
    os.kill(int(record.node_ref), signal.SIGKILL)

    # Then the relaunched node goes on from round 1's result: round 1 stays completed with its reports
    job = _wait_for(
        setting,
        job_id,
        lambda j: j["node"]["launches"] == 2 and j["current_round"] == 2 and j["node"]["health"] == "healthy",
        "relaunched into round 2",
    )
    round_one = next(r for r in job["rounds"] if r["round"] == 1)
    assert (round_one["status"], round_one["reports"], round_one["samples"]) == ("completed", 2, 20)

    # And round 2 trains round 1's model: two more reports of +1 move each weight by exactly 2 in all
    both_report()
    job = _wait_for(setting, job_id, lambda j: j["status"] in ("completed", "failed"), "ended")
    assert job["status"] == "completed", job["status_reason"]
    _assert_trained_moved_by(setting, job_id, 2.0)


def test_a_node_that_cannot_start_fails_the_job_with_the_reason(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a model whose record no longer matches its sealed weights (one hidden unit more), so
    # that the API still starts its jobs but their node crashes at start, reading the weights
    bind_tables(get_settings())
    model = ModelRecord.get(setting.model_id)
    layers = model.architecture["layers"]
    layers[1] = {**layers[1], "out_features": 33}
    layers[3] = {**layers[3], "in_features": 33}
    model.update(actions=[ModelRecord.architecture.set({**model.architecture, "layers": layers})])

    # When a job of it is started
    answer = _start(platform, setting, rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)

    # Then the request is accepted, not answered 5xx while the node tries to start
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]

    # And after its allowed launches the job fails, saying how often and why
    job = _wait_for(setting, job_id, lambda j: j["status"] != "starting", "ended")
    limit = get_settings().max_node_launches
    assert job["status"] == "failed"
    assert f"launched {limit} times" in job["status_reason"]
    assert "exited with code" in job["status_reason"]
    assert (job["node"]["launches"], job["node"]["max_launches"]) == (limit, limit)
    # and its node is released, and devices no longer find the job
    job = _wait_for(setting, job_id, lambda j: j["node"]["health"] == "released", "released")
    device = Device(platform, setting.api_key, "too-late")
    listed = httpx.get(f"{platform.orchestrator_url}/v1/devices/jobs", headers=device.headers).json()
    assert job_id not in {entry["job_id"] for entry in listed}
