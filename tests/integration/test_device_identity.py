"""Devices have identities: a holder of the app's API key cannot act as a device it is not.

Over real HTTP against the local platform: the first token exchange of a device id registers the
device's Ed25519 key, and every later one must carry an assertion signed with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cohort.catalogue import Group
from cohort.datasets import digits
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import DeviceRegistrationRecord, bind_tables
from cohort.domain.weights import TensorSignature, encode
from cohort.federated.device import DeviceClient, DeviceError
from cohort.federated.device_key import DeviceKey
from cohort.local.platform import PlatformState
from cohort.sdk import CohortError
from cohort.services.launcher import LocalProcessLauncher
from cohort.services.orchestrator import create_app
from cohort.settings import get_settings
from tests.asgi_server import serving

from .scenario import TINY_MLP, Device, Setting, exchange_token, token_request

_METRIC = "cohort_device_identity_checks"


def _identity_checks(orchestrator_url: str) -> dict[str, float]:
    """The orchestrator's count of identity checks, by outcome, from its /metrics."""
    text = httpx.get(f"{orchestrator_url}/metrics/").text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == _METRIC:
            for sample in family.samples:
                if sample.name == f"{_METRIC}_total":
                    counts[sample.labels["outcome"]] = sample.value
    return counts


def _moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        outcome: after[outcome] - before.get(outcome, 0)
        for outcome in after
        if after[outcome] != before.get(outcome, 0)
    }


def _zero_update() -> bytes:
    return encode(TensorSignature.of(parse_architecture(TINY_MLP).build()).zeros())


def test_an_attacker_with_the_api_key_cannot_get_a_registered_device_s_token_nor_its_slot(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a running job and a device that registered its key with its first exchange
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    victim = Device(platform, setting.api_key, "victim-phone")
    node = victim.node_url(job["job_id"])
    before = _identity_checks(platform.orchestrator_url)

    # When an attacker, who holds the API key (it ships in the app) but not the device's private
    # key, asks for a token under the victim's id: with a key of their own, with the victim's
    # public key and their own signature, and with unsigned or HMAC assertions
    attacker = DeviceKey.generate()
    own_key = exchange_token(platform.orchestrator_url, setting.api_key, "victim-phone", attacker)
    forged_body = token_request(setting.api_key, "victim-phone", attacker) | {
        "public_key": victim.key.public_key.model_dump()
    }
    forged = httpx.post(f"{platform.orchestrator_url}/v1/devices/token", json=forged_body)
    claims = jwt.decode(forged_body["assertion"], options={"verify_signature": False})
    unsigned, hmac = (
        httpx.post(
            f"{platform.orchestrator_url}/v1/devices/token",
            json=forged_body | {"assertion": jwt.encode(claims, key, algorithm=algorithm)},
        )
        for key, algorithm in ((None, "none"), (victim.key.public_key.x, "HS256"))
    )

    # Then each is refused, saying why and what a device that lost its key can do
    assert own_key.status_code == 409, own_key.text
    assert "registered with another public key" in own_key.json()["detail"]
    assert "new device id" in own_key.json()["detail"]
    assert forged.status_code == 401
    assert "does not verify" in forged.json()["detail"]
    assert (unsigned.status_code, hmac.status_code) == (401, 401)
    assert all("token" not in r.json() for r in (own_key, forged, unsigned, hmac))

    # And the device keeps its slot: admitted, its report is accepted, not a duplicate
    cycle = victim.cycle(node).json()
    assert cycle["status"] == "accepted"
    receipt = victim.report(node, cycle["request_key"], _zero_update())
    assert (receipt.status_code, receipt.json()["status"]) == (202, "accepted")

    # And the orchestrator's metrics counted each refusal
    moved = _moved(before, _identity_checks(platform.orchestrator_url))
    assert moved == {"refused_key": 1, "refused_assertion": 3}


def test_a_captured_exchange_cannot_be_replayed(platform: PlatformState, setting: Setting) -> None:
    # Given a device's exchange, seen by someone who copies its body (a proxy's log, say)
    key = DeviceKey.generate()
    body = token_request(setting.api_key, "logged-phone", key)
    first = httpx.post(f"{platform.orchestrator_url}/v1/devices/token", json=body)
    assert (first.status_code, first.json()["registered"]) == (200, True)
    before = _identity_checks(platform.orchestrator_url)

    # When the same body is sent again, within the assertion's lifetime
    replayed = httpx.post(f"{platform.orchestrator_url}/v1/devices/token", json=body)

    # Then it is refused as a replay
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["detail"]

    # And the device itself, signing a fresh assertion, is verified, not registered again
    again = exchange_token(platform.orchestrator_url, setting.api_key, "logged-phone", key)
    assert (again.status_code, again.json()["registered"]) == (200, False)
    moved = _moved(before, _identity_checks(platform.orchestrator_url))
    assert moved == {"refused_assertion": 1, "verified": 1}


def test_a_device_keeps_its_identity_in_a_key_file_across_restarts(
    platform: PlatformState, setting: Setting, tmp_path: Path
) -> None:
    # Given a device client that keeps its key in a file, and has exchanged once
    train = digits.load()[0]
    path = tmp_path / "device-key.pem"
    first = DeviceClient(
        platform.orchestrator_url, setting.api_key, "kept-phone", train, key=DeviceKey.stored_at(path)
    )
    assert first.open_jobs() == []
    first.close()

    # When the app starts again with the same file, and when its token has expired
    restarted = DeviceClient(
        platform.orchestrator_url, setting.api_key, "kept-phone", train, key=DeviceKey.stored_at(path)
    )
    before = _identity_checks(platform.orchestrator_url)
    try:
        assert restarted.open_jobs() == []
        restarted._token_expires_at = 0.0  # as if its 15 minutes had passed
        assert restarted.open_jobs() == []
    finally:
        restarted.close()

    # Then it re-exchanged twice, proving the same key each time
    assert _moved(before, _identity_checks(platform.orchestrator_url)) == {"verified": 2}

    # And a reinstalled app, with a new key, cannot take the id back: it is told what to do
    reinstalled = DeviceClient(platform.orchestrator_url, setting.api_key, "kept-phone", train)
    with pytest.raises(DeviceError) as refused:
        reinstalled.open_jobs()
    reinstalled.close()
    assert refused.value.status == 409
    assert "new device id" in str(refused.value)


def test_the_app_developer_frees_a_device_id_and_nobody_else_can(
    platform: PlatformState, setting: Setting, people
) -> None:
    # Given a device id registered with a key its phone has since lost
    lost = DeviceKey.generate()
    assert exchange_token(platform.orchestrator_url, setting.api_key, "lost-phone", lost).status_code == 200

    # When a scientist, or another app developer, tries to delete the registration
    for caller, status in ((setting.scientist, 403), (people.client(Group.APP_DEVELOPERS), 404)):
        with pytest.raises(CohortError) as refused:
            caller.forget_device(setting.dataset_id, "lost-phone")
        # Then they cannot, and the registration stays
        assert refused.value.status == status
    assert exchange_token(platform.orchestrator_url, setting.api_key, "lost-phone").status_code == 409

    # When the app's developer deletes it
    assert setting.developer is not None
    assert setting.developer.forget_device(setting.dataset_id, "lost-phone")["device_id"] == "lost-phone"

    # Then the id registers the phone's new key, and the old key no longer works
    renewed = exchange_token(platform.orchestrator_url, setting.api_key, "lost-phone", DeviceKey.generate())
    assert (renewed.status_code, renewed.json()["registered"]) == (200, True)
    assert exchange_token(platform.orchestrator_url, setting.api_key, "lost-phone", lost).status_code == 409

    # And an id that was never registered is not found
    with pytest.raises(CohortError) as unknown:
        setting.developer.forget_device(setting.dataset_id, "never-seen")
    assert unknown.value.status == 404


# -- the registration rate limit ----------------------------------------------------------

_LIMIT = 2


@pytest.fixture
def second_orchestrator(
    platform: PlatformState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Another orchestrator task on the same tables, allowed 2 new devices per API key and minute.

    Served from this process without its lifespan, so it runs no sweep of its own.
    """
    monkeypatch.setenv("COHORT_DEVICE_REGISTRATIONS_PER_MINUTE", str(_LIMIT))
    get_settings.cache_clear()
    try:
        app = create_app(LocalProcessLauncher(tmp_path))
        bind_tables(get_settings())
        with serving(app, lifespan="off") as url:
            yield url
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_new_registrations_past_the_limit_are_refused_and_change_nothing(
    platform: PlatformState, setting: Setting, second_orchestrator: str
) -> None:
    # Given an app whose API key registered one device through the session's orchestrator and
    # one through a second orchestrator task; both count in the same DynamoDB window
    for attempt in range(2):  # the minute may turn during the sequence: then once more, with new ids
        minute = int(time.time() // 60)
        prefix = f"try{attempt}"
        keys = {name: DeviceKey.generate() for name in ("a", "b", "c")}
        first = exchange_token(platform.orchestrator_url, setting.api_key, f"{prefix}-a", keys["a"])
        second = exchange_token(second_orchestrator, setting.api_key, f"{prefix}-b", keys["b"])
        before = _identity_checks(second_orchestrator)

        # When a third new device asks, through the second task
        refused = exchange_token(second_orchestrator, setting.api_key, f"{prefix}-c", keys["c"])
        if int(time.time() // 60) == minute:
            break
    assert (first.status_code, second.status_code) == (200, 200)

    # Then it is refused with 429, told when to retry and which setting limits it
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "device_registrations_per_minute" in refused.json()["detail"]
    assert "token" not in refused.json()

    # And nothing was registered for it
    with pytest.raises(DeviceRegistrationRecord.DoesNotExist):
        DeviceRegistrationRecord.get(setting.dataset_id, f"{prefix}-c")

    # And registered devices still exchange, through either task
    for url, name in ((second_orchestrator, "a"), (platform.orchestrator_url, "b")):
        verified = exchange_token(url, setting.api_key, f"{prefix}-{name}", keys[name])
        assert (verified.status_code, verified.json()["registered"]) == (200, False)

    # And the refusal is counted in the metrics
    assert _moved(before, _identity_checks(second_orchestrator)) == {"refused_rate": 1, "verified": 1}
