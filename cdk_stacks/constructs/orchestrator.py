"""The orchestrator: the REST API on Fargate, behind the private entry, launching FL nodes."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.constructs.capability import Capability, unique_id
from cdk_stacks.constructs.ecs_grants import grant_node_launching
from cdk_stacks.constructs.fl_nodes import FlNodeTasks
from cdk_stacks.constructs.grants import (
    READ_ITEMS,
    READ_OBJECTS,
    WRITE_ITEMS,
    WRITE_OBJECTS,
    grant_items,
    grant_objects,
)
from cdk_stacks.constructs.images import service_image
from cdk_stacks.constructs.private_entry import PrivateEntry
from cdk_stacks.constructs.task_platform import TaskPlatform, acknowledge_task_definition
from cohort.catalogue import ORCHESTRATOR_PORT, Bucket, Queue, Table


class OrchestratorService(Capability):
    """``service``: the orchestrator's tasks, registered on the private entry's listener."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: TaskPlatform,
        entry: PrivateEntry,
        fl_nodes: FlNodeTasks,
        queues: Mapping[Queue, sqs.IQueue],
        user_pool_id: str,
        user_pool_client_ids: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._platform = platform
        self._entry = entry
        self._fl_nodes = fl_nodes
        self._queues = queues
        self.task_definition = self._build_task_definition(user_pool_id, user_pool_client_ids)
        self._grant(self.task_definition.task_role)
        self.service = self._build_service()
        self._build_route()

    def _build_task_definition(
        self, user_pool_id: str, user_pool_client_ids: list[str]
    ) -> ecs.FargateTaskDefinition:
        platform = self._platform
        definition = ecs.FargateTaskDefinition(
            self,
            "Orchestrator",
            # The family CDK gave it before it had a capability of its own, so it keeps its revisions.
            family=unique_id(self, "Orchestrator"),
            cpu=platform.config.orchestrator_cpu,
            memory_limit_mib=platform.config.orchestrator_memory_mib,
        )
        private_subnet_ids = [subnet.subnet_id for subnet in platform.network.vpc.private_subnets]
        definition.add_container(
            "Orchestrator",
            image=service_image("orchestrator"),
            environment={
                **platform.environment,
                "COHORT_USER_POOL_ID": user_pool_id,
                "COHORT_USER_POOL_CLIENT_IDS": json.dumps(user_pool_client_ids),
                # The dashboard calls the API from its own origin; the orchestrator answers it alone.
                "COHORT_ALLOWED_ORIGINS": json.dumps([platform.config.website_origin]),
                "COHORT_DEVICE_REGISTRATIONS_PER_MINUTE": str(
                    platform.config.device_registrations_per_minute
                ),
                "COHORT_LAUNCHER": "ecs",
                "COHORT_ECS_SUBNETS": json.dumps(private_subnet_ids),
                "COHORT_ECS_SECURITY_GROUPS": json.dumps([self._fl_nodes.security_group.security_group_id]),
                "COHORT_ECS_NODE_TASK_DEFINITION": self._fl_nodes.cpu.task_definition_arn,
                "COHORT_ECS_LISTENER_ARN": self._entry.listener.listener_arn,
                "COHORT_ECS_VPC_ID": platform.network.vpc.vpc_id,
                "COHORT_MAX_ACTIVE_JOBS_PER_SCIENTIST": str(platform.config.max_active_jobs_per_scientist),
                "COHORT_MAX_QUEUED_EVALUATIONS_PER_SCIENTIST": str(
                    platform.config.max_queued_evaluations_per_scientist
                ),
            },
            secrets=platform.device_token_secrets,
            logging=platform.log_driver(self, "orchestrator"),
            port_mappings=[ecs.PortMapping(container_port=ORCHESTRATOR_PORT)],
        )
        acknowledge_task_definition(definition)
        return definition

    def _grant(self, role: iam.IRole) -> None:
        catalogue = self._platform.catalogue
        for table in (
            Table.USERS,
            Table.API_KEYS,
            Table.DATASETS,
            Table.MODELS,
            Table.JOBS,
            Table.ROUNDS,
            Table.EVALUATIONS,
            # Device identities: registered keys, used assertions, registrations counted per minute.
            Table.DEVICE_REGISTRATIONS,
            Table.DEVICE_ASSERTIONS,
            Table.REGISTRATION_WINDOWS,
        ):
            grant_items(role, catalogue, table, READ_ITEMS + WRITE_ITEMS)
        # A job's status counts the open round's devices and reports from their participations.
        grant_items(role, catalogue, Table.PARTICIPATIONS, READ_ITEMS)
        # Presigned URLs carry the signer's rights: uploads and downloads of models, downloads of the rest.
        # A commit seals an upload by a copy inside S3, then deletes the upload (cohort/services/models.py).
        grant_objects(role, catalogue, Bucket.MODELS, (*READ_OBJECTS, *WRITE_OBJECTS, "s3:DeleteObject"))
        for bucket in (Bucket.SAMPLES, Bucket.REPORTS):
            grant_objects(role, catalogue, bucket, READ_OBJECTS)
        self._queues[Queue.EVALUATIONS].grant_send_messages(role)
        grant_node_launching(
            self,
            role,
            catalogue=catalogue,
            load_balancer_name=self._entry.load_balancer_name,
            node_task_families=self._fl_nodes.families,
            node_roles=self._fl_nodes.roles,
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter"
                    f"{catalogue.public_api_url_parameter}"
                ],
            )
        )

    def _build_service(self) -> ecs.FargateService:
        security_group = self._platform.security_group(
            self, "Orchestrator", "Orchestrator tasks; reached only from the ALB"
        )
        security_group.add_ingress_rule(self._entry.security_group, ec2.Port.tcp(ORCHESTRATOR_PORT))
        return ecs.FargateService(
            self,
            "OrchestratorService",
            cluster=self._platform.cluster,
            task_definition=self.task_definition,
            desired_count=self._platform.config.orchestrator_tasks,
            vpc_subnets=self._platform.network.private_subnets,
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
        )

    def _build_route(self) -> None:
        self._entry.listener.add_targets(
            "Orchestrator",
            port=ORCHESTRATOR_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            health_check=elbv2.HealthCheck(path="/healthz", healthy_http_codes="200"),
            deregistration_delay=Duration.seconds(30),
        )
