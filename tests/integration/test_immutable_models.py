"""Once committed, a model's weights cannot change: over real HTTP on the local platform.

The presigned upload URL stays valid for its lifetime after commit; it names only the upload's key,
which commit copied away from (sealed) and which nothing reads after.
"""

from __future__ import annotations

import httpx
import pytest
import torch

from cohort import storage
from cohort.catalogue import Bucket, Group
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import ModelRecord
from cohort.domain.weights import TensorSignature, decode, encode, trainable_state
from cohort.local.platform import PlatformState
from cohort.sdk import CohortClient
from tests.unit.onnx_models import cnn

from .scenario import TINY_MLP, Device, Setting, refusal, wait_for_job

GARBAGE = b"not safetensors at all, written after commit" * 100
QUICK = {"preset": "custom", "attacks": ["fgsm"], "epsilons_linf": [0.0, 0.1], "samples": 20, "steps": 1}
ONE_ROUND = {
    "rounds": 1,
    "min_reports": 1,
    "max_reports": 1,
    "round_deadline_seconds": 30,
    "max_round_attempts": 1,
}


def _committed(scientist: CohortClient, weights: dict[str, torch.Tensor]) -> tuple[str, str]:
    """A model created, uploaded and committed by hand; returns its id and its upload URL."""
    created = scientist._request("POST", "/v1/models", json={"name": "sealed-mlp", "architecture": TINY_MLP})
    _put(created["upload_url"], encode(weights)).raise_for_status()
    model_id = created["model"]["model_id"]
    assert scientist._request("POST", f"/v1/models/{model_id}/commit")["status"] == "ready"
    return model_id, created["upload_url"]


def _put(url: str, content: bytes) -> httpx.Response:
    return httpx.put(url, content=content, headers={"Content-Type": "application/octet-stream"})


def test_a_put_after_commit_changes_nothing_that_a_job_or_an_evaluation_reads(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a committed model, and its upload URL, still within its lifetime
    torch.manual_seed(3)
    weights = trainable_state(parse_architecture(TINY_MLP).build())
    model_id, upload_url = _committed(setting.scientist, weights)

    # When garbage is PUT to that URL after the commit (S3 takes it: the URL is valid)
    assert _put(upload_url, GARBAGE).status_code == 200

    # Then the model is still ready, and a job on it starts
    assert setting.scientist.model(model_id)["status"] == "ready"
    job = setting.scientist.start_training(
        model_id, setting.dataset_id, {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1}, ONE_ROUND
    )
    job = setting.scientist.wait_until_running(job["job_id"], timeout=120)
    # and the model its devices download is the committed one, byte for byte
    device = Device(platform, setting.api_key, "sealed-phone")
    node_url = device.node_url(job["job_id"])
    slot = device.cycle(node_url).json()
    signature = TensorSignature.of(parse_architecture(TINY_MLP).build())
    downloaded = decode(httpx.get(slot["model_url"]).content, signature)
    assert all(torch.equal(downloaded[name], weights[name]) for name in weights)
    # and, with a device that changes nothing, the job completes with exactly those weights
    assert device.report(node_url, slot["request_key"], encode(signature.zeros())).status_code == 202
    wait_for_job(setting.scientist, job["job_id"], {"completed"})
    trained = decode(setting.scientist.download_trained_model(job["job_id"]), signature)
    assert all(torch.equal(trained[name], weights[name]) for name in weights)
    # and the evaluator reads the committed weights too
    evaluation = setting.scientist.submit_evaluation(model_id, QUICK)
    done = setting.scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)
    assert done["status"] == "completed", done["status_reason"]


def test_a_second_commit_after_a_put_is_refused_and_changes_nothing(setting: Setting) -> None:
    # Given a committed model whose upload URL then received other weights
    torch.manual_seed(4)
    weights = trainable_state(parse_architecture(TINY_MLP).build())
    model_id, upload_url = _committed(setting.scientist, weights)
    sealed = ModelRecord.get(model_id)
    other = {name: torch.zeros_like(tensor) for name, tensor in weights.items()}
    assert _put(upload_url, encode(other)).status_code == 200

    # When the model is committed again
    refused = refusal(lambda: setting.scientist._request("POST", f"/v1/models/{model_id}/commit"))

    # Then it is refused, and the model still names the same sealed weights, intact
    assert refused.status == 409
    assert "create a new model" in refused.detail
    after = ModelRecord.get(model_id)
    assert (after.weights_key, after.weights_sha256) == (sealed.weights_key, sealed.weights_sha256)
    assert storage.get_bytes(
        Bucket.MODELS, after.weights_key, max_bytes=1_000_000, sha256=after.weights_sha256
    ) == encode(weights)


@pytest.mark.parametrize("damage", ["overwritten", "deleted"])
def test_weights_damaged_in_storage_give_409_and_no_job_or_evaluation(setting: Setting, damage: str) -> None:
    # Given a committed model whose sealed weights were then damaged in storage, past the API (as an
    # operator's mistake or a compromised role would)
    record = ModelRecord.get(setting.model_id)
    if damage == "overwritten":
        storage.put_bytes(Bucket.MODELS, record.weights_key, GARBAGE)
    else:
        storage.delete(Bucket.MODELS, record.weights_key)

    # When the scientist starts a job or an evaluation on it
    job = refusal(lambda: setting.start(**ONE_ROUND))
    evaluation = refusal(lambda: setting.scientist.submit_evaluation(setting.model_id, QUICK))

    # Then both are refused with 409 saying what to do, never a 500, and nothing was created
    for refused in (job, evaluation):
        assert refused.status == 409
        assert "create the model again" in refused.detail
    assert setting.scientist.jobs() == []
    assert setting.scientist.evaluations() == []


def test_an_onnx_import_is_sealed_at_commit(people) -> None:
    # Given an ONNX model imported and committed
    scientist = people.client(Group.SCIENTISTS)
    source = cnn()
    created = scientist._request("POST", "/v1/models/imports", json={"name": "sealed-onnx", "format": "onnx"})
    _put(created["upload_url"], source).raise_for_status()
    model_id = created["model"]["model_id"]
    assert scientist._request("POST", f"/v1/models/{model_id}/commit")["status"] == "ready"

    # When garbage is PUT to its upload URL after the commit
    assert _put(created["upload_url"], GARBAGE).status_code == 200

    # Then the file kept is the one converted, and the converted weights are those sealed
    record = ModelRecord.get(model_id)
    kept = storage.get_bytes(Bucket.MODELS, record.source_key, max_bytes=len(source))
    assert kept == source
    assert storage.sealed_sha256(Bucket.MODELS, record.weights_key) == record.weights_sha256
    # and the model is evaluated as any other
    evaluation = scientist.submit_evaluation(model_id, QUICK)
    done = scientist.wait_for_evaluation(evaluation["evaluation_id"], timeout=120, progress=False)
    assert done["status"] == "completed", done["status_reason"]
