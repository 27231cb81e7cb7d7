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
from cohort.federated.node import DeviceReport, FederatedNode
from cohort.federated.node_store import (
    NodeStore,
    at_time,
    checkpoint_key,
    round_updates_prefix,
    update_key,
)
from cohort.settings import get_settings
from tests.integration.in_process_aws import clear_aws_environment

from .node_setting import (
    AVAILABLE,
    DATASET_ID,
    INITIAL_WEIGHTS_KEY,
    MODEL_ID,
    SIGNATURE,
    START,
    FakeClock,
    Mortal,
    NodeKilled,
    delta,
    initial_weights,
    job_record,
    model_record,
)

NODE_RECORDS = (TrainingJobRecord, ModelRecord, RoundRecord, ParticipationRecord)
LATER = START + 30
ZERO = encode(delta(0.0))


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
            # As deployed (cdk_stacks/constructs/buckets.py): a delete must remove every version.
            updates = settings.catalogue.bucket(Bucket.UPDATES)
            aws.client("s3").put_bucket_versioning(
                Bucket=updates, VersioningConfiguration={"Status": "Enabled"}
            )
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


def test_an_attempts_failure_is_recorded_once(store: NodeStore) -> None:
    store.open_round(1, 1, START, LATER)
    store.fail_attempt(1, 1, "quorum not met", failed_at=LATER, devices=2, final=False)

    store.fail_attempt(1, 1, "quorum not met", failed_at=LATER + 9, devices=2, final=False)
    store.open_round(1, 2, LATER, LATER + 30)
    store.fail_attempt(1, 2, "quorum not met again", failed_at=LATER + 30, devices=1, final=True)
    store.fail_attempt(1, 2, "quorum not met again", failed_at=LATER + 39, devices=1, final=True)

    failed = store.round(1)
    recorded = [(f.attempt, f.failed_at) for f in failed.failures]
    assert recorded == [(1, at_time(LATER)), (2, at_time(LATER + 30))]
    assert (failed.status, failed.closed_at) == (RoundStatus.FAILED, at_time(LATER + 30))


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


def test_a_slot_is_read_by_its_round_attempt_and_key(store: NodeStore) -> None:
    store.assign(1, 2, "phone-1", "key-1", START)

    slot = store.participation(1, 2, "key-1")

    assert (slot.device_id, slot.round_number, slot.attempt) == ("phone-1", 1, 2)
    assert store.participation(1, 1, "key-1") is None
    assert store.participation(1, 2, "key-2") is None


def test_carrying_reports_copies_the_reported_slots_into_the_next_attempt(store: NodeStore) -> None:
    # Given an attempt with two reported slots and a silent one
    for device, key in (("phone-1", "key-1"), ("phone-2", "key-2"), ("phone-3", "key-3")):
        store.assign(1, 1, device, key, START)
    for key, samples in (("key-1", 30), ("key-2", 10)):
        store.mark_reported(1, 1, key, num_samples=samples, loss=0.5, accuracy=0.75, key=f"u-{key}", at=LATER)

    # When its reports are carried into attempt 2, twice
    store.carry_reports(1, 1, 2)
    store.carry_reports(1, 1, 2)

    # Then attempt 2 holds the two reports as they were, once each, and attempt 1 is unchanged
    carried = {slot.request_key: slot for slot in store.participations(1, 2)}
    assert sorted(carried) == ["key-1", "key-2"]
    for key, samples in (("key-1", 30), ("key-2", 10)):
        slot = carried[key]
        assert (slot.status, slot.attempt, slot.num_samples) == ("reported", 2, samples)
        assert slot.update_key == f"u-{key}"
        assert (slot.assigned_at, slot.reported_at) == (at_time(START), at_time(LATER))
    assert len(list(store.participations(1, 1))) == 3
    # And a carried report cannot be marked again
    again = store.mark_reported(1, 2, "key-1", num_samples=1, loss=0.0, accuracy=0.0, key="u", at=LATER)
    assert again is False


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


def test_deleting_a_rounds_updates_leaves_nothing_of_them_and_nothing_else_goes(store: NodeStore) -> None:
    # Given updates of round 1 in two attempts (one sent twice), and one of round 2
    gone = [store.store_update(1, 1, "key-a", encode(delta(1.0))), store.store_update(1, 2, "key-b", b"x")]
    store.store_update(1, 2, "key-b", encode(delta(2.0)))
    kept = store.store_update(2, 1, "key-c", encode(delta(3.0)))

    # When round 1's updates are deleted, twice
    first, again = store.delete_updates(1), store.delete_updates(1)

    # Then none of them can be read, round 2's can, and the repeat found nothing left
    assert first >= len(gone)
    assert again == 0
    for key in gone:
        with pytest.raises(NotFound):
            store.read_update(key, SIGNATURE)
    assert all(t.eq(3.0).all() for t in store.read_update(kept, SIGNATURE).values())
    assert store.delete_updates(3) == 0
    if isinstance(store, AwsNodeStore):  # not hidden behind a delete marker: no version is left
        listing = aws.client("s3").list_object_versions(
            Bucket=storage.bucket_name(Bucket.UPDATES), Prefix=round_updates_prefix(_job_id(store), 1)
        )
        assert listing.get("Versions", []) == listing.get("DeleteMarkers", []) == []


def test_reading_a_blob_that_is_not_there_is_not_found(store: NodeStore) -> None:
    with pytest.raises(NotFound):
        store.read_update(update_key(_job_id(store), 1, 1, "never-sent"), SIGNATURE)
    with pytest.raises(NotFound):
        store.read_weights(checkpoint_key(_job_id(store), 1), SIGNATURE)


# -- a node killed between two writes, over either store ---------------------------------------------------


def test_a_node_killed_between_completing_a_round_and_advancing_keeps_the_rounds_result(
    store: NodeStore,
) -> None:
    # Given a job of two rounds, each closed by one report, and a node that dies once round 1 is
    # recorded completed, before the job advances
    clock, store = FakeClock(), _with_config(store, rounds=2, min_reports=1, max_reports=1)
    mortal = Mortal(store)
    node = FederatedNode(mortal, clock)
    node.start()
    answer = node.request_cycle("phone-1", DATASET_ID, AVAILABLE)
    mortal.die_at("advance")
    with pytest.raises(NodeKilled):
        node.submit_report("phone-1", DATASET_ID, answer.request_key, DeviceReport(30, 0.5, 0.5), ZERO)

    # When a new node starts over the same store
    clock.advance(5)
    FederatedNode(store, clock).start()

    # Then round 1 keeps its result and its checkpoint, and round 2 is open on that checkpoint
    round_one, job = store.round(1), store.job()
    assert (round_one.status, round_one.reports, round_one.samples) == (RoundStatus.COMPLETED, 1, 30)
    assert round_one.checkpoint_key == checkpoint_key(job.job_id, 1)
    assert (job.current_round, job.global_weights_key) == (2, round_one.checkpoint_key)
    assert store.round(2).status == RoundStatus.OPEN


def _with_config(store: NodeStore, **server_config: object) -> NodeStore:
    """The store, its job's server config set (the job record is written as the orchestrator would)."""
    if isinstance(store, MemoryNodeStore):
        job = store.job()
        job.server_config = server_config
        return MemoryNodeStore(job, model_record(), {INITIAL_WEIGHTS_KEY: encode(initial_weights())})
    job = store.job()
    job.server_config = server_config
    job.save()
    return store
