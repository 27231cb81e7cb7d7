"""A report's life on the live platform, over real HTTP: read only once its sender is known, counted
once even when its round is retried, and its device able to learn what became of it. The rules are
tested at the node's own layer too: tests/unit/test_federated_node.py and tests/unit/test_node_http.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import torch

from cohort.domain.architecture import parse_architecture
from cohort.domain.weights import TensorSignature, decode, encode
from cohort.local.platform import PlatformState

from .scenario import TINY_MLP, Device, Setting

pytestmark = pytest.mark.usefixtures("platform")

SIGNATURE = TensorSignature.of(parse_architecture(TINY_MLP).build())


def _step(value: float) -> bytes:
    return encode({name: torch.full(shape, value) for name, shape in SIGNATURE.shapes.items()})


def _round_one(setting: Setting, job_id: str, until, timeout: float = 60.0) -> dict:
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        job = setting.scientist.job(job_id)
        if job["rounds"] and until(job["rounds"][0]):
            return job["rounds"][0]
        time.sleep(0.2)
    raise AssertionError(f"round 1 of job {job_id} never got there: {job['rounds']}")


def test_a_retried_attempt_counts_every_report_the_failed_one_accepted_exactly_once(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a job whose round 1 needs three reports, and whose first attempt accepts two (+1 on 30
    # samples and 0 on 10) while a third admitted device stays silent
    early, other, silent = (Device(platform, setting.api_key, name) for name in ("early", "other", "silent"))
    job_id = setting.start(
        rounds=2,
        min_reports=3,
        max_reports=3,
        cohort_size=3,
        round_deadline_seconds=10,
        max_round_attempts=2,
        max_report_share=1.0,  # by sample counts: the default share cap would weigh 3 reports equally
    )["job_id"]
    node = early.node_url(job_id)
    slots = {device: device.cycle(node).json() for device in (early, other, silent)}
    receipts = {
        early: early.report(node, slots[early]["request_key"], _step(1.0), num_samples=30).json(),
        other: other.report(node, slots[other]["request_key"], _step(0.0), num_samples=10).json(),
    }
    assert [(r["status"], r["attempt"]) for r in receipts.values()] == [("accepted", 1)] * 2, "too slow"

    # When the attempt misses its quorum at the deadline
    retried = _round_one(setting, job_id, lambda r: r["attempt"] == 2)

    # Then the retry holds both reports: their devices are not asked again
    assert (retried["status"], retried["devices"], retried["reports"]) == ("open", 2, 2)
    again = early.cycle(node).json()
    assert (again["status"], again["reason"]) == (
        "rejected",
        "this device has reported for this round already",
    )
    assert _fate(early, node, slots[early], receipts[early])["status"] == "pending"
    # And a third device completes the round in attempt 2 (0 on 20 samples)
    late = Device(platform, setting.api_key, "late")
    slot = late.cycle(node).json()
    assert slot["attempt"] == 2
    assert late.report(node, slot["request_key"], _step(0.0), num_samples=20).json()["status"] == "accepted"
    closed = _round_one(setting, job_id, lambda r: r["status"] != "open")

    # Then every accepted report is counted exactly once: three reports, 60 samples, each weight +0.5
    assert (closed["status"], closed["reports"], closed["samples"]) == ("completed", 3, 60)
    round_two = late.cycle(node).json()
    assert round_two["round"] == 2
    trained = decode(httpx.get(round_two["model_url"]).content, SIGNATURE)
    for name, initial in setting.initial_weights.items():
        torch.testing.assert_close(trained[name], initial + 0.5)
    # And the device that reported in attempt 1 learns that its report counted
    assert _fate(early, node, slots[early], receipts[early])["status"] == "counted"


def _fate(device: Device, node: str, slot: dict, receipt: dict) -> dict:
    where = {"round": receipt["round"], "attempt": receipt["attempt"]}
    response = httpx.get(f"{node}/reports/{slot['request_key']}", params=where, headers=device.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_upload_without_a_token_is_refused_while_it_is_still_being_sent(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a running job's node, and an upload of 64 MiB that counts how much of it is sent
    job_id = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=60)["job_id"]
    holder = Device(platform, setting.api_key, "holder")
    node = holder.node_url(job_id)
    key = holder.cycle(node).json()["request_key"]
    total, sent = 64 * 1024 * 1024, 0

    def upload() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"\0" * (1024 * 1024)
        while sent < total:
            sent += len(chunk)
            yield chunk

    # When it is sent without a token
    response = httpx.put(
        f"{node}/reports/{key}",
        params={"num_samples": 1, "loss": 0, "accuracy": 0},
        content=upload(),
        timeout=60,
    )

    # Then it is refused, and the node closed the connection long before the upload was through
    assert response.status_code == 401
    assert sent < total
    # And the node still serves the slot's holder
    assert holder.report(node, key, _step(0.0)).json()["status"] == "accepted"
