"""The device client's side of the token exchange, against a scripted server (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest

from cohort.datasets import digits
from cohort.federated import device
from cohort.federated.device import DeviceClient, DeviceError
from cohort.federated.device_key import DeviceKey
from cohort.web.device_assertions import verify_assertion

ORCHESTRATOR = "http://orchestrator.test"


class ScriptedOrchestrator:
    """Answers each token exchange from a script, and keeps every request body it received."""

    def __init__(self, answers: list[httpx.Response]) -> None:
        self._answers = answers
        self.exchanges: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/devices/token":
            self.exchanges.append(json.loads(request.content))
            return self._answers.pop(0)
        return httpx.Response(200, json=[])


def _token(expires_in: int = 900) -> httpx.Response:
    return httpx.Response(
        200, json={"token": "t", "expires_in": expires_in, "dataset_id": "d", "registered": True}
    )


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(device.time, "sleep", waits.append)
    return waits


def _client(server: ScriptedOrchestrator, key: DeviceKey) -> DeviceClient:
    return DeviceClient(
        ORCHESTRATOR,
        "ck_test_key",
        "phone-7",
        digits.load()[0],
        key=key,
        transport=httpx.MockTransport(server),
    )


def test_each_exchange_sends_the_public_key_and_a_fresh_assertion_signed_with_it(slept: list[float]) -> None:
    # Given a device, and an orchestrator whose first answer is the registration limit
    key = DeviceKey.generate()
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"detail": "limit"})
    server = ScriptedOrchestrator([limited, _token(expires_in=10), _token()])
    client = _client(server, key)

    # When it lists jobs twice, its first token expiring at once (10 s is inside the refresh margin)
    client.open_jobs()
    client.open_jobs()
    client.close()

    # Then it waited as told, and sent three exchanges, each with its key and its own assertion
    assert slept == [7.0]
    assert len(server.exchanges) == 3
    for body in server.exchanges:
        assert body["public_key"] == key.public_key.model_dump()
        assert verify_assertion(body["assertion"], key.public_key, "phone-7").jti
    jtis = {jwt.decode(b["assertion"], options={"verify_signature": False})["jti"] for b in server.exchanges}
    assert len(jtis) == 3  # a retry never resends an assertion the server may have seen


def test_a_refused_key_is_reported_with_the_server_s_reason(slept: list[float]) -> None:
    # Given an orchestrator that has this device id registered with another key
    conflict = httpx.Response(
        409, json={"detail": "device id 'phone-7' is registered with another public key"}
    )
    client = _client(ScriptedOrchestrator([conflict]), DeviceKey.generate())

    # When the device asks for anything
    with pytest.raises(DeviceError) as refused:
        client.open_jobs()
    client.close()

    # Then it stops at once, with the status and the reason
    assert refused.value.status == 409
    assert "registered with another public key" in str(refused.value)
    assert slept == []
