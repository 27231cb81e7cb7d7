"""Where the containers run: the VPC, the ECS cluster with its GPU capacity, and the services.

- the orchestrator, a Fargate service behind an internal ALB, reached from API
  Gateway through a VPC link and an NLB in front of that ALB;
- the FL-node task definitions (CPU on Fargate, GPU on the GPU capacity), which
  the orchestrator starts with RunTask and routes under ``/jobs/{job_id}/*``;
- the evaluator, a service on the GPU capacity, scaled on its queue's depth.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_autoscaling as asg
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as elb_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_stacks.auth import AuthStack
from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.ecs_grants import grant_node_launching
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.constructs.grants import (
    READ_ITEMS,
    READ_OBJECTS,
    WRITE_ITEMS,
    WRITE_OBJECTS,
    grant_items,
    grant_objects,
)
from cdk_stacks.constructs.images import service_image
from cdk_stacks.constructs.network import VPC_CIDR, Network
from cdk_stacks.storage import StorageStack
from cohort.catalogue import NODE_PORT, ORCHESTRATOR_PORT, Bucket, Queue, Table

_HTTP = 80


class ComputeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        storage: StorageStack,
        auth: AuthStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._storage = storage
        self._catalogue = storage.catalogue
        self.network = Network(self, "Network", config=config)
        self.vpc = self.network.vpc
        self.cluster = self._build_cluster()
        self.gpu_capacity = self._build_gpu_capacity()
        self.device_token_key = self._build_device_token_key()
        self._build_load_balancers()
        self.fl_node_security_group = self._security_group("FlNode", "FL nodes; reached only from the ALB")
        self.fl_node_security_group.add_ingress_rule(self.alb_security_group, ec2.Port.tcp(NODE_PORT))
        self.fl_node_cpu, self.fl_node_gpu = self._build_fl_node_task_definitions()
        self.orchestrator = self._build_orchestrator(auth)
        self.evaluator = self._build_evaluator()

    # -- shared pieces --------------------------------------------------------------------

    @property
    def _environment(self) -> dict[str, str]:
        return {
            "COHORT_STAGE": self._config.stage,
            "COHORT_NAMESPACE": self._catalogue.namespace,
            "AWS_REGION": Aws.REGION,
        }

    def _security_group(self, construct_id: str, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self,
            f"{construct_id}SecurityGroup",
            vpc=self.vpc,
            description=description,
            allow_all_outbound=True,
        )

    def _log_driver(self, service: str) -> ecs.LogDriver:
        group = logs.LogGroup(
            self,
            f"{service.title().replace('_', '')}Logs",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        return ecs.LogDrivers.aws_logs(stream_prefix=service, log_group=group)

    def acknowledge_task_definition(self, task_definition: ecs.TaskDefinition) -> None:
        acknowledge(
            task_definition,
            "ECS2",
            "The environment holds names and ids only; the token key comes from Secrets Manager.",
        )
        acknowledge(
            task_definition.obtain_execution_role().node.find_child("DefaultPolicy"),
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken, needed to pull the image, has no resource-level permissions.",
        )

    # -- cluster and capacity -------------------------------------------------------------

    def _build_cluster(self) -> ecs.Cluster:
        return ecs.Cluster(
            self,
            "Cluster",
            cluster_name=self._catalogue.ecs_cluster,
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )

    def _build_gpu_capacity(self) -> ecs.AsgCapacityProvider:
        security_group = self._security_group("GpuHosts", "GPU container instances; no inbound traffic")
        group = asg.AutoScalingGroup(
            self,
            "GpuHosts",
            vpc=self.vpc,
            vpc_subnets=self.network.private_subnets,
            instance_type=ec2.InstanceType(self._config.gpu_instance_type),
            # Amazon Linux 2023's GPU AMI: its NVIDIA 580 driver runs the images' CUDA 13.0 torch.
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU),
            min_capacity=0,  # no GPU is paid for while no evaluation or GPU node is waiting
            max_capacity=self._config.max_gpu_instances,
            security_group=security_group,
            require_imdsv2=True,
            block_devices=[
                asg.BlockDevice(
                    device_name="/dev/xvda",
                    volume=asg.BlockDeviceVolume.ebs(
                        100, encrypted=True, volume_type=asg.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        acknowledge(
            group,
            "AS3",
            "ECS managed scaling drives this group; its activity shows in ECS events and CloudWatch.",
        )
        provider = ecs.AsgCapacityProvider(
            self,
            "GpuCapacity",
            auto_scaling_group=group,
            enable_managed_scaling=True,
            enable_managed_termination_protection=False,
            enable_managed_draining=True,
            target_capacity_percent=100,
        )
        # ECS drains instances itself (managed draining): no drain-hook function is needed.
        self.cluster.add_asg_capacity_provider(provider)
        acknowledge(
            group.role.node.find_child("DefaultPolicy"),
            "IAM5[Action::ecs:Submit*]",
            "The ECS agent's standard permissions to report container and task state to its cluster.",
        )
        acknowledge(
            group.role.node.find_child("DefaultPolicy"),
            "IAM5[Resource::*]",
            "CDK's ECS agent policy: ecs:Poll, ecs:StartTelemetrySession, ecs:DiscoverPollEndpoint and "
            "ecr:GetAuthorizationToken take no resource; on EC2 the awslogs driver writes with this role "
            "into the log groups that the task definitions name.",
        )
        return provider

    def _build_device_token_key(self) -> secretsmanager.Secret:
        key = secretsmanager.Secret(
            self,
            "DeviceTokenKey",
            secret_name=self._catalogue.device_token_secret,
            description="HS256 key of the device tokens that the orchestrator issues and FL nodes verify",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=self._config.removal_policy,
        )
        acknowledge(
            key,
            "SMG4",
            "Tokens live 15 minutes; rotating means redeploying the tasks, which read the key at start.",
        )
        return key

    # -- entry: NLB (for the API's VPC link) in front of the internal ALB --------------------

    def _build_load_balancers(self) -> None:
        self.access_logs = access_logs = self._storage.buckets[Bucket.ACCESS_LOGS]
        self.alb_security_group = self._security_group("Alb", "Internal ALB; reached from inside the VPC")
        self.alb_security_group.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(_HTTP))
        self.load_balancer_name = f"cohort-{self._config.stage}-internal"
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            load_balancer_name=self.load_balancer_name,
            vpc=self.vpc,
            vpc_subnets=self.network.private_subnets,
            internet_facing=False,
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
        )
        self.alb.log_access_logs(access_logs, prefix="alb")
        # Plain HTTP inside the VPC: API Gateway terminates TLS for every caller.
        self.listener = self.alb.add_listener(
            "Http", port=_HTTP, protocol=elbv2.ApplicationProtocol.HTTP, open=False
        )
        self.nlb = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=self.vpc,
            vpc_subnets=self.network.private_subnets,
            internet_facing=False,
        )
        self.nlb.log_access_logs(access_logs, prefix="nlb")
        self.nlb.add_listener("Tcp", port=_HTTP).add_targets(
            "Alb", port=_HTTP, targets=[elb_targets.AlbListenerTarget(self.listener)]
        )

    # -- FL nodes -------------------------------------------------------------------------

    def _fl_node_container(
        self, task_definition: ecs.TaskDefinition, accelerator: str, **kwargs: object
    ) -> None:
        task_definition.add_container(
            "FlNode",
            container_name=self._catalogue.fl_node_container,
            image=service_image("fl_node", accelerator),
            environment=self._environment,
            secrets={"COHORT_TOKEN_SECRET": ecs.Secret.from_secrets_manager(self.device_token_key)},
            logging=self._log_driver(f"fl_node_{accelerator}"),
            port_mappings=[ecs.PortMapping(container_port=NODE_PORT)],
            **kwargs,
        )
        role = task_definition.task_role
        for table in (Table.JOBS, Table.ROUNDS, Table.PARTICIPATIONS, Table.MODELS):
            grant_items(role, self._catalogue, table, READ_ITEMS + WRITE_ITEMS)
        for bucket in (Bucket.MODELS, Bucket.UPDATES):
            grant_objects(role, self._catalogue, bucket, READ_OBJECTS + WRITE_OBJECTS)
        # The training-finished email goes to the job owner's address, kept on their profile.
        grant_items(role, self._catalogue, Table.USERS, READ_ITEMS)
        self._storage.queues[Queue.NOTIFICATIONS].grant_send_messages(role)
        # A job may ask for its trained model to be evaluated: the node queues that evaluation.
        grant_items(role, self._catalogue, Table.EVALUATIONS, READ_ITEMS + WRITE_ITEMS)
        self._storage.queues[Queue.EVALUATIONS].grant_send_messages(role)
        self.acknowledge_task_definition(task_definition)

    def _build_fl_node_task_definitions(self) -> tuple[ecs.FargateTaskDefinition, ecs.Ec2TaskDefinition]:
        cpu = ecs.FargateTaskDefinition(
            self,
            "FlNodeCpu",
            family=self._catalogue.fl_node_task_family,
            cpu=self._config.fl_node_cpu,
            memory_limit_mib=self._config.fl_node_memory_mib,
        )
        self._fl_node_container(cpu, "cpu")
        gpu = ecs.Ec2TaskDefinition(
            self,
            "FlNodeGpu",
            family=self._catalogue.fl_node_gpu_task_family,
            network_mode=ecs.NetworkMode.AWS_VPC,
        )
        self._fl_node_container(
            gpu, "gpu", gpu_count=1, memory_reservation_mib=self._config.fl_node_memory_mib
        )
        return cpu, gpu

    # -- orchestrator ---------------------------------------------------------------------

    def _build_orchestrator(self, auth: AuthStack) -> ecs.FargateService:
        task_definition = ecs.FargateTaskDefinition(
            self,
            "Orchestrator",
            cpu=self._config.orchestrator_cpu,
            memory_limit_mib=self._config.orchestrator_memory_mib,
        )
        private_subnet_ids = [subnet.subnet_id for subnet in self.vpc.private_subnets]
        task_definition.add_container(
            "Orchestrator",
            image=service_image("orchestrator"),
            environment={
                **self._environment,
                "COHORT_USER_POOL_ID": auth.user_pool.user_pool_id,
                "COHORT_USER_POOL_CLIENT_IDS": json.dumps(auth.client_ids),
                # The dashboard calls the API from its own origin; the orchestrator answers it alone.
                "COHORT_ALLOWED_ORIGINS": json.dumps([self._config.website_origin]),
                "COHORT_LAUNCHER": "ecs",
                "COHORT_ECS_SUBNETS": json.dumps(private_subnet_ids),
                "COHORT_ECS_SECURITY_GROUPS": json.dumps([self.fl_node_security_group.security_group_id]),
                "COHORT_ECS_NODE_TASK_DEFINITION": self.fl_node_cpu.task_definition_arn,
                "COHORT_ECS_LISTENER_ARN": self.listener.listener_arn,
                "COHORT_ECS_VPC_ID": self.vpc.vpc_id,
            },
            secrets={"COHORT_TOKEN_SECRET": ecs.Secret.from_secrets_manager(self.device_token_key)},
            logging=self._log_driver("orchestrator"),
            port_mappings=[ecs.PortMapping(container_port=ORCHESTRATOR_PORT)],
        )
        self._grant_orchestrator(task_definition.task_role)
        self.acknowledge_task_definition(task_definition)
        security_group = self._security_group("Orchestrator", "Orchestrator tasks; reached only from the ALB")
        security_group.add_ingress_rule(self.alb_security_group, ec2.Port.tcp(ORCHESTRATOR_PORT))
        service = ecs.FargateService(
            self,
            "OrchestratorService",
            cluster=self.cluster,
            task_definition=task_definition,
            desired_count=self._config.orchestrator_tasks,
            vpc_subnets=self.network.private_subnets,
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
        )
        self.listener.add_targets(
            "Orchestrator",
            port=ORCHESTRATOR_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service],
            health_check=elbv2.HealthCheck(path="/healthz", healthy_http_codes="200"),
            deregistration_delay=Duration.seconds(30),
        )
        return service

    def _grant_orchestrator(self, role: iam.IRole) -> None:
        for table in (
            Table.USERS,
            Table.API_KEYS,
            Table.DATASETS,
            Table.MODELS,
            Table.JOBS,
            Table.ROUNDS,
            Table.EVALUATIONS,
        ):
            grant_items(role, self._catalogue, table, READ_ITEMS + WRITE_ITEMS)
        # A job's status counts the open round's devices and reports from their participations.
        grant_items(role, self._catalogue, Table.PARTICIPATIONS, READ_ITEMS)
        # Presigned URLs carry the signer's rights: uploads and downloads of models, downloads of the rest.
        grant_objects(role, self._catalogue, Bucket.MODELS, READ_OBJECTS + WRITE_OBJECTS)
        for bucket in (Bucket.SAMPLES, Bucket.REPORTS):
            grant_objects(role, self._catalogue, bucket, READ_OBJECTS)
        self._storage.queues[Queue.EVALUATIONS].grant_send_messages(role)
        grant_node_launching(
            self,
            role,
            catalogue=self._catalogue,
            load_balancer_name=self.load_balancer_name,
            node_task_families=[self._catalogue.fl_node_task_family, self._catalogue.fl_node_gpu_task_family],
            node_roles=[
                role
                for definition in (self.fl_node_cpu, self.fl_node_gpu)
                for role in (definition.task_role, definition.obtain_execution_role())
            ],
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter"
                    f"{self._catalogue.public_api_url_parameter}"
                ],
            )
        )

    # -- evaluator ------------------------------------------------------------------------

    def _build_evaluator(self) -> ecs.Ec2Service:
        task_definition = ecs.Ec2TaskDefinition(self, "Evaluator", network_mode=ecs.NetworkMode.AWS_VPC)
        task_definition.add_container(
            "Evaluator",
            image=service_image("evaluator", "gpu"),
            environment=self._environment,
            logging=self._log_driver("evaluator"),
            gpu_count=1,
            memory_reservation_mib=8192,
        )
        role = task_definition.task_role
        grant_items(role, self._catalogue, Table.EVALUATIONS, READ_ITEMS + WRITE_ITEMS)
        grant_items(role, self._catalogue, Table.MODELS, READ_ITEMS)
        # The evaluation-finished email goes to the owner's address, kept on their profile.
        grant_items(role, self._catalogue, Table.USERS, READ_ITEMS)
        grant_objects(role, self._catalogue, Bucket.MODELS, READ_OBJECTS)
        grant_objects(role, self._catalogue, Bucket.REPORTS, WRITE_OBJECTS)
        queue = self._storage.queues[Queue.EVALUATIONS]
        queue.grant_consume_messages(role)
        self._storage.queues[Queue.NOTIFICATIONS].grant_send_messages(role)
        self.acknowledge_task_definition(task_definition)
        service = ecs.Ec2Service(
            self,
            "EvaluatorService",
            cluster=self.cluster,
            task_definition=task_definition,
            desired_count=0,
            min_healthy_percent=0,
            max_healthy_percent=100,
            vpc_subnets=self.network.private_subnets,
            security_groups=[self._security_group("Evaluator", "Evaluator tasks; no inbound traffic")],
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=self.gpu_capacity.capacity_provider_name, weight=1
                )
            ],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
        )
        self._scale_on_queue(service)
        return service

    def _scale_on_queue(self, service: ecs.Ec2Service) -> None:
        queue = self._storage.queues[Queue.EVALUATIONS]
        # Waiting plus in-flight: scaling in on "visible" alone would stop tasks mid-evaluation.
        backlog = cloudwatch.MathExpression(
            expression="waiting + running",
            using_metrics={
                "waiting": queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                "running": queue.metric_approximate_number_of_messages_not_visible(
                    period=Duration.minutes(1)
                ),
            },
            period=Duration.minutes(1),
        )
        scaling = service.auto_scale_task_count(min_capacity=0, max_capacity=self._config.max_evaluator_tasks)
        scaling.scale_on_metric(
            "Backlog",
            metric=backlog,
            adjustment_type=autoscaling.AdjustmentType.EXACT_CAPACITY,
            scaling_steps=[
                autoscaling.ScalingInterval(upper=0, change=0),
                autoscaling.ScalingInterval(lower=1, upper=4, change=1),
                autoscaling.ScalingInterval(lower=4, change=self._config.max_evaluator_tasks),
            ],
            cooldown=Duration.minutes(2),
        )
