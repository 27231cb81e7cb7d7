"""The local website server's answers, in process: files, the SPA fallback, caching, config and headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cohort.local.website import SiteConfig, create_app
from tests.asgi_server import serving
from tests.built_site import INDEX_MARKER, SCRIPT, STYLESHEET, write_built_site

CONFIG = SiteConfig(
    api_url="http://127.0.0.1:8001",
    region="eu-west-3",
    user_pool_id="eu-west-3_pool",
    user_pool_client_id="client-1",
    cognito_endpoint="http://127.0.0.1:8002",
    emulator_url="http://127.0.0.1:8003",
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[httpx.Client]:
    (tmp_path / "outside.txt").write_text("not part of the site")
    with (
        serving(create_app(write_built_site(tmp_path / "dist"), CONFIG)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def test_the_index_and_the_app_s_routes_answer_the_page(site: httpx.Client) -> None:
    for path in ("/", "/index.html", "/jobs", "/jobs/3f2a/rounds", "/sign-up/"):
        response = site.get(path)
        assert response.status_code == 200, path
        assert INDEX_MARKER in response.text
        assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_cached_for_long_and_other_files_revalidated(site: httpx.Client) -> None:
    script, stylesheet, icon = site.get(f"/{SCRIPT}"), site.get(f"/{STYLESHEET}"), site.get("/favicon.svg")

    assert script.status_code == stylesheet.status_code == icon.status_code == 200
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in script.headers["content-type"]
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert icon.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    ["/assets/index-00000000.js", "/missing.png", "/..%2Foutside.txt", "/assets/..%2F..%2Foutside.txt"],
    ids=["missing-asset", "missing-file", "up-one", "up-two"],
)
def test_a_missing_file_or_one_outside_the_site_is_not_found(site: httpx.Client, path: str) -> None:
    response = site.get(path)

    assert response.status_code == 404
    assert "not part of the site" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"  # errors carry the headers too


def test_config_json_has_the_contract_s_shape(site: httpx.Client) -> None:
    response = site.get("/config.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.json() == {
        "apiUrl": "http://127.0.0.1:8001",
        "region": "eu-west-3",
        "userPoolId": "eu-west-3_pool",
        "userPoolClientId": "client-1",
        "cognitoEndpoint": "http://127.0.0.1:8002",
    }


def test_without_a_bridge_config_json_names_no_cognito_endpoint(tmp_path: Path) -> None:
    config = SiteConfig(**{**CONFIG.__dict__, "cognito_endpoint": ""})

    with serving(create_app(write_built_site(tmp_path), config)) as url:
        assert "cognitoEndpoint" not in httpx.get(f"{url}/config.json").json()


def test_every_answer_carries_the_security_headers(site: httpx.Client) -> None:
    for response in (site.get("/"), site.get(f"/{SCRIPT}"), site.get("/nope.js"), site.post("/")):
        policy = response.headers["content-security-policy"]
        assert (
            "connect-src 'self' http://127.0.0.1:8001 http://127.0.0.1:8002 http://127.0.0.1:8003;" in policy
        )
        assert "default-src 'self'; script-src 'self'; style-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert "object-src 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # plain HTTP on loopback


def test_only_reads_are_served(site: httpx.Client) -> None:
    assert site.head("/").status_code == 200
    assert site.post("/").status_code == 405
    assert site.delete(f"/{SCRIPT}").status_code == 405
