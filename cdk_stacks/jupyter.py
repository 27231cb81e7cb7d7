"""JupyterHub: Cognito sign-in, the SDK preinstalled, notebooks on EFS, samples read-only.

Browsers reach it over HTTPS through CloudFront, whose VPC origin is an internal
ALB: the hub gets a public address without a public load balancer or a domain of
its own. Its OAuth client lives here because its callback is that address.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_stacks.api import ApiStack
from cdk_stacks.auth import AuthStack
from cdk_stacks.compute import ComputeStack
from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.constructs.grants import READ_OBJECTS, grant_objects
from cdk_stacks.constructs.images import service_image
from cdk_stacks.constructs.network import VPC_CIDR
from cdk_stacks.constructs.task_platform import acknowledge_task_definition
from cohort.catalogue import Bucket, Catalogue

HUB_PORT = 8000
NOTEBOOKS = "/home/cohort/notebooks"
_NOTEBOOK_USER = "10001"  # the image's unprivileged user
# The singleton function CDK adds to read a Cognito client secret at deploy time.
_CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"


class JupyterStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        catalogue: Catalogue,
        auth: AuthStack,
        compute: ComputeStack,
        api: ApiStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._catalogue = catalogue
        self._compute = compute
        self._build_load_balancer()
        self.distribution = self._build_distribution()
        self.url = f"https://{self.distribution.distribution_domain_name}"
        client, client_secret = self._build_oauth_client(auth)
        self.notebooks = self._build_notebook_storage()
        self.service = self._build_hub(auth, api, client, client_secret)

    def _build_load_balancer(self) -> None:
        self.alb_security_group = ec2.SecurityGroup(
            self,
            "AlbSecurityGroup",
            vpc=self._compute.vpc,
            description="JupyterHub ALB, the VPC origin of CloudFront",
        )
        self.alb_security_group.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(80))
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=self._compute.vpc,
            vpc_subnets=self._compute.network.private_subnets,
            internet_facing=False,
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
        )
        self.alb.log_access_logs(self._compute.access_logs, prefix="jupyter-alb")
        self.listener = self.alb.add_listener("Http", port=80, open=False)

    def _build_distribution(self) -> cloudfront.Distribution:
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Cohort {self._config.stage} JupyterHub",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.VpcOrigin.with_application_load_balancer(
                    self.alb, protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,  # every page is per user
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER,
            ),
        )
        for rule, reason in {
            "CFR1": "Data scientists sign in from wherever they work; Cognito guards every page.",
            "CFR2": "A CloudFront web ACL must live in us-east-1; the hub admits only Cognito-signed users.",
            "CFR3": "Standard logs need an ACL-enabled bucket; the ALB behind it logs every request.",
            "CFR4": "The default *.cloudfront.net certificate cannot set a minimum TLS; a domain can.",
            "CFR5": "The origin is a private VPC origin; its traffic stays on AWS's network.",
        }.items():
            acknowledge(distribution, rule, reason)
        return distribution

    def _build_oauth_client(self, auth: AuthStack) -> tuple[object, secretsmanager.Secret]:
        client = auth.oauth_client(
            self, "OAuthClient", f"{self.url}/hub/oauth_callback", generate_secret=True
        )
        # The hub reads its client secret from Secrets Manager; no template or output holds it.
        secret = secretsmanager.Secret(
            self,
            "OAuthClientSecret",
            description="JupyterHub's Cognito client secret",
            secret_string_value=client.user_pool_client_secret,
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            secret, "SMG4", "Cognito owns this secret and cannot rotate it; replace the client instead."
        )
        acknowledge(
            self.node.find_child(_CUSTOM_RESOURCE_PROVIDER),
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's deploy-time reader of the client secret; it writes only its own logs.",
        )
        return client, secret

    def _build_notebook_storage(self) -> efs.FileSystem:
        file_system = efs.FileSystem(
            self,
            "Notebooks",
            vpc=self._compute.vpc,
            vpc_subnets=self._compute.network.private_subnets,
            encrypted=True,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            lifecycle_policy=efs.LifecyclePolicy.AFTER_30_DAYS,
            removal_policy=self._config.removal_policy,
        )
        self.access_point = file_system.add_access_point(
            "Home",
            path="/notebooks",
            create_acl=efs.Acl(owner_uid=_NOTEBOOK_USER, owner_gid=_NOTEBOOK_USER, permissions="750"),
            posix_user=efs.PosixUser(uid=_NOTEBOOK_USER, gid=_NOTEBOOK_USER),
        )
        return file_system

    def _build_hub(
        self, auth: AuthStack, api: ApiStack, client: object, client_secret: secretsmanager.Secret
    ) -> ecs.FargateService:
        task_definition = ecs.FargateTaskDefinition(
            self, "Hub", cpu=self._config.jupyter_cpu, memory_limit_mib=self._config.jupyter_memory_mib
        )
        task_definition.add_volume(
            name="notebooks",
            efs_volume_configuration=ecs.EfsVolumeConfiguration(
                file_system_id=self.notebooks.file_system_id,
                transit_encryption="ENABLED",
                authorization_config=ecs.AuthorizationConfig(
                    access_point_id=self.access_point.access_point_id, iam="ENABLED"
                ),
            ),
        )
        container = task_definition.add_container(
            "Hub",
            image=service_image("jupyterhub"),
            environment={
                "COGNITO_DOMAIN": auth.domain.base_url(),
                "OAUTH_CLIENT_ID": client.user_pool_client_id,
                "OAUTH_CALLBACK_URL": f"{self.url}/hub/oauth_callback",
                "COHORT_API_URL": api.api.url,
                "COHORT_SAMPLES_BUCKET": self._catalogue.bucket(Bucket.SAMPLES),
            },
            secrets={"OAUTH_CLIENT_SECRET": ecs.Secret.from_secrets_manager(client_secret)},
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="jupyterhub",
                log_group=logs.LogGroup(
                    self,
                    "Logs",
                    retention=self._config.log_retention,
                    removal_policy=self._config.removal_policy,
                ),
            ),
            port_mappings=[ecs.PortMapping(container_port=HUB_PORT)],
        )
        container.add_mount_points(
            ecs.MountPoint(container_path=NOTEBOOKS, source_volume="notebooks", read_only=False)
        )
        self.notebooks.grant(
            task_definition.task_role, "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"
        )
        grant_objects(task_definition.task_role, self._catalogue, Bucket.SAMPLES, READ_OBJECTS)
        acknowledge_task_definition(task_definition)
        security_group = ec2.SecurityGroup(
            self,
            "HubSecurityGroup",
            vpc=self._compute.vpc,
            description="JupyterHub; reached only from its ALB",
        )
        security_group.add_ingress_rule(self.alb_security_group, ec2.Port.tcp(HUB_PORT))
        service = ecs.FargateService(
            self,
            "HubService",
            cluster=self._compute.cluster,
            task_definition=task_definition,
            desired_count=1,  # the hub keeps its sessions in memory: one task
            vpc_subnets=self._compute.network.private_subnets,
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=0,
            max_healthy_percent=100,
        )
        self.notebooks.connections.allow_default_port_from(security_group)
        self.listener.add_targets(
            "Hub",
            port=HUB_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service],
            health_check=elbv2.HealthCheck(path="/hub/health", healthy_http_codes="200"),
            deregistration_delay=Duration.seconds(10),
        )
        return service
