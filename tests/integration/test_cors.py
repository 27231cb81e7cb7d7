"""The orchestrator answers CORS for the dashboard's origin, and for no other, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from cohort.catalogue import Group
from cohort.local.platform import PlatformState

OTHER_ORIGIN = "http://127.0.0.1:9"  # a loopback origin the platform does not serve the dashboard on


def _preflight(platform: PlatformState, origin: str, method: str = "GET") -> httpx.Response:
    return httpx.options(
        f"{platform.orchestrator_url}/v1/jobs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def test_the_dashboard_s_origin_passes_the_preflight(platform: PlatformState) -> None:
    # When the browser asks, from the dashboard's origin, whether it may send a token
    response = _preflight(platform, platform.website_origin, "POST")

    # Then it may, with the methods and headers the dashboard uses, cached, and without credentials
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == platform.website_origin
    assert {m.strip() for m in response.headers["access-control-allow-methods"].split(",")} == {
        "GET",
        "POST",
        "DELETE",
    }
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers


def test_another_origin_is_refused_at_the_preflight(platform: PlatformState) -> None:
    response = _preflight(platform, OTHER_ORIGIN)

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_an_actual_request_carries_the_header_for_the_dashboard_only(platform: PlatformState, people) -> None:
    # Given a scientist's token
    headers = {"Authorization": f"Bearer {people.token(Group.SCIENTISTS)}"}

    # When the dashboard's origin and another one list the scientist's jobs
    ours = httpx.get(
        f"{platform.orchestrator_url}/v1/jobs", headers={**headers, "Origin": platform.website_origin}
    )
    theirs = httpx.get(f"{platform.orchestrator_url}/v1/jobs", headers={**headers, "Origin": OTHER_ORIGIN})

    # Then both are answered (CORS is for browsers to enforce), but only ours may be read by the page
    assert ours.status_code == theirs.status_code == 200
    assert ours.headers["access-control-allow-origin"] == platform.website_origin
    assert "origin" in ours.headers["vary"].lower()
    assert "access-control-allow-origin" not in theirs.headers


@pytest.mark.parametrize(
    ("method", "path", "group", "body", "status"),
    [
        ("GET", "/v1/jobs", None, None, 401),
        ("GET", "/v1/models", Group.APP_DEVELOPERS, None, 403),
        ("GET", "/v1/jobs/no-such-job", Group.SCIENTISTS, None, 404),
        ("POST", "/v1/jobs", Group.SCIENTISTS, {"model_id": 42}, 422),
        ("POST", "/v1/models", Group.SCIENTISTS, {"name": "x" * (2 * 1024 * 1024)}, 413),
    ],
    ids=["401", "403", "404", "422", "413"],
)
def test_an_error_answer_can_be_read_by_the_dashboard(
    platform: PlatformState, people, method: str, path: str, group: Group | None, body, status: int
) -> None:
    # Given a call from the dashboard's origin that the API refuses
    headers = {"Origin": platform.website_origin}
    if group is not None:
        headers["Authorization"] = f"Bearer {people.token(group)}"

    # When it is sent
    response = httpx.request(method, f"{platform.orchestrator_url}{path}", headers=headers, json=body)

    # Then the refusal carries the CORS header, so the page can show why
    assert response.status_code == status, response.text
    assert response.headers["access-control-allow-origin"] == platform.website_origin
    assert response.json()["detail"]
