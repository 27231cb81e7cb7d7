"""Both node stores against one contract (cohort/federated/node_store.py), so the fake cannot drift.

The AWS store runs on moto inside this process, with only the tables and buckets the node uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from moto import mock_aws

from cohort import aws, storage
from cohort.catalogue import Bucket
from cohort.domain.errors import NotFound
from cohort.domain.records import (
    JobStatus,
    ModelRecord,
    ParticipationRecord,
    ParticipationStatus,
    RoundRecord,
    RoundStatus,
    TrainingJobRecord,
    bind_tables,
)
from cohort.domain.weights import encode
from cohort.federated.aws_store import AwsNodeStore
from cohort.federated.memory_store import MemoryNodeStore
from cohort.federated.node_store import NodeStore, at_time, checkpoint_key, update_key
from cohort.settings import get_settings
from tests.integration.in_process_aws import clear_aws_environment

from .node_setting import (
    INITIAL_WEIGHTS_KEY,
    MODEL_ID,
    SIGNATURE,
    START,
    delta,
    initial_weights,
    job_record,
    model_record,
)

NODE_RECORDS = (TrainingJobRecord, ModelRecord, RoundRecord, ParticipationRecord)
LATER = START + 30


@pytest.fixture(scope="module")
def _moto() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_aws_environment(monkeypatch)
        with mock_aws():
            settings = get_settings()
            bind_tables(settings)
            for record in NODE_RECORDS:
                record.create_table(wait=True)
            for bucket in (Bucket.MODELS, Bucket.UPDATES):
                aws.client("s3").create_bucket(Bucket=settings.catalogue.bucket(bucket))
            yield
    # Give the session's local platform, if one runs, its environment and tables back.
    aws.reset_clients()
    bind_tables(get_settings())


@pytest.fixture(params=["memory", "aws"])
def store(request: pytest.FixtureRequest) -> NodeStore:
    """A store holding a pending job (a fresh id each time), its model and its initial weights."""
    job, model, weights = job_record(f"job-{uuid.uuid4().hex[:8]}"), model_record(), encode(initial_weights())
    if request.param == "memory":
        return MemoryNodeStore(job, model, {INITIAL_WEIGHTS_KEY: weights})
    request.getfixturevalue("_moto")
    job.save()
    model.save()
    storage.put_bytes(Bucket.MODELS, INITIAL_WEIGHTS_KEY, weights)
    return AwsNodeStore(job.job_id)


def _job_id(store: NodeStore) -> str:
    return store.job().job_id


# -- the job ---------------------------------------------------------------------------------------------


def test_the_job_and_its_model_read_back_as_stored(store: NodeStore) -> None:
    job = store.job()

    assert (job.status, job.current_round, job.round_attempt) == (JobStatus.STARTING, 1, 1)
    assert job.global_weights_key == INITIAL_WEIGHTS_KEY
    assert store.model(MODEL_ID).architecture == model_record().architecture


def test_a_record_read_is_a_copy(store: NodeStore) -> None:
    job = store.job()
    job.status = JobStatus.FAILED
    store.open_round(1, 1, START, LATER)
    store.round(1).status = RoundStatus.FAILED
    store.assign(1, 1, "phone-1", "key-1", START)
    (slot,) = store.participations(1, 1)
    slot.status = ParticipationStatus.REPORTED

    assert store.job().status == JobStatus.STARTING
    assert store.round(1).status == RoundStatus.OPEN
    assert [s.status for s in store.participations(1, 1)] == [ParticipationStatus.ASSIGNED]


def test_each_job_change_returns_the_job_as_stored_at_the_nodes_time(store: NodeStore) -> None:
    running = store.mark_running(START + 1)
    assert (running.status, running.updated_at) == (JobStatus.RUNNING, at_time(START + 1))

    retried = store.retry(2, START + 2)
    assert (retried.round_attempt, retried.updated_at) == (2, at_time(START + 2))

    advanced = store.advance(2, "jobs/x/checkpoints/round-000001.safetensors", START + 3)
    assert (advanced.current_round, advanced.round_attempt) == (2, 1)
    assert advanced.global_weights_key == "jobs/x/checkpoints/round-000001.safetensors"

    finished = store.finish(JobStatus.COMPLETED, "trained for 2 rounds", "trained-key", START + 4)
    assert (finished.status, finished.status_reason) == (JobStatus.COMPLETED, "trained for 2 rounds")
    assert (finished.trained_weights_key, finished.updated_at) == ("trained-key", at_time(START + 4))
    assert finished.attribute_values == store.job().attribute_values


def test_a_failed_job_has_no_trained_model(store: NodeStore) -> None:
    failed = store.finish(JobStatus.FAILED, "round 1 failed 3 times", None, START)

    assert (failed.status, failed.trained_weights_key) == (JobStatus.FAILED, None)


# -- rounds ----------------------------------------------------------------------------------------------


def test_a_round_is_opened_failed_reopened_and_completed(store: NodeStore) -> None:
    assert store.round(1) is None

    store.open_round(1, 1, START, LATER)
    opened = store.round(1)
    assert (opened.status, opened.attempt, opened.failures) == (RoundStatus.OPEN, 1, [])
    assert (opened.opened_at, opened.deadline) == (at_time(START), at_time(LATER))

    store.fail_attempt(1, 1, "quorum not met", failed_at=LATER, devices=3, final=False)
    store.open_round(1, 2, LATER, LATER + 30)
    reopened = store.round(1)
    assert (reopened.status, reopened.attempt, reopened.closed_at) == (RoundStatus.OPEN, 2, None)
    ((failure),) = reopened.failures
    assert (failure.attempt, failure.reason, failure.failed_at) == (1, "quorum not met", at_time(LATER))

    store.complete_round(
        1, closed_at=LATER + 5, devices=4, reports=3, samples=40, loss=0.25, accuracy=0.75, checkpoint="ck"
    )
    done = store.round(1)
    assert (done.status, done.closed_at, done.checkpoint_key) == (
        RoundStatus.COMPLETED,
        at_time(LATER + 5),
        "ck",
    )
    assert (done.devices, done.reports, done.samples, done.loss, done.accuracy) == (4, 3, 40, 0.25, 0.75)
    assert len(done.failures) == 1


def test_the_final_failed_attempt_closes_the_round_with_its_cohort(store: NodeStore) -> None:
    store.open_round(1, 1, START, LATER)

    store.fail_attempt(1, 1, "quorum not met", failed_at=LATER, devices=2, final=True)

    failed = store.round(1)
    assert (failed.status, failed.closed_at, failed.devices) == (RoundStatus.FAILED, at_time(LATER), 2)
    assert [f.attempt for f in failed.failures] == [1]


# -- participations --------------------------------------------------------------------------------------


def test_assign_keeps_the_first_slot_recorded(store: NodeStore) -> None:
    store.assign(1, 1, "phone-1", "key-1", START)

    store.assign(1, 1, "phone-2", "key-1", START + 1)

    (slot,) = store.participations(1, 1)
    assert (slot.device_id, slot.request_key, slot.assigned_at) == ("phone-1", "key-1", at_time(START))
    assert (slot.round_number, slot.attempt, slot.status) == (1, 1, ParticipationStatus.ASSIGNED)


def test_a_report_is_marked_once(store: NodeStore) -> None:
    store.assign(1, 1, "phone-1", "key-1", START)
    report = {"num_samples": 30, "loss": 0.5, "accuracy": 0.75, "key": "update-1"}

    first = store.mark_reported(1, 1, "key-1", **report, at=START + 1)
    second = store.mark_reported(1, 1, "key-1", **{**report, "num_samples": 99}, at=START + 2)

    assert (first, second) == (True, False)
    (slot,) = store.participations(1, 1)
    assert (slot.status, slot.reported_at) == (ParticipationStatus.REPORTED, at_time(START + 1))
    assert (slot.num_samples, slot.loss, slot.accuracy, slot.update_key) == (30, 0.5, 0.75, "update-1")


def test_a_report_on_a_slot_never_assigned_is_not_marked(store: NodeStore) -> None:
    marked = store.mark_reported(1, 1, "key-1", num_samples=1, loss=0.0, accuracy=0.0, key="u", at=START)

    assert marked is False
    assert list(store.participations(1, 1)) == []


def test_participations_are_those_of_one_round_attempt(store: NodeStore) -> None:
    store.assign(1, 1, "phone-1", "key-a", START)
    store.assign(1, 2, "phone-2", "key-b", START)
    store.assign(1, 2, "phone-3", "key-c", START)
    store.assign(2, 1, "phone-4", "key-d", START)

    assert sorted(s.request_key for s in store.participations(1, 2)) == ["key-b", "key-c"]
    assert [s.request_key for s in store.participations(2, 1)] == ["key-d"]
    assert list(store.participations(3, 1)) == []


# -- blobs -----------------------------------------------------------------------------------------------


def test_an_update_is_kept_as_the_bytes_received(store: NodeStore) -> None:
    received = bytearray(encode(delta(1.0)))

    key = store.store_update(1, 2, "key-1", received)
    received[-4:] = b"\xff\xff\xff\xff"  # the buffer the update came in is reused

    assert key == update_key(_job_id(store), 1, 2, "key-1")
    assert all(t.eq(1.0).all() for t in store.read_update(key, SIGNATURE).values())


def test_a_checkpoint_reads_back_and_has_a_model_url(store: NodeStore) -> None:
    key = store.write_checkpoint(3, delta(2.0))

    assert key == checkpoint_key(_job_id(store), 3)
    assert all(t.eq(2.0).all() for t in store.read_weights(key, SIGNATURE).values())
    assert key in store.model_url(key)


def test_reading_a_blob_that_is_not_there_is_not_found(store: NodeStore) -> None:
    with pytest.raises(NotFound):
        store.read_update(update_key(_job_id(store), 1, 1, "never-sent"), SIGNATURE)
    with pytest.raises(NotFound):
        store.read_weights(checkpoint_key(_job_id(store), 1), SIGNATURE)
