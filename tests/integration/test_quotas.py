"""Quotas per scientist, over real HTTP on the local platform: past one, 429 and nothing created."""

from __future__ import annotations

import uuid

import torch

from cohort.catalogue import Group
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import EvaluationRecord, EvaluationStatus, ModelRecord
from cohort.domain.weights import TensorSignature, encode, trainable_state
from cohort.local.platform import PlatformState
from cohort.settings import get_settings

from .scenario import TINY_MLP, Device, Setting, refusal, wait_for_job

# Rounds that stay open while the test runs, and end on their own soon after it.
_OPEN_FOR_A_WHILE = {
    "rounds": 1,
    "min_reports": 1,
    "max_reports": 1,
    "round_deadline_seconds": 30,
    "max_round_attempts": 1,
}
_QUICK_EVALUATION = {
    "preset": "custom",
    "attacks": ["fgsm"],
    "epsilons_linf": [0.0, 0.1],
    "samples": 20,
    "steps": 1,
}


def test_a_scientist_at_the_training_quota_gets_429_until_a_job_ends(
    platform: PlatformState, setting: Setting, people
) -> None:
    # Given a scientist with as many training jobs running as the quota allows
    limit = get_settings().max_active_jobs_per_scientist
    started = [setting.start(**_OPEN_FOR_A_WHILE) for _ in range(limit)]

    # When they start one more
    refused = refusal(lambda: setting.start(**_OPEN_FOR_A_WHILE))

    # Then it is refused with 429, naming the quota, their count and how to raise it, and no job was made
    assert refused.status == 429
    assert "max_active_jobs_per_scientist" in refused.detail
    assert f"you have {limit} training jobs" in refused.detail
    assert "COHORT_MAX_ACTIVE_JOBS_PER_SCIENTIST" in refused.detail
    assert len(setting.scientist.jobs()) == limit

    # And another scientist is not held back by the first one's jobs
    other = people.client(Group.SCIENTISTS)
    model = other.create_model("other-mlp", TINY_MLP, trainable_state(parse_architecture(TINY_MLP).build()))
    quick = {**_OPEN_FOR_A_WHILE, "round_deadline_seconds": 1}
    client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1}
    assert other.start_training(model["model_id"], setting.dataset_id, client_config, quick)["job_id"]

    # When one of the first scientist's jobs completes (a device reports, which closes its round)
    device = Device(platform, setting.api_key, "quota-phone")
    node_url = device.node_url(started[0]["job_id"])
    slot = device.cycle(node_url).json()
    zero = TensorSignature.of(parse_architecture(TINY_MLP).build()).zeros()
    assert device.report(node_url, slot["request_key"], encode(zero)).status_code == 202
    wait_for_job(setting.scientist, started[0]["job_id"], {"completed"})

    # Then they may start a new one
    assert setting.start(**_OPEN_FOR_A_WHILE)["status"] in ("pending", "starting", "running")
    assert len(setting.scientist.jobs()) == limit + 1


def test_a_scientist_at_the_evaluation_quota_gets_429_until_one_ends(setting: Setting, people) -> None:
    # Given a scientist whose queue holds as many evaluations as the quota allows (written straight to
    # the table, with no message on the queue, so that no worker takes one while the test runs)
    limit = get_settings().max_queued_evaluations_per_scientist
    model = ModelRecord.get(setting.model_id)
    waiting = []
    for _ in range(limit):
        record = EvaluationRecord(
            uuid.uuid4().hex,
            owner_id=model.owner_id,
            model_id=model.model_id,
            weights_key=model.weights_key,
            status=EvaluationStatus.QUEUED,
            request=_QUICK_EVALUATION,
        )
        record.save()
        waiting.append(record)

    # When they submit one more
    refused = refusal(lambda: setting.scientist.submit_evaluation(setting.model_id, _QUICK_EVALUATION))

    # Then it is refused with 429, naming the quota and how to raise it, and nothing was queued
    assert refused.status == 429
    assert "max_queued_evaluations_per_scientist" in refused.detail
    assert f"you have {limit} evaluations queued or running" in refused.detail
    assert len(setting.scientist.evaluations()) == limit

    # And another scientist may still evaluate their own model
    other = people.client(Group.SCIENTISTS)
    torch.manual_seed(1)
    theirs = other.create_model("other-mlp", TINY_MLP, trainable_state(parse_architecture(TINY_MLP).build()))
    assert other.submit_evaluation(theirs["model_id"], _QUICK_EVALUATION)["status"] == "queued"

    # When one of the first scientist's evaluations ends
    waiting[0].update(actions=[EvaluationRecord.status.set(EvaluationStatus.COMPLETED)])

    # Then they may submit again
    assert setting.scientist.submit_evaluation(setting.model_id, _QUICK_EVALUATION)["status"] == "queued"
