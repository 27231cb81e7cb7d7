"""The evaluator worker against SQS, DynamoDB and S3 on moto, in this process.

The real attack engine runs on a tiny MLP and 50 digits with few steps; tests of
timing and failures replace it with slow or failing stand-ins.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
import torch

from cohort import aws, storage
from cohort.catalogue import Bucket, Queue
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import (
    EvaluationRecord,
    EvaluationStatus,
    JobStatus,
    ModelRecord,
    ModelStatus,
    TrainingJobRecord,
    UserRecord,
)
from cohort.domain.weights import encode, trainable_state
from cohort.evaluation import jobs
from cohort.services import evaluations
from cohort.settings import get_settings
from cohort.web.auth import Principal

from .functions import queued_notifications
from .scenario import TINY_MLP

engine = pytest.importorskip("cohort.evaluation.engine")
worker_module = pytest.importorskip("cohort.evaluation.worker")

SPEC = {
    "preset": "custom",
    "attacks": ["fgsm", "pgd_linf"],
    "epsilons_linf": [0.0, 0.1, 0.3],
    "samples": 50,
    "steps": 3,
}


def _scientist() -> Principal:
    user_id = uuid.uuid4().hex
    UserRecord(user_id, email=f"{user_id[:8]}@example.org", role="scientist").save()
    return Principal(user_id=user_id, email=f"{user_id[:8]}@example.org", groups=frozenset({"scientists"}))


def _model(owner: Principal, weights: bytes | None = None) -> str:
    """A committed model; ``weights`` replaces its file, as a corrupted or tampered one would."""
    torch.manual_seed(0)
    model_id = uuid.uuid4().hex
    key = f"models/{model_id}/initial.safetensors"
    storage.put_bytes(
        Bucket.MODELS, key, weights or encode(trainable_state(parse_architecture(TINY_MLP).build()))
    )
    ModelRecord(
        model_id,
        owner_id=owner.user_id,
        name="tiny-mlp",
        architecture=TINY_MLP,
        weights_key=key,
        parameter_count=2410,
        status=ModelStatus.READY,
    ).save()
    return model_id


def _submit(owner: Principal, model_id: str) -> str:
    request = evaluations.EvaluationRequest(model_id=model_id, spec=SPEC)
    return evaluations.submit(owner, request).evaluation_id


def _record(evaluation_id: str) -> EvaluationRecord:
    return EvaluationRecord.get(evaluation_id, consistent_read=True)


def _queue_url() -> str:
    name = get_settings().catalogue.queue(Queue.EVALUATIONS)
    return aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _messages_left() -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=_queue_url(),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _receive(visibility: int = 30) -> dict[str, Any]:
    (message,) = aws.client("sqs").receive_message(
        QueueUrl=_queue_url(), AttributeNames=["ApproximateReceiveCount"], VisibilityTimeout=visibility
    )["Messages"]
    return message


def _drain() -> None:
    sqs = aws.client("sqs")
    while messages := sqs.receive_message(QueueUrl=_queue_url(), MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=_queue_url(), ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def worker(account) -> Any:
    """A worker that does not wait on an empty queue; the queue starts empty."""
    _drain()
    return worker_module.EvaluationWorker(wait_seconds=0, visibility_seconds=30, progress_interval=0.2)


def test_a_successful_evaluation_stores_its_report_and_deletes_its_message(worker) -> None:
    # Given a scientist's evaluation of a committed model, queued
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner))
    assert _record(evaluation_id).status == EvaluationStatus.QUEUED

    # When the worker takes it
    assert worker.poll_once() == 1

    # Then it completed, with the headline numbers and the report in the reports bucket
    record = _record(evaluation_id)
    assert record.status == EvaluationStatus.COMPLETED, record.status_reason
    assert record.progress == 1
    assert 0 <= record.summary["clean_accuracy"] <= 1
    assert "robust_accuracy_pgd_linf" in record.summary
    report = json.loads(storage.get_bytes(Bucket.REPORTS, record.report_key, max_bytes=10_000_000))
    assert report["samples"] == 50
    assert {point["attack"] for point in report["curves"]} == {"fgsm", "pgd_linf"}
    html = storage.get_bytes(
        Bucket.REPORTS, jobs.report_key(evaluation_id, "report.html"), max_bytes=10_000_000
    ).decode()
    assert "data:image/png;base64," in html
    assert "tiny-mlp" in html
    assert storage.exists(Bucket.REPORTS, jobs.report_key(evaluation_id, "curve-linf.png"))
    # and the message is gone
    assert _messages_left() == 0
    # and the owner is told, with the HTML report attached
    (notification,) = queued_notifications()
    assert notification["kind"] == "evaluation_finished"
    assert notification["notification_id"] == f"evaluation-finished-{evaluation_id}"
    assert notification["to"] == owner.email
    assert notification["status"] == "completed"
    assert notification["attachments"][0]["key"] == jobs.report_key(evaluation_id, "report.html")


def test_a_malformed_model_file_fails_the_evaluation_at_once_with_the_reason(worker) -> None:
    # Given an evaluation of a model whose weights file is not safetensors
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner, weights=b"\x80\x04not a safetensors file, maybe a pickle"))

    # When the worker takes it, on its first receive
    worker.poll_once()

    # Then the evaluation failed, saying why, and the message is deleted: no retry could help
    record = _record(evaluation_id)
    assert record.status == EvaluationStatus.FAILED
    assert "not a readable safetensors file" in record.status_reason
    assert _messages_left() == 0
    (notification,) = queued_notifications()
    assert notification["status"] == "failed"
    assert "safetensors" in notification["reason"]


def test_a_transient_failure_is_retried_and_fails_the_evaluation_only_at_the_last_receive(
    worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an evaluation, and an engine that keeps failing for reasons outside the request
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner))

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(engine, "run_evaluation", broken)
    message = _receive()

    for receives in range(1, 5):
        # When the worker fails on the message's receives before the last
        worker.handle({**message, "Attributes": {"ApproximateReceiveCount": str(receives)}})
        # Then the evaluation waits for its retry, and the message stays for SQS to deliver again
        record = _record(evaluation_id)
        assert record.status == EvaluationStatus.QUEUED
        assert f"attempt {receives} of 5 failed" in record.status_reason
        assert _messages_left() == 1
        assert queued_notifications() == []

    # When it fails on the last receive
    worker.handle({**message, "Attributes": {"ApproximateReceiveCount": "5"}})

    # Then the evaluation failed with the reason, and the message is left for the dead-letter queue
    record = _record(evaluation_id)
    assert record.status == EvaluationStatus.FAILED
    assert "failed 5 times" in record.status_reason
    assert "illegal memory access" in record.status_reason
    assert _messages_left() == 1
    assert int(record.attempts) == 5
    aws.client("sqs").delete_message(QueueUrl=_queue_url(), ReceiptHandle=message["ReceiptHandle"])


def test_a_duplicate_message_runs_nothing_twice(worker, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an evaluation that has completed
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner))
    runs: list[str] = []
    real = engine.run_evaluation

    def counted(*args: object, **kwargs: object) -> object:
        runs.append("run")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_evaluation", counted)
    worker.poll_once()
    assert _record(evaluation_id).status == EvaluationStatus.COMPLETED
    queued_notifications()

    # When SQS delivers its message again
    aws.client("sqs").send_message(
        QueueUrl=_queue_url(), MessageBody=json.dumps({"evaluation_id": evaluation_id})
    )
    worker.poll_once()

    # Then nothing runs a second time, and the duplicate is deleted
    assert runs == ["run"]
    assert _messages_left() == 0
    assert queued_notifications() == []


def test_a_message_whose_evaluation_runs_elsewhere_is_left_alone(
    worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an evaluation another worker claimed a moment ago (its heartbeat is fresh)
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner))
    _record(evaluation_id).update(actions=[EvaluationRecord.status.set(EvaluationStatus.RUNNING)])
    monkeypatch.setattr(engine, "run_evaluation", lambda *_, **__: pytest.fail("ran twice"))

    # When a copy of its message arrives here
    message = _receive()
    worker.handle(message)

    # Then this worker does not run it, and leaves the message to the worker that holds it
    assert _record(evaluation_id).status == EvaluationStatus.RUNNING
    assert _messages_left() == 1
    aws.client("sqs").delete_message(QueueUrl=_queue_url(), ReceiptHandle=message["ReceiptHandle"])


def test_a_long_evaluation_keeps_its_message_hidden_and_reports_progress(
    account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose messages are hidden for only 1 s at a time, and an engine that takes 3 s
    _drain()
    worker = worker_module.EvaluationWorker(wait_seconds=0, visibility_seconds=1, progress_interval=0.2)
    owner = _scientist()
    evaluation_id = _submit(owner, _model(owner))
    real = engine.run_evaluation

    def slow(model: object, data: object, spec: object, *, progress: Any, **options: Any) -> object:
        for step in range(15):
            progress(step / 30)
            time.sleep(0.2)
        return real(model, data, spec, progress=progress, **options)

    monkeypatch.setattr(engine, "run_evaluation", slow)

    # When it runs, and another consumer polls the queue meanwhile
    running = threading.Thread(target=worker.poll_once)
    running.start()
    time.sleep(1.5)
    during = aws.client("sqs").receive_message(QueueUrl=_queue_url(), VisibilityTimeout=1).get("Messages", [])
    progress = float(_record(evaluation_id).progress)
    running.join(timeout=60)

    # Then the message stayed hidden past its visibility timeout, progress was written, and the run completed
    assert during == []
    assert 0 < progress < 1
    assert _record(evaluation_id).status == EvaluationStatus.COMPLETED
    assert _messages_left() == 0


def test_a_completed_job_queues_the_evaluation_it_asked_for_once(worker) -> None:
    # Given a completed training job that asked for its trained model to be evaluated
    owner = _scientist()
    model_id = _model(owner)
    job = TrainingJobRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        model_id=model_id,
        dataset_id="d",
        client_config={},
        server_config={},
        global_weights_key=ModelRecord.get(model_id).weights_key,
        trained_weights_key=ModelRecord.get(model_id).weights_key,
        status=JobStatus.COMPLETED,
        evaluation_spec=SPEC,
    )

    # When its node announces the end twice, as a restarted node would
    first, second = jobs.evaluate_trained(job), jobs.evaluate_trained(job)

    # Then one evaluation of the trained weights is queued, once
    assert first == second == jobs.auto_evaluation_id(job.job_id)
    record = _record(first)
    assert (record.job_id, record.weights_key) == (job.job_id, job.trained_weights_key)
    assert _messages_left() == 1
