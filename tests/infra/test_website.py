"""Website: an Amplify Hosting app that builds website/, serves it as a single-page app, and tells it
where the API and the user pool are; no repository token ever appears in a template."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.assertions import Template

from cdk_stacks.config import StageConfig
from cdk_stacks.website import WebsiteStack

from .helpers import REGION, REPO, Synth, Target, cdk_context, render

# The contract's config.json on AWS: cognitoEndpoint is for the local platform only.
CONFIG_KEYS = {"apiUrl", "region", "userPoolId", "userPoolClientId"}
CONFIG_VARIABLE = "COHORT_WEBSITE_CONFIG"
# A build installs the site's packages and runs TypeScript and Vite: minutes on a cold npm cache.
BUILD_TIMEOUT_SECONDS = 900


def _app(synth: Synth) -> dict[str, Any]:
    (app,) = synth.resources("website", "AWS::Amplify::App").values()
    return app["Properties"]


def _variables(synth: Synth) -> dict[str, Any]:
    return {variable["Name"]: variable["Value"] for variable in _app(synth)["EnvironmentVariables"]}


def _application(synth: Synth) -> dict[str, Any]:
    """The one application of the monorepo build spec."""
    (application,) = yaml.safe_load(_app(synth)["BuildSpec"])["applications"]
    return application


def _site_config(synth: Synth) -> dict[str, str]:
    """config.json as the build receives it, with references written ``${...}``."""
    return json.loads(render(_variables(synth)[CONFIG_VARIABLE]))


def _reference(synth: Synth, value: str) -> Target:
    """The resource behind a ``${Import:...}`` that render() wrote into a string."""
    (name,) = re.fullmatch(r"\$\{Import:([^}]+)\}", value).groups()
    target = synth.resolve("website", {"Fn::ImportValue": name})
    assert target is not None, value
    return target


def _headers(synth: Synth) -> tuple[dict[str, Any], dict[str, str]]:
    """(the monorepo application's only header rule, its headers by name)."""
    (application,) = yaml.safe_load(render(_app(synth)["CustomHeaders"]))["applications"]
    (rule,) = application["customHeaders"]
    return {**rule, "appRoot": application["appRoot"]}, {h["key"]: h["value"] for h in rule["headers"]}


def _api_origin(synth: Synth) -> str:
    """The origin of the API's URL as config.json gives it."""
    api_url = _site_config(synth)["apiUrl"]
    return api_url[: api_url.index("/", len("https://"))]


# -- the app and its configuration ------------------------------------------------------------


def test_the_website_is_an_amplify_app_configured_for_the_stage(dev: Synth) -> None:
    # Given the website stack
    app = _app(dev)
    (branch,) = dev.resources("website", "AWS::Amplify::Branch").values()

    # Then it hosts a web app, with no repository and so no token in the dev stage
    assert app["Platform"] == "WEB"
    assert "Repository" not in app
    assert "AccessToken" not in app
    assert branch["Properties"]["BranchName"] == dev.config.website_branch

    # And Amplify treats website/ as the app of a monorepo, as the build spec declares
    assert _variables(dev)["AMPLIFY_MONOREPO_APP_ROOT"] == _application(dev)["appRoot"] == "website"

    # And it builds on a maintained Node that Vite supports (22 or later), whatever the image's default
    (node,) = (p for p in json.loads(_variables(dev)["_LIVE_UPDATES"]) if p["pkg"] == "node")
    assert node["type"] == "nvm"
    assert int(node["version"].split(".")[0]) >= 22


def test_the_site_config_is_the_contracts_and_names_this_stages_api_and_website_client(dev: Synth) -> None:
    # Given config.json as the build and the manual deployment receive it
    config = _site_config(dev)

    # Then it has exactly the contract's keys for AWS, and nothing that signs in elsewhere
    assert set(config) == CONFIG_KEYS

    # And it points at the API's stage URL in this region
    api = _reference(dev, config["apiUrl"].removeprefix("https://").split(".")[0])
    assert dev.resource(api)["Type"] == "AWS::ApiGateway::RestApi"
    assert f".execute-api.{REGION}." in config["apiUrl"]
    assert config["apiUrl"].endswith("/")
    assert config["region"] == REGION

    # And at the user pool and its website client, whose ID tokens the API accepts
    assert dev.properties(_reference(dev, config["userPoolId"]))["UserPoolName"] == dev.catalogue.user_pool
    client = dev.properties(_reference(dev, config["userPoolClientId"]))
    assert render(client["ClientName"]) == f"{dev.catalogue.prefix}-website"


def test_the_stack_outputs_what_a_manual_deployment_needs(dev: Synth) -> None:
    # Given the website stack's outputs
    outputs = dev.templates["website"]["Outputs"]
    (app_id,) = dev.resources("website", "AWS::Amplify::App")

    # Then they name the app and its branch, and where the branch is served
    assert outputs["AppId"]["Value"] == {"Fn::GetAtt": [app_id, "AppId"]}
    assert outputs["BranchName"]["Value"] == dev.config.website_branch
    assert (
        render(outputs["BranchUrl"]["Value"])
        == f"https://{dev.config.website_branch}.${{{app_id}.DefaultDomain}}"
    )

    # And the site config is the very value the build writes (test_secrets: no output holds a secret)
    assert outputs["SiteConfig"]["Value"] == _variables(dev)[CONFIG_VARIABLE]


# -- serving --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/jobs", "/jobs/8f14e45f", "/datasets/abc/sample", "/models/v1.2"])
def test_a_route_of_the_single_page_app_is_served_index_html(dev: Synth, path: str) -> None:
    # Given the app's custom rules, the Amplify regular expression read as Python's
    (rule,) = _app(dev)["CustomRules"]
    source = re.compile(rule["Source"].removeprefix("</").removesuffix("/>"))

    # Then a path that is not a file is answered with index.html and a 200, not a redirect
    assert source.search(path), path
    assert (rule["Target"], rule["Status"]) == ("/index.html", "200")


@pytest.mark.parametrize(
    "path", ["/config.json", "/assets/index-3b2f1c.js", "/assets/index-9ac0.css", "/favicon.ico", "/logo.svg"]
)
def test_files_of_the_site_are_served_as_they_are(dev: Synth, path: str) -> None:
    # Given the app's rewrite rule
    (rule,) = _app(dev)["CustomRules"]
    source = re.compile(rule["Source"].removeprefix("</").removesuffix("/>"))

    # Then the site's own files, config.json first, are never rewritten to index.html
    assert not source.search(path), path


def test_every_file_is_served_with_the_security_headers(synth: Synth) -> None:
    # Given the app's custom headers, in Amplify's monorepo form
    rule, headers = _headers(synth)

    # Then they apply to every file of the website app
    assert (rule["appRoot"], rule["pattern"]) == ("website", "**/*")

    # And they keep HTTPS, MIME types, framing and referrers locked down
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def test_the_content_security_policy_lets_the_site_reach_only_its_api_cognito_and_s3(synth: Synth) -> None:
    # Given the Content-Security-Policy the site is served with, directive by directive
    _, headers = _headers(synth)
    policy = {
        name: sources
        for name, *sources in (
            directive.split() for directive in headers["Content-Security-Policy"].split(";")
        )
    }

    connect = policy.pop("connect-src")

    # Then scripts, styles and everything else come from the site itself, and nothing frames it
    assert policy == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    }

    # And it connects to the API's origin (config.json's apiUrl), Cognito's API and S3 in this region
    assert connect == [
        "'self'",
        _api_origin(synth),
        f"https://cognito-idp.{REGION}.amazonaws.com",
        "https://*.s3.amazonaws.com",
        f"https://*.s3.{REGION}.amazonaws.com",
    ]


# -- the build ------------------------------------------------------------------------------


def test_the_build_spec_builds_website_and_publishes_dist_with_the_stage_config(dev: Synth) -> None:
    # Given the one application of the build spec
    frontend = _application(dev)["frontend"]

    # Then it installs exactly the locked packages, builds, and writes config.json from the stage
    assert frontend["phases"]["preBuild"]["commands"] == ["npm ci"]
    build = frontend["phases"]["build"]["commands"]
    assert build[0] == "npm run build"
    assert any(f'"${CONFIG_VARIABLE}" > dist/config.json' in command for command in build)

    # And it publishes everything in dist/
    assert frontend["artifacts"] == {"baseDirectory": "dist", "files": ["**/*"]}


@pytest.mark.slow  # npm ci and a Vite build on a copy of the repository
def test_amplify_builds_a_servable_site_from_a_checkout(dev: Synth, tmp_path: Path) -> None:
    # Given a checkout laid out like the repository: the site and the OpenAPI document it types its calls from
    application = _application(dev)
    checkout = tmp_path / "checkout"
    shutil.copytree(
        REPO / "website", checkout / "website", ignore=shutil.ignore_patterns("node_modules", "dist")
    )
    shutil.copytree(REPO / "docs" / "openapi", checkout / "docs" / "openapi")
    config = {
        "apiUrl": "https://a1b2c3.execute-api.us-east-1.amazonaws.com/dev/",
        "region": "us-east-1",
        "userPoolId": "us-east-1_AbCdEf123",
        "userPoolClientId": "4example0client0id",
    }
    bash = shutil.which("bash")
    assert bash, "Amplify runs build commands with bash"

    # When Amplify's preBuild and build commands run in the app root, with the stage's config set
    app_root = checkout / application["appRoot"]
    phases = application["frontend"]["phases"]
    for command in phases["preBuild"]["commands"] + phases["build"]["commands"]:
        done = subprocess.run(
            [bash, "-c", command],
            cwd=app_root,
            env={**os.environ, CONFIG_VARIABLE: json.dumps(config)},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    # Then the published folder holds index.html, whose scripts are bundles that exist beside it
    published = app_root / application["frontend"]["artifacts"]["baseDirectory"]
    scripts = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', (published / "index.html").read_text())
    assert scripts, "index.html loads no script"
    for script in scripts:
        assert re.fullmatch(r"/assets/[^/]+\.js", script), script
        assert (published / script.removeprefix("/")).is_file(), f"{script} is not in the artefact"

    # And config.json, next to it, is the stage's config, exactly
    assert json.loads((published / "config.json").read_text()) == config


# -- a repository build ------------------------------------------------------------------------


def test_a_repository_token_is_read_by_cloudformation_from_secrets_manager() -> None:
    # Given a stage that builds the website from a repository whose token is a secret
    secret_name = "cohort/dev/website-token"
    app = App(
        context=cdk_context(
            **{
                "cohort:website_repository": "https://github.com/example/cohort-website",
                "cohort:website_token_secret": secret_name,
            }
        )
    )
    config = StageConfig.from_context(app)
    # (the stack reads only these attributes of the auth and API stacks)
    auth = SimpleNamespace(
        user_pool=SimpleNamespace(user_pool_id="pool"),
        website_client=SimpleNamespace(user_pool_client_id="client"),
    )
    api = SimpleNamespace(api=SimpleNamespace(url="https://api.example/dev/"), origin="https://api.example")

    # When the website stack is synthesized
    stack = WebsiteStack(app, "Website", config=config, auth=auth, api=api)
    template = Template.from_stack(stack).to_json()

    # Then the token is a dynamic reference to the secret, resolved only by CloudFormation
    (amplify,) = (r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Amplify::App")
    assert amplify["AccessToken"] == f"{{{{resolve:secretsmanager:{secret_name}:SecretString:::}}}}"
    assert amplify["Repository"] == config.website_repository

    # And the branch builds on every push
    (branch,) = (
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Amplify::Branch"
    )
    assert branch["EnableAutoBuild"] is True
    assert "resolve:secretsmanager" not in json.dumps(template.get("Outputs", {}))


@pytest.mark.slow  # make website-zip builds the site first when it is not built
def test_the_manual_deployment_bundle_holds_the_build_and_the_stacks_config(tmp_path: Path) -> None:
    # Given an AWS CLI that answers describe-stacks with a website stack's SiteConfig output
    config = {
        "apiUrl": "https://api.example/dev/",
        "region": REGION,
        "userPoolId": "p",
        "userPoolClientId": "c",
    }
    calls = tmp_path / "aws-calls"
    fake_aws = tmp_path / "bin" / "aws"
    fake_aws.parent.mkdir()
    fake_aws.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho '{json.dumps(config)}'\n")
    fake_aws.chmod(0o755)

    # When CDK_INSTRUCTIONS.md's packaging step runs
    environment = {**os.environ, "PATH": f"{fake_aws.parent}:{os.environ['PATH']}"}
    subprocess.run(
        [
            shutil.which("make") or "make",
            "--no-print-directory",
            "website-zip",
            "WEBSITE_STACK=CohortTestWebsite",
        ],
        cwd=REPO,
        env=environment,
        check=True,
        capture_output=True,
    )

    # Then it asked for that stack's SiteConfig output
    assert "--stack-name CohortTestWebsite" in calls.read_text()
    assert "OutputKey=='SiteConfig'" in calls.read_text()
    # And the zip holds the built site at its root, with config.json beside index.html
    with zipfile.ZipFile(REPO / "build" / "website.zip") as bundle:
        names = set(bundle.namelist())
        assert json.loads(bundle.read("config.json")) == config
        index = bundle.read("index.html").decode()
    scripts = re.findall(r'src="/(assets/[^"]+\.js)"', index)
    assert scripts
    assert set(scripts) <= names
    # And the build itself was left as it was: no stage's settings in website/dist
    assert not (REPO / "website" / "dist" / "config.json").exists()
