"""The public entry: an API Gateway REST API in front of the orchestrator, the FL nodes and email.

- ``/v1/...`` for scientists and app developers: Cognito authorizer (ID tokens);
- ``/v1/devices/...`` and ``/jobs/...`` for devices: device tokens, verified by
  the orchestrator and the FL nodes themselves;
- ``POST /v1/notifications``: the email function, Cognito authorizer.

Everything but email goes through a VPC link to the NLB in front of the internal ALB. The dashboard
calls the people routes from its own origin (``website_url``), and only that origin: API Gateway
answers their preflights and stamps its own error responses; the orchestrator, the rest.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from cdk_stacks.auth import AuthStack
from cdk_stacks.compute import ComputeStack
from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.constructs.web_acl import regional_web_acl
from cdk_stacks.functions import FunctionsStack
from cohort.catalogue import Catalogue

_PROXY = "method.request.path.proxy"
# What the dashboard sends: an ID token, and JSON bodies.
_CORS_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]
_CORS_HEADERS = ["Authorization", "Content-Type"]


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        catalogue: Catalogue,
        auth: AuthStack,
        compute: ComputeStack,
        functions: FunctionsStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._compute = compute
        self.api = self._build_rest_api()
        # The API's origin, without the stage path: what the dashboard's CSP lets it connect to.
        self.origin = f"https://{self.api.rest_api_id}.execute-api.{self.region}.{self.url_suffix}"
        self._authorizer = apigateway.CognitoUserPoolsAuthorizer(
            self,
            "People",
            cognito_user_pools=[auth.user_pool],
            identity_source="method.request.header.Authorization",
        )
        self._vpc_link = apigateway.VpcLink(self, "VpcLink", targets=[compute.nlb])
        self._build_people_routes(functions)
        self._build_cors()
        self._build_device_routes()
        self._build_usage_plan()
        self._build_web_acl()
        ssm.StringParameter(
            self,
            "PublicUrl",
            parameter_name=catalogue.public_api_url_parameter,
            string_value=self.api.url,
            description="Where devices reach Cohort; the orchestrator builds FL-node URLs from it",
        )

    def _build_rest_api(self) -> apigateway.RestApi:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"cohort-{self._config.stage}",
            description="Cohort: people, devices and FL nodes",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            binary_media_types=["application/octet-stream"],  # device reports are safetensors bytes
            deploy_options=apigateway.StageOptions(
                stage_name=self._config.stage,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                throttling_rate_limit=self._config.api_rate_limit,
                throttling_burst_limit=self._config.api_burst_limit,
            ),
        )
        self._validator = api.add_request_validator(
            "Requests", validate_request_parameters=True, validate_request_body=True
        )
        acknowledge(
            api.node.find_child("CloudWatchRole"),
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-wide logging role; AWS maintains exactly this policy for it.",
        )
        return api

    def _proxy_to_alb(self, path_prefix: str) -> apigateway.Integration:
        return apigateway.Integration(
            type=apigateway.IntegrationType.HTTP_PROXY,
            integration_http_method="ANY",
            uri=f"http://{self._compute.nlb.load_balancer_dns_name}/{path_prefix}/{{proxy}}",
            options=apigateway.IntegrationOptions(
                connection_type=apigateway.ConnectionType.VPC_LINK,
                vpc_link=self._vpc_link,
                request_parameters={"integration.request.path.proxy": _PROXY},
            ),
        )

    def _build_people_routes(self, functions: FunctionsStack) -> None:
        v1 = self.api.root.add_resource("v1")
        proxy = v1.add_proxy(any_method=False)
        proxy.add_method(
            "ANY",
            self._proxy_to_alb("v1"),
            authorizer=self._authorizer,
            authorization_type=apigateway.AuthorizationType.COGNITO,
            request_parameters={_PROXY: True},
            request_validator=self._validator,
        )
        notifications = v1.add_resource("notifications")
        notifications.add_method(
            "POST",
            apigateway.LambdaIntegration(functions.email.function),
            authorizer=self._authorizer,
            authorization_type=apigateway.AuthorizationType.COGNITO,
            request_validator=self._validator,
        )
        self._v1 = v1
        self._people_resources = [proxy, notifications]

    def _build_cors(self) -> None:
        origin = self._config.website_origin
        # Preflights carry no token, so API Gateway answers them itself, before the authorizer.
        for resource in self._people_resources:
            resource.add_cors_preflight(
                allow_origins=[origin],
                allow_methods=_CORS_METHODS,
                allow_headers=_CORS_HEADERS,
                max_age=Duration.hours(1),
            )
        # API Gateway's own answers (the authorizer's 401, WAF's 403, throttling's 429, a 5xx) never
        # reach the orchestrator: without this header the dashboard could not read why it failed.
        for construct_id, response_type in (
            ("Default4xx", apigateway.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigateway.ResponseType.DEFAULT_5_XX),
        ):
            self.api.add_gateway_response(
                construct_id,
                type=response_type,
                response_headers={"Access-Control-Allow-Origin": f"'{origin}'", "Vary": "'Origin'"},
            )

    def _build_device_routes(self) -> None:
        reason = (
            "Devices hold no Cognito identity: their API key and short-lived device token are verified "
            "by the orchestrator and the FL nodes on every request."
        )
        for resource, prefix in (
            (self._v1.add_resource("devices"), "v1/devices"),
            (self.api.root.add_resource("jobs"), "jobs"),
        ):
            method = resource.add_proxy(any_method=False).add_method(
                "ANY",
                self._proxy_to_alb(prefix),
                request_parameters={_PROXY: True},
                request_validator=self._validator,
            )
            acknowledge(method, "APIG4", reason)
            acknowledge(method, "COG4", reason)

    def _build_usage_plan(self) -> None:
        self.api.add_usage_plan(
            "UsagePlan",
            name=f"cohort-{self._config.stage}",
            description="Limits for integrations that call Cohort with an API Gateway key",
            throttle=apigateway.ThrottleSettings(
                rate_limit=self._config.api_rate_limit, burst_limit=self._config.api_burst_limit
            ),
            quota=apigateway.QuotaSettings(limit=self._config.api_daily_quota, period=apigateway.Period.DAY),
            api_stages=[apigateway.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )

    def _build_web_acl(self) -> None:
        acl = regional_web_acl(self, "WebAcl", metric_prefix=f"cohort{self._config.stage.title()}Api")
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
