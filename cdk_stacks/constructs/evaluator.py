"""The evaluator: robustness evaluations taken from SQS, on the GPU capacity, scaled on queue depth."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.constructs.capability import Capability, unique_id
from cdk_stacks.constructs.gpu_capacity import GpuCapacity
from cdk_stacks.constructs.grants import (
    READ_ITEMS,
    READ_OBJECTS,
    WRITE_ITEMS,
    WRITE_OBJECTS,
    grant_items,
    grant_objects,
)
from cdk_stacks.constructs.images import service_image
from cdk_stacks.constructs.task_platform import TaskPlatform, acknowledge_task_definition
from cohort.catalogue import Bucket, Queue, Table

_MEMORY_RESERVATION_MIB = 8192
_METRIC_PERIOD = Duration.minutes(1)


class EvaluatorService(Capability):
    """``service``: zero tasks while the evaluations queue is empty, up to the stage's maximum."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: TaskPlatform,
        gpu: GpuCapacity,
        queues: Mapping[Queue, sqs.IQueue],
    ) -> None:
        super().__init__(scope, construct_id)
        self._platform = platform
        self._gpu = gpu
        self._queue = queues[Queue.EVALUATIONS]
        self._notifications = queues[Queue.NOTIFICATIONS]
        self.task_definition = self._build_task_definition()
        self._grant(self.task_definition.task_role)
        self.service = self._build_service()
        self._scale_on_queue()

    def _build_task_definition(self) -> ecs.Ec2TaskDefinition:
        definition = ecs.Ec2TaskDefinition(
            self,
            "Evaluator",
            # The family CDK gave it before it had a capability of its own, so it keeps its revisions.
            family=unique_id(self, "Evaluator"),
            network_mode=ecs.NetworkMode.AWS_VPC,
        )
        definition.add_container(
            "Evaluator",
            image=service_image("evaluator", "gpu"),
            environment=self._platform.environment,
            logging=self._platform.log_driver(self, "evaluator"),
            gpu_count=1,
            memory_reservation_mib=_MEMORY_RESERVATION_MIB,
        )
        acknowledge_task_definition(definition)
        return definition

    def _grant(self, role: iam.IRole) -> None:
        catalogue = self._platform.catalogue
        grant_items(role, catalogue, Table.EVALUATIONS, READ_ITEMS + WRITE_ITEMS)
        grant_items(role, catalogue, Table.MODELS, READ_ITEMS)
        # The evaluation-finished email goes to the owner's address, kept on their profile.
        grant_items(role, catalogue, Table.USERS, READ_ITEMS)
        grant_objects(role, catalogue, Bucket.MODELS, READ_OBJECTS)
        grant_objects(role, catalogue, Bucket.REPORTS, WRITE_OBJECTS)
        self._queue.grant_consume_messages(role)
        self._notifications.grant_send_messages(role)

    def _build_service(self) -> ecs.Ec2Service:
        platform = self._platform
        return ecs.Ec2Service(
            self,
            "EvaluatorService",
            cluster=platform.cluster,
            task_definition=self.task_definition,
            desired_count=0,
            min_healthy_percent=0,
            max_healthy_percent=100,
            vpc_subnets=platform.network.private_subnets,
            security_groups=[
                platform.security_group(self, "Evaluator", "Evaluator tasks; no inbound traffic")
            ],
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=self._gpu.provider.capacity_provider_name, weight=1
                )
            ],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
        )

    def _scale_on_queue(self) -> None:
        # Waiting plus in-flight: scaling in on "visible" alone would stop tasks mid-evaluation.
        backlog = cloudwatch.MathExpression(
            expression="waiting + running",
            using_metrics={
                "waiting": self._queue.metric_approximate_number_of_messages_visible(period=_METRIC_PERIOD),
                "running": self._queue.metric_approximate_number_of_messages_not_visible(
                    period=_METRIC_PERIOD
                ),
            },
            period=_METRIC_PERIOD,
        )
        most = self._platform.config.max_evaluator_tasks
        scaling = self.service.auto_scale_task_count(min_capacity=0, max_capacity=most)
        scaling.scale_on_metric(
            "Backlog",
            metric=backlog,
            adjustment_type=autoscaling.AdjustmentType.EXACT_CAPACITY,
            scaling_steps=[
                autoscaling.ScalingInterval(upper=0, change=0),
                autoscaling.ScalingInterval(lower=1, upper=4, change=1),
                autoscaling.ScalingInterval(lower=4, change=most),
            ],
            cooldown=Duration.minutes(2),
        )
        # CDK names each step policy after its path, and a new name would replace it: keep the old one.
        for action in self.service.node.find_all():
            if isinstance(action, autoscaling.StepScalingAction):
                action.node.default_child.add_property_override("PolicyName", unique_id(action))
