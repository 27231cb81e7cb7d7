"""No endpoint works without a valid token, and nobody reaches another user's things."""

from __future__ import annotations

import gzip
import json
import time
from importlib import resources

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cohort.catalogue import Group
from cohort.federated.device_key import DeviceKey
from cohort.local.platform import PlatformState
from cohort.openapi import documents
from cohort.sdk import CohortError
from cohort.settings import get_settings
from cohort.web.auth import DEVICE_TOKEN_AUDIENCE, DEVICE_TOKEN_ISSUER

from .scenario import AVAILABLE, Device, Setting, exchange_token


def _protected_routes() -> list[tuple[str, str]]:
    """Every route in the orchestrator's OpenAPI document that needs a bearer token."""
    schema = documents()["orchestrator.json"]
    routes = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                routes.append((method.upper(), path.replace("{", "").replace("}", "")))
    return routes


def _moto_signing_key() -> dict:
    """The emulator's own private key: lets a test forge a correctly signed token with bad claims."""
    packaged = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz")
    return json.loads(gzip.decompress(packaged.read_bytes()))


def _claims(platform: PlatformState, **overrides: object) -> dict:
    now = int(time.time())
    return {
        "iss": f"https://cognito-idp.{platform.region}.amazonaws.com/{platform.user_pool_id}",
        "aud": platform.user_pool_client_id,
        "sub": "forged-user",
        "token_use": "id",
        "cognito:groups": ["scientists", "app-developers"],
        "iat": now,
        "exp": now + 600,
        **overrides,
    }


def _sign(claims: dict, key: object = None) -> str:
    jwk = _moto_signing_key()
    signing_key = key or jwt.PyJWK(jwk).key
    return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": jwk["kid"]})


def test_the_route_list_covers_the_api(platform: PlatformState) -> None:
    # Guards the next test against silently checking nothing
    routes = _protected_routes()
    assert ("POST", "/v1/models") in routes
    assert ("GET", "/v1/jobs/job_id/model") in routes
    assert ("GET", "/v1/devices/jobs") in routes
    assert ("GET", "/v1/datasets/dataset_id/jobs") in routes
    assert len(routes) >= 12


@pytest.mark.parametrize("route", _protected_routes(), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize(
    "make_header",
    [
        lambda _: {},
        lambda _: {"Authorization": "Bearer not-a-jwt"},
        lambda _: {"Authorization": "Basic dXNlcjpwYXNz"},
        lambda p: {"Authorization": f"Bearer {_sign(_claims(p, exp=int(time.time()) - 60))}"},
        lambda p: {"Authorization": f"Bearer {_sign(_claims(p, aud='another-client'))}"},
        lambda p: {"Authorization": f"Bearer {_sign(_claims(p, iss='https://evil.example/pool'))}"},
        lambda p: {"Authorization": f"Bearer {_sign(_claims(p, token_use='access'))}"},
        lambda p: {
            "Authorization": "Bearer "
            + _sign(_claims(p), rsa.generate_private_key(public_exponent=65537, key_size=2048))
        },
    ],
    ids=[
        "none",
        "garbage",
        "basic",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "access-token",
        "foreign-key",
    ],
)
def test_no_endpoint_works_without_a_valid_token(platform: PlatformState, route, make_header) -> None:
    method, path = route
    response = httpx.request(
        method, f"{platform.orchestrator_url}{path}", headers=make_header(platform), json={}
    )
    assert response.status_code == 401, response.text


def test_a_correctly_signed_token_is_accepted(platform: PlatformState) -> None:
    # The forged tokens above fail for their claims alone, not for their signature
    headers = {"Authorization": f"Bearer {_sign(_claims(platform))}"}
    assert httpx.get(f"{platform.orchestrator_url}/v1/models", headers=headers).status_code == 200


def test_a_device_token_is_not_a_person_token_and_vice_versa(
    platform: PlatformState, setting: Setting
) -> None:
    device_token = exchange_token(platform.orchestrator_url, setting.api_key, "d1").json()["token"]
    as_person = httpx.get(
        f"{platform.orchestrator_url}/v1/models", headers={"Authorization": f"Bearer {device_token}"}
    )
    as_device = httpx.get(
        f"{platform.orchestrator_url}/v1/devices/jobs",
        headers={"Authorization": f"Bearer {_sign(_claims(platform))}"},
    )
    assert as_person.status_code == 401
    assert as_device.status_code == 401


def test_an_unknown_api_key_gets_no_device_token(platform: PlatformState) -> None:
    response = exchange_token(platform.orchestrator_url, "ck_" + "x" * 40, "d1")
    assert response.status_code == 401


def test_scientist_b_cannot_touch_scientist_a_s_model(people, setting: Setting) -> None:
    # Given scientist A's model and a job that trains it
    job = setting.start(
        rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=1, max_round_attempts=1
    )
    intruder = people.client(Group.SCIENTISTS)

    # Then B sees none of it, and every attempt reads as "not found"
    assert intruder.models() == []
    assert intruder.jobs() == []
    for attempt in (
        lambda: intruder.model(setting.model_id),
        lambda: intruder.job(job["job_id"]),
        lambda: intruder.download_trained_model(job["job_id"]),
        lambda: intruder.start_training(setting.model_id, setting.dataset_id, {}, {}),
        lambda: intruder._request("POST", f"/v1/models/{setting.model_id}/commit"),
    ):
        with pytest.raises(CohortError) as refused:
            attempt()
        assert refused.value.status in (403, 404)
    # And A still can
    assert setting.scientist.model(setting.model_id)["model_id"] == setting.model_id


def test_roles_are_enforced(people, setting: Setting) -> None:
    developer = people.client(Group.APP_DEVELOPERS)
    with pytest.raises(CohortError) as refused:
        developer.models()
    assert refused.value.status == 403
    with pytest.raises(CohortError) as refused:
        setting.scientist.register_dataset("sneaky", [{"name": "x", "type": "bool"}])
    assert refused.value.status == 403
    # An app developer cannot mint keys for another developer's dataset
    with pytest.raises(CohortError) as refused:
        developer.create_api_key(setting.dataset_id)
    assert refused.value.status == 404


def test_only_the_developer_who_registered_a_dataset_sees_its_jobs(people, setting: Setting) -> None:
    # Given a job on a developer's dataset
    setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=1, max_round_attempts=1)
    other_developer = people.client(Group.APP_DEVELOPERS)

    # Then another developer is told it does not exist, as for the dataset's keys, and a scientist
    # (who trains on the dataset but did not register it) is refused for the role
    for client, status in ((other_developer, 404), (setting.scientist, 403)):
        with pytest.raises(CohortError) as refused:
            client.dataset_jobs(setting.dataset_id)
        assert refused.value.status == status
    with pytest.raises(CohortError) as refused:
        other_developer.dataset_jobs("no-such-dataset")
    assert refused.value.status == 404
    # And the developer who registered it sees the job
    assert len(setting.developer.dataset_jobs(setting.dataset_id)) == 1


def test_the_trained_model_is_not_downloadable_before_completion(setting: Setting) -> None:
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    with pytest.raises(CohortError) as refused:
        setting.scientist.download_trained_model(job["job_id"])
    assert refused.value.status == 409


def test_a_revoked_api_key_gets_no_device_token(platform: PlatformState, people) -> None:
    # Given an app with two keys
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("revoking-app", [{"name": "x", "type": "bool"}])
    kept, revoked = (developer.create_api_key(dataset["dataset_id"]) for _ in range(2))

    # When one is revoked
    developer.revoke_api_key(dataset["dataset_id"], revoked["key_id"])

    # Then only the other still buys device tokens, and the listing says which is which
    phone = DeviceKey.generate()

    def exchange(key: dict) -> int:
        return exchange_token(platform.orchestrator_url, key["api_key"], "phone", phone).status_code

    assert exchange(kept) == 200
    assert exchange(revoked) == 401
    listed = {k["key_id"]: k["revoked"] for k in developer.api_keys(dataset["dataset_id"])}
    assert listed == {kept["key_id"]: False, revoked["key_id"]: True}
    assert all("api_key" not in k for k in developer.api_keys(dataset["dataset_id"]))

    # And another developer can neither list nor revoke them
    other = people.client(Group.APP_DEVELOPERS)
    for attempt in (
        lambda: other.api_keys(dataset["dataset_id"]),
        lambda: other.revoke_api_key(dataset["dataset_id"], kept["key_id"]),
    ):
        with pytest.raises(CohortError) as refused:
            attempt()
        assert refused.value.status == 404
    assert exchange(kept) == 200


def test_an_expired_device_token_is_refused_by_orchestrator_and_node(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a device token that is correctly signed but expired a minute ago
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    secret = get_settings().token_secret.get_secret_value()
    now = int(time.time())
    claims = {
        "sub": "late-phone",
        "dataset_id": setting.dataset_id,
        "aud": DEVICE_TOKEN_AUDIENCE,
        "iss": DEVICE_TOKEN_ISSUER,
        "iat": now - 960,
        "exp": now - 60,
    }
    headers = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    node_url = Device(platform, setting.api_key, "ok").node_url(job["job_id"])

    # Then both the orchestrator and the node refuse it, saying what to do
    for response in (
        httpx.get(f"{platform.orchestrator_url}/v1/devices/jobs", headers=headers),
        httpx.post(f"{node_url}/cycle", headers=headers, json=AVAILABLE),
    ):
        assert response.status_code == 401
        assert "exchange the API key" in response.json()["detail"]


def test_no_node_endpoint_works_without_a_valid_device_token(
    platform: PlatformState, setting: Setting
) -> None:
    # Given a running job's node
    job = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)
    node_url = Device(platform, setting.api_key, "d").node_url(job["job_id"])
    bad_headers = [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {_sign(_claims(platform))}"},  # a person's token is not a device's
        {"Authorization": f"Bearer {jwt.encode({'sub': 'd'}, 'guessed-secret-' * 4, algorithm='HS256')}"},
    ]

    # Then every route refuses each of them
    for headers in bad_headers:
        cycle = httpx.post(f"{node_url}/cycle", headers=headers, json=AVAILABLE)
        report = httpx.put(
            f"{node_url}/reports/any-key",
            params={"num_samples": 1, "loss": 0.1, "accuracy": 0.5},
            content=b"x",
            headers=headers,
        )
        assert (cycle.status_code, report.status_code) == (401, 401)
