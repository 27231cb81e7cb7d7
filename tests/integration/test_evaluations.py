"""Robustness evaluations through the orchestrator's API, run by the local platform's evaluator."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.federated.simulator import simulate
from cohort.local.platform import PlatformState

from .scenario import Setting, refusal

pytest.importorskip("cohort.evaluation.engine")
pytestmark = pytest.mark.usefixtures("platform")

QUICK = {
    "preset": "custom",
    "attacks": ["fgsm", "pgd_linf"],
    "epsilons_linf": [0.0, 0.1, 0.3],
    "samples": 50,
    "steps": 3,
}


def test_the_owner_follows_an_evaluation_to_its_report(setting: Setting) -> None:
    # Given a scientist's committed model
    scientist = setting.scientist

    # When they submit an evaluation big enough to take a moment, and ask for its report at once
    spec = {**QUICK, "samples": 400, "steps": 20, "attacks": ["fgsm", "pgd_linf", "apgd_ce"]}
    evaluation = scientist.submit_evaluation(setting.model_id, spec)
    early = refusal(lambda: scientist.download_report(evaluation["evaluation_id"]))

    # Then the report is not there yet: 409
    assert evaluation["status"] == "queued"
    assert early.status == 409

    # When the evaluator has run it
    done = scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)

    # Then it completed with its headline numbers, and the owner downloads both reports
    assert done["status"] == "completed", done["status_reason"]
    assert done["progress"] == 1
    assert 0 <= done["summary"]["robust_accuracy"] <= done["summary"]["clean_accuracy"] <= 1
    report = json.loads(scientist.download_report(evaluation["evaluation_id"], "json"))
    assert report["samples"] == 400
    assert report["headline"]["robust_accuracy"] == pytest.approx(
        done["summary"]["robust_accuracy"], abs=1e-4
    )
    html = scientist.download_report(evaluation["evaluation_id"], "html").decode()
    assert html.startswith("<!doctype html>")
    assert "Robust accuracy vs ε" in html
    # and the outcome of each sample, which adds up to the report's numbers
    csv_text = scientist.download_report(evaluation["evaluation_id"], "csv").decode()
    samples = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(samples) == 400
    assert sum(row["clean_correct"] == "true" for row in samples) == report["clean"]["correct"]
    # and it is in their list
    assert evaluation["evaluation_id"] in {e["evaluation_id"] for e in scientist.evaluations()}


def test_another_scientist_sees_no_evaluation_and_cannot_evaluate_the_model(setting: Setting, people) -> None:
    # Given an evaluation of one scientist's model
    evaluation = setting.scientist.submit_evaluation(setting.model_id, QUICK)
    other = people.client(Group.SCIENTISTS)

    # When another scientist asks for it, its report, or an evaluation of the model
    refusals = [
        refusal(lambda: other.evaluation(evaluation["evaluation_id"])),
        refusal(lambda: other.download_report(evaluation["evaluation_id"])),
        refusal(lambda: other.submit_evaluation(setting.model_id, QUICK)),
    ]

    # Then each is 404, exactly as for something that does not exist
    assert [refusal.status for refusal in refusals] == [404, 404, 404]
    assert evaluation["evaluation_id"] not in {e["evaluation_id"] for e in other.evaluations()}


def test_app_developers_cannot_use_evaluations(setting: Setting, people) -> None:
    developer = people.client(Group.APP_DEVELOPERS)
    assert refusal(lambda: developer.submit_evaluation(setting.model_id, QUICK)).status == 403
    assert refusal(developer.evaluations).status == 403


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"attacks": ["deepfool"]}, "attacks"),
        ({"epsilons_linf": [0.0, 1.5]}, "epsilons_linf"),
        ({"samples": 20_000}, "samples"),
        ({"preset": "custom", "samples": 10_000, "steps": 200, "restarts": 2}, "gradient passes"),
        ({"steps": 50}, "preset to custom"),
        ({"epochs": 3}, "epochs"),
        ({"dataset": "evaluation-sets/someone-else/0123456789abcdef0123456789abcdef.safetensors"}, "dataset"),
    ],
)
def test_invalid_specs_are_refused_with_422(setting: Setting, spec: dict, where: str) -> None:
    refused = refusal(lambda: setting.scientist.submit_evaluation(setting.model_id, spec))
    assert refused.status == 422
    assert where in json.dumps(refused.detail)


def test_a_scientist_evaluates_on_a_set_they_uploaded(setting: Setting) -> None:
    # Given an evaluation set the scientist uploaded through the presigned URL
    _, test = digits.load()
    dataset = setting.scientist.upload_evaluation_set(test.inputs[:60], test.labels[:60])

    # When they evaluate their model on it
    evaluation = setting.scientist.submit_evaluation(setting.model_id, {**QUICK, "dataset": dataset})
    done = setting.scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)

    # Then it ran on their data
    assert done["status"] == "completed", done["status_reason"]
    assert (
        json.loads(setting.scientist.download_report(evaluation["evaluation_id"], "json"))["dataset"]
        == "uploaded"
    )


def test_an_evaluation_set_over_the_size_limit_gets_no_upload_url(setting: Setting) -> None:
    # On AWS the URL is also bound to the declared size (S3 checks it; the emulator does not),
    # and the evaluator reads at most the limit.
    refused = refusal(
        lambda: setting.scientist._request("POST", "/v1/evaluations/uploads", json={"size_bytes": 10**9})
    )
    assert refused.status == 422
    assert "at most" in refused.detail


def test_a_malformed_evaluation_set_fails_the_evaluation_with_the_reason(setting: Setting) -> None:
    # Given an uploaded set whose inputs are not scaled to [0, 1]
    dataset = setting.scientist.upload_evaluation_set(torch.full((20, 1, 8, 8), 16.0), torch.zeros(20))

    # When it is evaluated
    evaluation = setting.scientist.submit_evaluation(setting.model_id, {**QUICK, "dataset": dataset})
    done = setting.scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=60, progress=False)

    # Then the evaluation failed and says why
    assert done["status"] == "failed"
    assert "[0, 1]" in done["status_reason"]


def test_a_training_job_can_have_its_trained_model_evaluated(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a one-round job that asks for an evaluation once it completes
    client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1}
    server_config = {"rounds": 1, "min_reports": 2, "max_reports": 2, "round_deadline_seconds": 30}
    job = setting.scientist.start_training(
        setting.model_id, setting.dataset_id, client_config, server_config, evaluate_on_completion=QUICK
    )
    assert job["evaluation_id"] is None

    # When devices train it to completion
    train, _ = digits.load()
    simulate(platform.orchestrator_url, setting.api_key, job["job_id"], train, 2, max_seconds=60)
    job = setting.scientist.wait_for_job(job["job_id"], timeout=60, progress=False)

    # Then the trained model's evaluation runs, and names the job
    assert job["status"] == "completed", job["status_reason"]
    done = setting.scientist.wait_for_evaluation(job["evaluation_id"], timeout=120, progress=False)
    assert done["status"] == "completed", done["status_reason"]
    assert done["job_id"] == job["job_id"]
