"""The FL node's HTTP API in process: every refused request gets its 4xx and changes nothing.

The app is the one the node process serves, over the in-memory store, with device tokens signed by
the key in the test's settings; so no emulator, orchestrator or node process is involved.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cohort.domain.errors import NotFound
from cohort.domain.records import ParticipationStatus, RoundStatus
from cohort.domain.weights import encode
from cohort.federated.memory_store import MemoryNodeStore
from cohort.federated.node_app import create_node_app
from cohort.federated.node_store import update_key
from cohort.settings import Settings
from cohort.web.auth import DEVICE_TOKEN_AUDIENCE, DEVICE_TOKEN_ISSUER, DeviceIdentity, DeviceTokens

from .node_setting import DATASET_ID, JOB_ID, SIGNATURE, delta, memory_store

MAX_UPDATE_BYTES = 256 * 1024
SETTINGS = Settings(
    token_secret=SecretStr("a test key of at least 32 bytes!"), max_update_bytes=MAX_UPDATE_BYTES
)
OTHER_KEY = "another key, also 32 bytes long!!"
AVAILABLE = {"availability": {"battery": 0.9, "charging": True, "network": "wifi"}}
GOOD_REPORT = {"num_samples": 10, "loss": 0.5, "accuracy": 0.5}
ZERO = encode(delta(0.0))
MODEL_LIMIT = f"an update for this job's model is at most {SIGNATURE.max_file_bytes:,} bytes"


def _chunks(size: int, chunk: int = 16 * 1024) -> Iterator[bytes]:
    """A body of ``size`` zero bytes, sent chunked: the server learns its length only by reading it."""
    for start in range(0, size, chunk):
        yield b"\0" * min(chunk, size - start)


def _token(device_id: str, dataset_id: str = DATASET_ID) -> str:
    return DeviceTokens(SETTINGS).issue(DeviceIdentity(device_id, dataset_id))


class Node:
    """The node's app in process, its store, and devices calling it."""

    def __init__(self, client: TestClient, store: MemoryNodeStore) -> None:
        self.client = client
        self.store = store

    def cycle(self, device_id: str, **request) -> httpx.Response:
        request.setdefault("json", AVAILABLE)
        headers = request.pop("headers", {"Authorization": f"Bearer {_token(device_id)}"})
        return self.client.post(f"/jobs/{JOB_ID}/cycle", headers=headers, **request)

    def admit(self, device_id: str) -> str:
        answer = self.cycle(device_id).json()
        assert answer["status"] == "accepted", answer
        return answer["request_key"]

    def report(
        self, device_id: str, request_key: str, body: bytes = ZERO, params: dict | None = None, **request
    ) -> httpx.Response:
        headers = request.pop("headers", {"Authorization": f"Bearer {_token(device_id)}"})
        return self.client.put(
            f"/jobs/{JOB_ID}/reports/{request_key}",
            params=GOOD_REPORT if params is None else params,
            content=body,
            headers=headers,
        )

    def slots(self) -> dict[str, str]:
        return {s.device_id: s.status for s in self.store.participations(1, 1)}

    def assert_unchanged(self, admitted: dict[str, str]) -> None:
        """Only these devices hold slots, none has reported, no update is stored, the round is open."""
        assert self.slots() == dict.fromkeys(admitted, ParticipationStatus.ASSIGNED)
        for request_key in admitted.values():
            with pytest.raises(NotFound):
                self.store.read_update(update_key(JOB_ID, 1, 1, request_key), SIGNATURE)
        assert self.store.round(1).status == RoundStatus.OPEN


@pytest.fixture
def node() -> Iterator[Node]:
    store = memory_store(rounds=1, min_reports=1, max_reports=2, cohort_size=2, round_deadline_seconds=600)
    with TestClient(create_node_app(JOB_ID, store=store, settings=SETTINGS)) as client:
        yield Node(client, store)


# -- the protocol as devices use it --------------------------------------------------------------------


def test_a_device_is_admitted_reports_and_a_replay_is_a_duplicate(node: Node) -> None:
    answer = node.cycle("phone-1")
    assert answer.status_code == 200
    slot = answer.json()
    assert slot["status"] == "accepted"
    assert {"request_key", "round", "deadline", "model_url", "architecture", "client_config"} <= set(slot)

    first = node.report("phone-1", slot["request_key"])
    replay = node.report("phone-1", slot["request_key"])

    assert (first.status_code, first.json()) == (202, {"status": "accepted", "round": 1, "attempt": 1})
    assert (replay.status_code, replay.json()) == (202, {"status": "duplicate", "round": 1, "attempt": 1})
    assert node.slots() == {"phone-1": ParticipationStatus.REPORTED}


def test_the_cohort_is_capped_and_later_devices_are_told_when_to_retry(node: Node) -> None:
    # Given a round that admits two devices, when three ask
    answers = [node.cycle(f"phone-{i}").json() for i in range(3)]

    # Then two are accepted and the third is rejected with a retry-after
    assert [a["status"] for a in answers] == ["accepted", "accepted", "rejected"]
    assert answers[2]["reason"] == "the round's cohort is full"
    assert 0 < answers[2]["retry_after"] <= 30
    assert answers[0]["request_key"] != answers[1]["request_key"]
    # And asking again returns the same slot instead of a second one
    assert node.cycle("phone-0").json()["request_key"] == answers[0]["request_key"]
    assert set(node.slots()) == {"phone-0", "phone-1"}


# -- bad updates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (lambda: encode({**delta(0.0), "0.weight": torch.full((3, 4), math.nan)}), 422, "NaN"),
        (lambda: encode({**delta(0.0), "0.bias": torch.tensor([0.0, 3e38, 0.0])}), 422, "max_update_norm"),
        (lambda: encode({**delta(0.0), "2.weight": torch.zeros(3, 4)}), 422, "shape"),
        (lambda: encode({k: v.double() for k, v in delta(0.0).items()}), 422, "float32"),
        (lambda: ZERO[:-10], 422, "truncated"),
        (lambda: b"not a safetensors file", 422, "safetensors"),
        (lambda: encode({"0.weight": torch.zeros(3, 4)}), 422, "missing"),
        (lambda: b"\0" * (SIGNATURE.max_file_bytes + 1), 413, MODEL_LIMIT),
        (lambda: _chunks(SIGNATURE.max_file_bytes + 1), 413, MODEL_LIMIT),
        (lambda: b"\0" * (MAX_UPDATE_BYTES + 1), 413, MODEL_LIMIT),
    ],
    ids=[
        "nan",
        "over-the-norm-bound",
        "wrong-shape",
        "wrong-dtype",
        "truncated",
        "garbage",
        "missing-tensors",
        "larger-than-the-model",
        "larger-than-the-model-chunked",
        "over-every-jobs-ceiling",
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(node: Node, payload, status: int, message: str) -> None:
    # Given a device with a slot in an open round
    key = node.admit("sender")

    # When it reports a bad update
    response = node.report("sender", key, payload())

    # Then it gets a clear 4xx, nothing changed, and the slot is still open for a good report
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    node.assert_unchanged({"sender": key})
    assert node.report("sender", key).json()["status"] == "accepted"


# -- malformed requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        {"json": {"availability": {"battery": "full", "charging": True, "network": "wifi"}}},
        {"json": {"availability": {"battery": 0.5, "charging": True, "network": "wifi"}, "extra": 1}},
        {"json": {"availability": {"battery": 0.5, "charging": True, "network": "carrier-pigeon"}}},
        {"json": {}},
        {"content": "{not json", "headers": {"Content-Type": "application/json"}},
    ],
    ids=["wrong-type", "unknown-field", "unknown-network", "no-availability", "malformed-json"],
)
def test_a_malformed_cycle_request_gets_422_and_no_slot(node: Node, request_: dict) -> None:
    request = dict(request_)
    if "headers" in request:
        request["headers"] = {**request["headers"], "Authorization": f"Bearer {_token('phone-1')}"}
        request["json"] = None

    response = node.cycle("phone-1", **request)

    assert response.status_code == 422, response.text
    node.assert_unchanged({})


@pytest.mark.parametrize(
    "params",
    [
        {**GOOD_REPORT, "num_samples": 0},
        {**GOOD_REPORT, "num_samples": 10_000_000},
        {**GOOD_REPORT, "num_samples": "ten"},
        {**GOOD_REPORT, "loss": "nan"},
        {**GOOD_REPORT, "loss": -0.1},
        {**GOOD_REPORT, "accuracy": 1.5},
        {"num_samples": 10, "loss": 0.5},
    ],
    ids=[
        "zero-samples",
        "over-the-sample-cap",
        "samples-not-a-number",
        "nan-loss",
        "negative-loss",
        "accuracy-out-of-range",
        "no-accuracy",
    ],
)
def test_a_malformed_report_gets_422_and_is_not_counted(node: Node, params: dict) -> None:
    key = node.admit("phone-1")

    response = node.report("phone-1", key, params=params)

    assert response.status_code == 422, response.text
    node.assert_unchanged({"phone-1": key})


# -- who may call --------------------------------------------------------------------------------------


def _hand_made_token(*, expires_in: int, key: str = SETTINGS.token_secret.get_secret_value()) -> str:
    """A device token as the orchestrator would issue one, but with this lifetime and signing key."""
    now = int(time.time())
    claims = {
        "sub": "phone-1",
        "dataset_id": DATASET_ID,
        "aud": DEVICE_TOKEN_AUDIENCE,
        "iss": DEVICE_TOKEN_ISSUER,
    }
    return jwt.encode({**claims, "iat": now, "exp": now + expires_in}, key, algorithm="HS256")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (lambda: {}, "missing bearer token"),
        (lambda: {"Authorization": "Basic cGhvbmU6MQ=="}, "missing bearer token"),
        (lambda: {"Authorization": "Bearer not-a-token"}, "invalid device token"),
        (
            lambda: {"Authorization": f"Bearer {_hand_made_token(expires_in=60, key=OTHER_KEY)}"},
            "invalid device token",
        ),
        (
            lambda: {"Authorization": f"Bearer {_hand_made_token(expires_in=-60)}"},
            "exchange the API key for a new one",
        ),
    ],
    ids=["missing", "not-bearer", "garbage", "signed-with-another-key", "expired"],
)
def test_a_device_without_a_valid_token_gets_401_and_changes_nothing(
    node: Node, headers, message: str
) -> None:
    key = node.admit("phone-1")

    for response in (
        node.cycle("phone-2", headers=headers()),
        node.report("phone-1", key, headers=headers()),
    ):
        assert response.status_code == 401, response.text
        assert message in response.json()["detail"]

    node.assert_unchanged({"phone-1": key})


def test_a_device_of_another_app_gets_403_and_changes_nothing(node: Node) -> None:
    key = node.admit("phone-1")
    outsider = {"Authorization": f"Bearer {_token('phone-1', dataset_id='another-app')}"}

    for response in (node.cycle("phone-1", headers=outsider), node.report("phone-1", key, headers=outsider)):
        assert response.status_code == 403, response.text
        assert "does not take part in this job" in response.json()["detail"]

    node.assert_unchanged({"phone-1": key})


@pytest.mark.parametrize(
    ("reporter", "request_key", "status"),
    [("phone-1", "made-up-key", 404), ("phone-2", None, 403)],
    ids=["unknown-key", "another-devices-key"],
)
def test_a_report_on_a_key_that_is_not_the_devices_is_refused(
    node: Node, reporter: str, request_key: str | None, status: int
) -> None:
    key = node.admit("phone-1")

    response = node.report(reporter, request_key or key)

    assert response.status_code == status, response.text
    node.assert_unchanged({"phone-1": key})


# -- authenticated before read -------------------------------------------------------------------------


class CountedBody:
    """An upload sent in chunks, counting how many bytes the server pulled from it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in _chunks(self.size):
            self.pulled += len(chunk)
            yield chunk


UPLOAD_BYTES = 4 * 1024 * 1024


def _upload(node: Node, device_id: str, request_key: str, body: CountedBody, **request) -> httpx.Response:
    headers = request.pop("headers", {"Authorization": f"Bearer {_token(device_id)}"})
    return node.client.put(
        f"/jobs/{JOB_ID}/reports/{request_key}",
        params=request.pop("params", GOOD_REPORT),
        content=body,
        headers=headers,
    )


@pytest.mark.parametrize(
    ("sender", "key", "request_", "status"),
    [
        ("phone-1", None, {"headers": {}}, 401),
        ("phone-1", None, {"headers": {"Authorization": "Bearer not-a-token"}}, 401),
        ("phone-1", "made-up-key", {}, 404),
        ("phone-2", None, {}, 403),
        ("phone-1", None, {"headers": {"Authorization": f"Bearer {_token('phone-1', 'another-app')}"}}, 403),
        ("phone-1", None, {"params": {**GOOD_REPORT, "num_samples": 0}}, 422),
    ],
    ids=["no-token", "bad-token", "unknown-key", "another-devices-key", "another-app", "bad-query"],
)
def test_a_refused_upload_is_answered_before_a_byte_of_it_is_read(
    node: Node, sender: str, key: str | None, request_: dict, status: int
) -> None:
    # Given a device with a slot, and a large upload that counts what the server pulls from it
    own_key = node.admit("phone-1")
    body = CountedBody(UPLOAD_BYTES)

    # When someone uploads it without the right token or key
    response = _upload(node, sender, key or own_key, body, **request_)

    # Then the refusal comes without the body being read, and the connection is closed
    assert response.status_code == status, response.text
    assert body.pulled == 0
    assert response.headers["connection"] == "close"
    node.assert_unchanged({"phone-1": own_key})


def test_a_replayed_report_is_answered_duplicate_without_reading_its_body(node: Node) -> None:
    key = node.admit("phone-1")
    assert node.report("phone-1", key).json()["status"] == "accepted"
    body = CountedBody(UPLOAD_BYTES)

    replay = _upload(node, "phone-1", key, body)

    assert (replay.status_code, replay.json()["status"], body.pulled) == (202, "duplicate", 0)


def test_an_upload_with_the_right_token_and_key_is_read(node: Node) -> None:
    # The counterpart of the refusals above: the same upload, by its device, is read (and refused for
    # its size only then)
    key = node.admit("phone-1")
    body = CountedBody(UPLOAD_BYTES)

    response = _upload(node, "phone-1", key, body)

    assert response.status_code == 413
    assert body.pulled > 0


def test_a_json_body_over_the_request_limit_gets_413(node: Node) -> None:
    padded = {"availability": {"battery": 0.9, "charging": True, "network": "wifi"}, "pad": "x" * (1 << 20)}

    response = node.cycle("phone-1", json=padded)

    assert response.status_code == 413
    assert f"the limit is {SETTINGS.max_request_bytes:,} bytes" in response.json()["detail"]
    node.assert_unchanged({})


# -- what became of a report ---------------------------------------------------------------------------


def test_a_device_looks_up_its_reports_fate_by_its_receipt(node: Node) -> None:
    key = node.admit("phone-1")
    receipt = node.report("phone-1", key).json()
    fate_of = f"/jobs/{JOB_ID}/reports/{key}"
    where = {"round": receipt["round"], "attempt": receipt["attempt"]}

    mine = node.client.get(fate_of, params=where, headers={"Authorization": f"Bearer {_token('phone-1')}"})
    theirs = node.client.get(fate_of, params=where, headers={"Authorization": f"Bearer {_token('phone-2')}"})
    anonymous = node.client.get(fate_of, params=where)

    assert mine.status_code == 200, mine.text
    assert mine.json() == {
        "status": "pending",
        "round": 1,
        "attempt": 1,
        "reason": "held for round 1, attempt 1, which is still open",
    }
    assert (theirs.status_code, anonymous.status_code) == (404, 401)
