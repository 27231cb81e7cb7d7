"""Website: an Amplify Hosting app whose repository token never appears in a template."""

from __future__ import annotations

import json
from types import SimpleNamespace

from aws_cdk import App
from aws_cdk.assertions import Template

from cdk_stacks.config import StageConfig
from cdk_stacks.website import WebsiteStack

from .helpers import Synth, cdk_context, render


def test_the_website_is_an_amplify_app_configured_for_the_stage(dev: Synth) -> None:
    # Given the website stack
    (app,) = dev.resources("website", "AWS::Amplify::App").values()
    (branch,) = dev.resources("website", "AWS::Amplify::Branch").values()

    # Then it hosts a web app, with no repository and so no token in the dev stage
    assert app["Properties"]["Platform"] == "WEB"
    assert "Repository" not in app["Properties"]
    assert "AccessToken" not in app["Properties"]
    assert branch["Properties"]["BranchName"] == dev.config.website_branch

    # And the build receives the API URL, user pool and client it needs
    (variable,) = app["Properties"]["EnvironmentVariables"]
    settings = render(variable["Value"])
    for key in ("apiUrl", "userPoolId", "clientId", "signInUrl"):
        assert f'"{key}":' in settings


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
        domain=SimpleNamespace(base_url=lambda: "https://sign-in.example"),
    )
    api = SimpleNamespace(api=SimpleNamespace(url="https://api.example/dev/"))

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
