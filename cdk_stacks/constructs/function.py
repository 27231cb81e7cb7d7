"""A Lambda function with a role, a log group and Powertools settings of its own."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.lambda_bundling import ARCHITECTURE, RUNTIME, handler_code

METRICS_NAMESPACE = "Cohort"
_DEFAULT_TIMEOUT = Duration.seconds(30)


class CohortFunction(Construct):
    """``lambdas/<name>/handler.py`` deployed with least privilege: grants go on ``role``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        config: StageConfig,
        dependencies: lambda_.ILayerVersion,
        environment: dict[str, str],
        timeout: Duration = _DEFAULT_TIMEOUT,
        memory_mib: int = 512,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Cohort {config.stage} {name} function",
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=config.removal_policy
        )
        # Only this group, instead of the managed basic-execution policy's logs:* on every group.
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=handler_code(name),
            layers=[dependencies],
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_mib,
            environment={
                "POWERTOOLS_SERVICE_NAME": name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "COHORT_STAGE": config.stage,
                **environment,
            },
        )
