"""Oversized and malformed bodies get a clear 4xx and change nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from cohort.catalogue import Group
from cohort.local.platform import PlatformState

from .scenario import TINY_MLP

TWO_MIB = 2 * 1024 * 1024


def _padded_model_request() -> bytes:
    return json.dumps({"name": "x" * TWO_MIB, "architecture": TINY_MLP}).encode()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_oversized_json_body_is_refused_with_413(platform: PlatformState, people, declared: bool) -> None:
    token = people.token(Group.SCIENTISTS)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = _padded_model_request()
    # A generator body goes out chunked, with no length for the server to check up front.
    content = body if declared else (body[i : i + 65536] for i in range(0, len(body), 65536))

    response = httpx.post(f"{platform.orchestrator_url}/v1/models", content=content, headers=headers)

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    models = httpx.get(f"{platform.orchestrator_url}/v1/models", headers=headers).json()
    assert models == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"name": 5, "architecture": {}}', b'{"name": "m"}'],
    ids=["malformed", "wrong-shape", "wrong-types", "missing-field"],
)
def test_a_malformed_model_request_is_refused_with_422(platform: PlatformState, people, body: bytes) -> None:
    token = people.token(Group.SCIENTISTS)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    response = httpx.post(f"{platform.orchestrator_url}/v1/models", content=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"]
    assert httpx.get(f"{platform.orchestrator_url}/v1/models", headers=headers).json() == []
