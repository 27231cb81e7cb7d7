"""FL-node task definitions: one job's node on Fargate (CPU) or on the GPU capacity (EC2).

No service runs them: the orchestrator starts one task per training job with RunTask and routes
``/jobs/{job_id}/*`` to it on the private entry's listener.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.constructs.capability import Capability
from cdk_stacks.constructs.grants import (
    DELETE_OBJECTS,
    READ_ITEMS,
    READ_OBJECTS,
    WRITE_ITEMS,
    WRITE_OBJECTS,
    grant_items,
    grant_objects,
    grant_version_listing,
)
from cdk_stacks.constructs.images import service_image
from cdk_stacks.constructs.task_platform import TaskPlatform, acknowledge_task_definition
from cohort.catalogue import NODE_PORT, Bucket, Queue, Table

# Every key a node writes in the updates bucket starts here (cohort.federated.node_store.update_key).
JOBS_PREFIX = "jobs/"


class FlNodeTasks(Capability):
    """``cpu`` and ``gpu``: the task definitions; ``security_group``: what their tasks run in."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: TaskPlatform,
        entry_security_group: ec2.ISecurityGroup,
        queues: Mapping[Queue, sqs.IQueue],
    ) -> None:
        super().__init__(scope, construct_id)
        self._platform = platform
        self._queues = queues
        self.security_group = self._build_security_group(entry_security_group)
        self.cpu = self._build_cpu()
        self.gpu = self._build_gpu()
        self.families = [platform.catalogue.fl_node_task_family, platform.catalogue.fl_node_gpu_task_family]

    @property
    def roles(self) -> list[iam.IRole]:
        """The task and execution roles of both definitions: those RunTask passes to ECS."""
        return [
            role
            for definition in (self.cpu, self.gpu)
            for role in (definition.task_role, definition.obtain_execution_role())
        ]

    def _build_security_group(self, entry_security_group: ec2.ISecurityGroup) -> ec2.SecurityGroup:
        group = self._platform.security_group(self, "FlNode", "FL nodes; reached only from the ALB")
        group.add_ingress_rule(entry_security_group, ec2.Port.tcp(NODE_PORT))
        return group

    def _build_cpu(self) -> ecs.FargateTaskDefinition:
        config = self._platform.config
        definition = ecs.FargateTaskDefinition(
            self,
            "FlNodeCpu",
            family=self._platform.catalogue.fl_node_task_family,
            cpu=config.fl_node_cpu,
            memory_limit_mib=config.fl_node_memory_mib,
        )
        self._add_node(definition, "cpu")
        return definition

    def _build_gpu(self) -> ecs.Ec2TaskDefinition:
        definition = ecs.Ec2TaskDefinition(
            self,
            "FlNodeGpu",
            family=self._platform.catalogue.fl_node_gpu_task_family,
            network_mode=ecs.NetworkMode.AWS_VPC,
        )
        self._add_node(
            definition, "gpu", gpu_count=1, memory_reservation_mib=self._platform.config.fl_node_memory_mib
        )
        return definition

    def _add_node(
        self, definition: ecs.TaskDefinition, accelerator: Literal["cpu", "gpu"], **kwargs: object
    ) -> None:
        """The node's container (named as the orchestrator's RunTask overrides it) and its grants."""
        platform = self._platform
        definition.add_container(
            "FlNode",
            container_name=platform.catalogue.fl_node_container,
            image=service_image("fl_node", accelerator),
            environment=platform.environment,
            secrets=platform.device_token_secrets,
            logging=platform.log_driver(self, f"fl_node_{accelerator}"),
            port_mappings=[ecs.PortMapping(container_port=NODE_PORT)],
            **kwargs,
        )
        self._grant(definition.task_role)
        acknowledge_task_definition(definition)

    def _grant(self, role: iam.IRole) -> None:
        catalogue = self._platform.catalogue
        for table in (Table.JOBS, Table.ROUNDS, Table.PARTICIPATIONS, Table.MODELS):
            grant_items(role, catalogue, table, READ_ITEMS + WRITE_ITEMS)
        for bucket in (Bucket.MODELS, Bucket.UPDATES):
            grant_objects(role, catalogue, bucket, READ_OBJECTS + WRITE_OBJECTS)
        # Once a round is checkpointed, its devices' updates are deleted (every version); the bucket's
        # expiry rule stays as the backstop for those a node could not delete.
        grant_objects(role, catalogue, Bucket.UPDATES, DELETE_OBJECTS, prefix=JOBS_PREFIX)
        grant_version_listing(role, catalogue, Bucket.UPDATES, prefix=JOBS_PREFIX)
        # The training-finished email goes to the job owner's address, kept on their profile.
        grant_items(role, catalogue, Table.USERS, READ_ITEMS)
        self._queues[Queue.NOTIFICATIONS].grant_send_messages(role)
        # A job may ask for its trained model to be evaluated: the node queues that evaluation.
        grant_items(role, catalogue, Table.EVALUATIONS, READ_ITEMS + WRITE_ITEMS)
        self._queues[Queue.EVALUATIONS].grant_send_messages(role)
