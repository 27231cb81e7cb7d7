"""ONNX import through the orchestrator: upload, conversion in the sandbox at commit, then use."""

from __future__ import annotations

import httpx
import pytest

from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.federated.simulator import simulate
from cohort.local.platform import PlatformState
from tests.unit.onnx_models import CNN_LAYERS, EXPORTS, GraphBuilder, cnn

from .scenario import Setting, refusal

pytestmark = pytest.mark.usefixtures("platform")

QUICK = {
    "preset": "custom",
    "attacks": ["fgsm", "pgd_linf"],
    "epsilons_linf": [0.0, 0.1],
    "samples": 40,
    "steps": 3,
}


def _unsupported_file() -> bytes:
    graph = GraphBuilder(["batch", 1, 8, 8])
    graph.add("Flatten")
    graph.add("LeakyRelu", alpha=0.1)
    graph.add("Gemm", graph.weight("w", (10, 64)), transB=1)
    return graph.bytes(["batch", 10])


def test_an_imported_onnx_model_is_ready_in_the_platform_format_and_can_be_evaluated(people) -> None:
    # Given a scientist with an ONNX CNN for 8x8 digits
    scientist = people.client(Group.SCIENTISTS)

    # When they import it
    model = scientist.import_onnx_model("onnx-cnn", cnn())

    # Then it is ready, with the architecture the graph describes and what the conversion changed
    assert model["status"] == "ready"
    assert model["upload_format"] == "onnx"
    assert [layer["type"] for layer in model["architecture"]["layers"]] == CNN_LAYERS
    assert model["architecture"]["input_shape"] == [1, 8, 8]
    assert model["parameter_count"] == 40 + 8 + 650
    assert scientist.model(model["model_id"]) == model

    # and the evaluator attacks it like any other model
    evaluation = scientist.submit_evaluation(model["model_id"], QUICK)
    done = scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)
    assert done["status"] == "completed", done["status_reason"]


def _keras_cnn() -> bytes:
    """A Keras CNN for [batch, 8, 8, 1] with BatchNormalization, as tf2onnx exports it."""
    return (EXPORTS / "keras_cnn_flatten.onnx").read_bytes()


def test_a_keras_model_is_evaluated_on_digits_laid_out_as_it_takes_them(people) -> None:
    # Given a scientist's Keras CNN, which takes channels-last [batch, 8, 8, 1]
    scientist = people.client(Group.SCIENTISTS)

    # When they import it and evaluate it on the built-in digits
    model = scientist.import_onnx_model("keras-cnn", _keras_cnn())
    evaluation = scientist.submit_evaluation(model["model_id"], QUICK)
    done = scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)

    # Then it keeps its layout, and the evaluator fed it the digits in that layout
    assert model["architecture"]["input_shape"] == [8, 8, 1]
    assert model["architecture"]["layers"][0] == {"type": "Permute", "dims": [3, 1, 2]}
    assert done["status"] == "completed", done["status_reason"]


def test_devices_train_an_imported_keras_model_on_their_own_images(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a training job on an imported Keras CNN, which takes channels-last [batch, 8, 8, 1]
    model = setting.scientist.import_onnx_model("keras-cnn", _keras_cnn())
    client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1, "momentum": 0.9}
    server_config = {"rounds": 2, "min_reports": 2, "max_reports": 2, "round_deadline_seconds": 30}
    job = setting.scientist.start_training(
        model["model_id"], setting.dataset_id, client_config, server_config
    )

    # When devices holding channels-first digits take part until it ends
    result = simulate(
        platform.orchestrator_url, setting.api_key, job["job_id"], digits.load()[0], 2, max_seconds=90
    )

    # Then each laid its images out as the model takes them, and every round closed with their reports
    assert result.errors == []
    assert all(stats.rounds_trained == 2 for stats in result.stats)
    job = setting.scientist.job(job["job_id"])
    assert [(r["round"], r["status"], r["reports"]) for r in job["rounds"]] == [
        (1, "completed", 2),
        (2, "completed", 2),
    ]


def test_an_unsupported_file_is_refused_with_the_reason_and_changes_nothing(people) -> None:
    # Given an import whose upload uses an operator Cohort cannot import
    scientist = people.client(Group.SCIENTISTS)
    created = scientist._request("POST", "/v1/models/imports", json={"name": "leaky", "format": "onnx"})
    model_id = created["model"]["model_id"]
    httpx.put(created["upload_url"], content=_unsupported_file()).raise_for_status()

    # When it is committed
    refused = refusal(lambda: scientist._request("POST", f"/v1/models/{model_id}/commit"))

    # Then the refusal names the operator, and the model still awaits a file it can import
    assert refused.status == 422
    assert "LeakyRelu" in refused.detail
    still = scientist.model(model_id)
    assert (still["status"], still["architecture"]) == ("awaiting_upload", None)

    # When a supported file replaces it, the same import commits
    httpx.put(created["upload_url"], content=cnn()).raise_for_status()
    assert scientist._request("POST", f"/v1/models/{model_id}/commit")["status"] == "ready"
    # and a second commit is refused
    assert refusal(lambda: scientist._request("POST", f"/v1/models/{model_id}/commit")).status == 409


def test_a_commit_before_any_upload_says_nothing_was_uploaded(people) -> None:
    scientist = people.client(Group.SCIENTISTS)
    created = scientist._request("POST", "/v1/models/imports", json={"name": "empty", "format": "onnx"})

    refused = refusal(lambda: scientist._request("POST", f"/v1/models/{created['model']['model_id']}/commit"))

    assert refused.status == 404
    assert "nothing has been uploaded" in refused.detail


def test_imports_are_for_their_owner_and_for_scientists_only(setting: Setting, people) -> None:
    created = setting.scientist._request(
        "POST", "/v1/models/imports", json={"name": "mine", "format": "onnx"}
    )
    httpx.put(created["upload_url"], content=cnn()).raise_for_status()
    other = people.client(Group.SCIENTISTS)
    developer = people.client(Group.APP_DEVELOPERS)

    refusals = [
        refusal(lambda: other._request("POST", f"/v1/models/{created['model']['model_id']}/commit")),
        refusal(lambda: developer.import_onnx_model("theirs", cnn())),
        refusal(lambda: other._request("POST", "/v1/models/imports", json={"name": "x", "format": "keras"})),
    ]

    assert [refusal.status for refusal in refusals] == [404, 403, 422]
