"""The public API: who may call which route, where it goes, and how it is limited and logged."""

from __future__ import annotations

import json
import re

import pytest

from .helpers import Synth, Target, render

PEOPLE_ROUTES = [("/v1/{proxy+}", "ANY"), ("/v1/notifications", "POST")]
DEVICE_ROUTES = [("/v1/devices/{proxy+}", "ANY"), ("/jobs/{proxy+}", "ANY")]
# The dashboard calls the people routes from another origin: each answers its preflight.
PREFLIGHTS = [(path, "OPTIONS") for path, _ in PEOPLE_ROUTES]


def _routes(synth: Synth) -> dict[tuple[str, str], dict]:
    """Every method of the REST API by (path, HTTP method)."""
    resources = {k: r["Properties"] for k, r in synth.resources("api", "AWS::ApiGateway::Resource").items()}

    def path(resource_id: dict) -> str:
        if "Ref" not in resource_id:  # the API's root resource
            return ""
        resource = resources[resource_id["Ref"]]
        return f"{path(resource['ParentId'])}/{resource['PathPart']}"

    return {
        (path(m["Properties"]["ResourceId"]) or "/", m["Properties"]["HttpMethod"]): m["Properties"]
        for m in synth.resources("api", "AWS::ApiGateway::Method").values()
    }


def _only(synth: Synth, resource_type: str) -> tuple[Target, dict]:
    (logical_id,) = synth.resources("api", resource_type)
    target = Target("api", logical_id)
    return target, synth.properties(target)


def test_routes_are_exactly_the_people_and_device_routes(dev: Synth) -> None:
    # Given the methods of the REST API
    routes = _routes(dev)

    # Then there is no route beyond those the platform serves, and the website's preflights
    assert sorted(routes) == sorted(PEOPLE_ROUTES + PREFLIGHTS + DEVICE_ROUTES)


@pytest.mark.parametrize("route", PEOPLE_ROUTES, ids="{0[1]} {0[0]}".format)
def test_people_routes_require_a_cognito_token_of_the_user_pool(dev: Synth, route: tuple[str, str]) -> None:
    # Given a route for scientists and app developers
    method = _routes(dev)[route]

    # Then the Cognito authorizer guards it
    assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
    authorizer = dev.properties(dev.resolve("api", method["AuthorizerId"]))
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"

    # And the authorizer trusts Cohort's user pool, and only it
    (pool,) = (dev.resolve("api", arn) for arn in authorizer["ProviderARNs"])
    assert dev.properties(pool)["UserPoolName"] == dev.catalogue.user_pool


@pytest.mark.parametrize("route", DEVICE_ROUTES, ids="{0[1]} {0[0]}".format)
def test_device_routes_leave_authentication_to_the_device_tokens(dev: Synth, route: tuple[str, str]) -> None:
    # Given a device route
    method = _routes(dev)[route]

    # Then API Gateway lets it through to the orchestrator or node, which verify device tokens
    assert method["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in method


@pytest.mark.parametrize("route", [*DEVICE_ROUTES, PEOPLE_ROUTES[0]], ids="{0[1]} {0[0]}".format)
def test_proxy_routes_reach_the_internal_load_balancer_through_the_vpc_link(dev: Synth, route: tuple) -> None:
    # Given a proxied route and the API's VPC link
    integration = _routes(dev)[route]["Integration"]
    link, link_properties = _only(dev, "AWS::ApiGateway::VpcLink")

    # Then it is an HTTP proxy over the VPC link, whose target is the compute stack's NLB
    assert (integration["Type"], integration["ConnectionType"]) == ("HTTP_PROXY", "VPC_LINK")
    assert integration["ConnectionId"] == {"Ref": link.logical_id}
    (nlb,) = (dev.resolve("api", arn) for arn in link_properties["TargetArns"])
    assert dev.properties(nlb)["Type"] == "network"

    # And the path is forwarded as it was called
    path = route[0].removesuffix("{proxy+}")
    assert render(integration["Uri"]).endswith(f"{path}{{proxy}}")


def test_notifications_go_to_the_email_function(dev: Synth) -> None:
    # Given the notifications route
    integration = _routes(dev)[PEOPLE_ROUTES[1]]["Integration"]

    # Then it is a Lambda proxy integration with the email function
    assert integration["Type"] == "AWS_PROXY"
    (function_arn,) = (p for p in integration["Uri"]["Fn::Join"][1] if isinstance(p, dict))
    assert dev.resolve("api", function_arn) == dev.function("email")._replace(attribute="Arn")


def _header_values(value: str) -> set[str]:
    """A static header value as API Gateway maps it (``'a,b'``), as a set."""
    assert re.fullmatch(r"'[^']*'", value), value
    return {item.strip() for item in value.strip("'").split(",")}


@pytest.mark.parametrize("route", PREFLIGHTS, ids="{0[1]} {0[0]}".format)
def test_people_routes_answer_the_websites_preflight_without_a_token(synth: Synth, route: tuple) -> None:
    # Given the preflight method of a people route, in each stage
    method = _routes(synth)[route]

    # Then API Gateway answers it itself, before any authorizer: a preflight carries no token
    assert method["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in method
    assert method["Integration"]["Type"] == "MOCK"

    # And it lets the website's origin, and only it, send its token and JSON with the site's methods
    (response,) = method["Integration"]["IntegrationResponses"]
    headers = {
        name.removeprefix("method.response.header."): value
        for name, value in response["ResponseParameters"].items()
    }
    assert headers["Access-Control-Allow-Origin"] == f"'{synth.config.website_origin}'"
    assert _header_values(headers["Access-Control-Allow-Methods"]) == {"GET", "POST", "DELETE", "OPTIONS"}
    assert _header_values(headers["Access-Control-Allow-Headers"]) == {"Authorization", "Content-Type"}
    assert "Access-Control-Allow-Credentials" not in headers  # a bearer token, never cookies


def test_device_routes_answer_no_preflight(dev: Synth) -> None:
    # Given every method of the API
    routes = _routes(dev)

    # Then no device path has a preflight: devices are no browser pages, and need no CORS
    device_paths = {path.removesuffix("{proxy+}") for path, _ in DEVICE_ROUTES}
    for path, http_method in routes:
        if any(path.startswith(prefix) for prefix in device_paths):
            assert http_method != "OPTIONS", path

    # And their methods add no CORS header of their own
    for route in DEVICE_ROUTES:
        assert "Access-Control" not in json.dumps(routes[route]), route


def test_api_gateways_own_errors_let_the_website_read_them(synth: Synth) -> None:
    # Given the API's gateway responses, in each stage
    api, _ = _only(synth, "AWS::ApiGateway::RestApi")
    responses = {
        response["Properties"]["ResponseType"]: response["Properties"]
        for response in synth.resources("api", "AWS::ApiGateway::GatewayResponse").values()
    }

    # Then every 4xx and 5xx that API Gateway answers itself (the authorizer's 401 among them)
    # carries the website's origin, so the site can read why its call failed
    assert set(responses) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for response_type, response in responses.items():
        assert response["RestApiId"] == {"Ref": api.logical_id}, response_type
        allowed = response["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert allowed == f"'{synth.config.website_origin}'", response_type


def test_the_stage_is_throttled_logged_and_limited_by_a_usage_plan(synth: Synth) -> None:
    # Given each stage's API stage and usage plan
    stage, properties = _only(synth, "AWS::ApiGateway::Stage")
    _, plan = _only(synth, "AWS::ApiGateway::UsagePlan")
    config = synth.config

    # Then every method is throttled at the stage's rate and burst
    (settings,) = properties["MethodSettings"]
    assert (settings["HttpMethod"], settings["ResourcePath"]) == ("*", "/*")
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        config.api_rate_limit,
        config.api_burst_limit,
    )

    # And each request is logged to a log group of the stack
    logs = synth.resolve("api", properties["AccessLogSetting"]["DestinationArn"])
    assert synth.resource(logs)["Type"] == "AWS::Logs::LogGroup"
    assert "$context.requestId" in properties["AccessLogSetting"]["Format"]

    # And the usage plan applies the same limits and the daily quota to this stage
    assert plan["Throttle"] == {"RateLimit": config.api_rate_limit, "BurstLimit": config.api_burst_limit}
    assert plan["Quota"] == {"Limit": config.api_daily_quota, "Period": "DAY"}
    assert [synth.resolve("api", s["Stage"]) for s in plan["ApiStages"]] == [stage]


def test_a_regional_web_acl_guards_the_stage(dev: Synth) -> None:
    # Given the web ACL and its association
    acl, properties = _only(dev, "AWS::WAFv2::WebACL")
    stage, _ = _only(dev, "AWS::ApiGateway::Stage")
    _, association = _only(dev, "AWS::WAFv2::WebACLAssociation")

    # Then the regional ACL is associated with the API's stage
    assert properties["Scope"] == "REGIONAL"
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl.logical_id, "Arn"]}
    assert render(association["ResourceArn"]).endswith(f"/stages/${{{stage.logical_id}}}")

    # And it limits the request rate of each address
    assert any("RateBasedStatement" in rule["Statement"] for rule in properties["Rules"])


def test_the_public_url_is_published_under_the_catalogue_parameter(dev: Synth) -> None:
    # Given the API's SSM parameter
    _, parameter = _only(dev, "AWS::SSM::Parameter")
    api, _ = _only(dev, "AWS::ApiGateway::RestApi")
    stage, _ = _only(dev, "AWS::ApiGateway::Stage")

    # Then the orchestrator finds the API's HTTPS stage URL under the catalogue's name
    assert parameter["Name"] == dev.catalogue.public_api_url_parameter
    url = render(parameter["Value"])
    assert url.startswith(f"https://${{{api.logical_id}}}.execute-api.")
    assert url.endswith(f"/${{{stage.logical_id}}}/")
