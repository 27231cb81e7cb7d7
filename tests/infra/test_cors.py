"""CORS: the website's origin, derived from website_url, is the only one any part of the app admits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App

from cdk_stacks.config import StageConfig

from .helpers import Synth, cdk_context, walk


def _config(website_url: str) -> StageConfig:
    return StageConfig.from_context(App(context=cdk_context(**{"cohort:website_url": website_url})))


@pytest.mark.parametrize(
    ("website_url", "origin"),
    [
        ("https://main.d1a2b3c4.amplifyapp.com", "https://main.d1a2b3c4.amplifyapp.com"),
        ("https://Cohort.Example.com/", "https://cohort.example.com"),  # as browsers write it
        ("https://cohort.example.com:443", "https://cohort.example.com"),  # the default port is implied
        ("https://cohort.example.com:8443", "https://cohort.example.com:8443"),
        ("http://localhost:5173", "http://localhost:5173"),  # a local dashboard against a stage
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_the_website_origin_is_website_url_as_a_browser_sends_it(website_url: str, origin: str) -> None:
    # Given a stage whose website runs at website_url
    config = _config(website_url)

    # Then the origin CORS admits is exactly the Origin header the site's requests carry
    assert config.website_origin == origin


@pytest.mark.parametrize(
    "website_url",
    [
        "cohort.example.com",  # no scheme
        "ftp://cohort.example.com",
        "https://",  # no host
        "https://cohort.example.com/dashboard",  # a path: the site is served from the root
        "https://cohort.example.com/?next=/jobs",
        "https://cohort.example.com/#jobs",
        "https://admin@cohort.example.com",
        "https://cohort.example.com:99999",
        "https://[::1]:8443",  # the orchestrator's origin list takes host names and IPv4 only
        "http://cohort.example.com",  # plain http beyond this machine
    ],
)
def test_a_website_url_that_is_no_origin_stops_synth_naming_the_field(website_url: str) -> None:
    # When a stage's website_url is not an origin the site could be served from
    with pytest.raises(ValueError, match="website_url") as error:
        _config(website_url)

    # Then synth stops, and says which stage is misconfigured
    assert "stage 'dev' is misconfigured" in str(error.value)


def _allowed_origins(synth: Synth) -> list[tuple[str, str, Any]]:
    """(stack, where, origins) for every place of the app that admits cross-origin callers."""
    found = []
    for stack, template in synth.templates.items():
        for node in walk(template["Resources"]):
            if not isinstance(node, dict):
                continue
            if "AllowedOrigins" in node:  # S3 CORS rules
                found.append((stack, "S3 CORS rule", node["AllowedOrigins"]))
            for key, value in node.items():  # API Gateway preflights and gateway responses
                # (a method response only declares the header, with true; its integration sets it)
                if key.endswith(".header.Access-Control-Allow-Origin") and value is not True:
                    found.append((stack, key, [value.strip("'")]))
            if node.get("Name") == "COHORT_ALLOWED_ORIGINS":  # the orchestrator's own CORS
                found.append((stack, "COHORT_ALLOWED_ORIGINS", json.loads(node["Value"])))
    return found


def test_every_cors_rule_of_the_app_admits_the_website_origin_alone(synth: Synth) -> None:
    # Given every place of a stage that admits cross-origin callers
    found = _allowed_origins(synth)

    # Then they are the buckets the browser uses, the API's preflights and errors, and the orchestrator
    assert sorted((stack, where) for stack, where, _ in found) == sorted(
        [("storage", "S3 CORS rule")] * 3
        + [("api", "method.response.header.Access-Control-Allow-Origin")] * 2
        + [("api", "gatewayresponse.header.Access-Control-Allow-Origin")] * 2
        + [("compute", "COHORT_ALLOWED_ORIGINS")]
    )

    # And each admits the website's origin and nothing else: no wildcard, no second origin
    for stack, where, origins in found:
        assert not any("*" in origin for origin in origins), (stack, where, origins)
        assert origins == [synth.config.website_origin], (stack, where, origins)
