"""What every Cohort task shares: the cluster, the device-token key, settings, logs, security groups."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.capability import Capability, CapabilitySecurityGroup
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.constructs.network import Network
from cohort.catalogue import Catalogue


class TaskPlatform(Capability):
    """The ECS cluster in the private subnets, and the pieces each service builds its tasks from."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        catalogue: Catalogue,
        network: Network,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.catalogue = catalogue
        self.network = network
        self.cluster = self._build_cluster()
        self.device_token_key = self._build_device_token_key()

    def _build_cluster(self) -> ecs.Cluster:
        return ecs.Cluster(
            self,
            "Cluster",
            cluster_name=self.catalogue.ecs_cluster,
            vpc=self.network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )

    def _build_device_token_key(self) -> secretsmanager.Secret:
        key = secretsmanager.Secret(
            self,
            "DeviceTokenKey",
            secret_name=self.catalogue.device_token_secret,
            description="HS256 key of the device tokens that the orchestrator issues and FL nodes verify",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=self.config.removal_policy,
        )
        acknowledge(
            key,
            "SMG4",
            "Tokens live 15 minutes; rotating means redeploying the tasks, which read the key at start.",
        )
        return key

    @property
    def environment(self) -> dict[str, str]:
        """The settings every Cohort service reads (cohort/settings.py) to find its resources."""
        return {
            "COHORT_STAGE": self.config.stage,
            "COHORT_NAMESPACE": self.catalogue.namespace,
            "AWS_REGION": Aws.REGION,
        }

    @property
    def device_token_secrets(self) -> dict[str, ecs.Secret]:
        """The device-token key, injected by ECS: the orchestrator signs with it, FL nodes verify."""
        return {"COHORT_TOKEN_SECRET": ecs.Secret.from_secrets_manager(self.device_token_key)}

    def log_driver(self, scope: Construct, service: str) -> ecs.LogDriver:
        """A log group of ``service``'s own in ``scope``, kept for the stage's retention."""
        group = logs.LogGroup(
            scope,
            f"{service.title().replace('_', '')}Logs",
            retention=self.config.log_retention,
            removal_policy=self.config.removal_policy,
        )
        return ecs.LogDrivers.aws_logs(stream_prefix=service, log_group=group)

    def security_group(self, scope: Construct, name: str, description: str) -> ec2.SecurityGroup:
        """A security group in the VPC: nothing inbound until a rule admits it, anything outbound."""
        return CapabilitySecurityGroup(
            scope,
            f"{name}SecurityGroup",
            vpc=self.network.vpc,
            description=description,
            allow_all_outbound=True,
        )


def acknowledge_task_definition(task_definition: ecs.TaskDefinition) -> None:
    """The findings every Cohort task definition has, with the reasons they are accepted."""
    acknowledge(
        task_definition,
        "ECS2",
        "The environment holds names and ids only; every secret comes from Secrets Manager.",
    )
    acknowledge(
        task_definition.obtain_execution_role().node.find_child("DefaultPolicy"),
        "IAM5[Resource::*]",
        "ecr:GetAuthorizationToken, needed to pull the image, has no resource-level permissions.",
    )
