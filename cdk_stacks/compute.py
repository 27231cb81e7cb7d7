"""Where the containers run: the VPC, the ECS cluster with its GPU capacity, and the services.

- the orchestrator, a Fargate service behind an internal ALB, reached from API
  Gateway through a VPC link and an NLB in front of that ALB;
- the FL-node task definitions (CPU on Fargate, GPU on the GPU capacity), which
  the orchestrator starts with RunTask and routes under ``/jobs/{job_id}/*``;
- the evaluator, a service on the GPU capacity, scaled on its queue's depth.

Each capability is a construct of its own; none of them takes part in the logical ids of what it
holds (see cdk_stacks/constructs/capability.py), so every resource keeps the id it was deployed with.
"""

from __future__ import annotations

from constructs import Construct

from cdk_stacks.auth import AuthStack
from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.capability import CapabilityStack
from cdk_stacks.constructs.evaluator import EvaluatorService
from cdk_stacks.constructs.fl_nodes import FlNodeTasks
from cdk_stacks.constructs.gpu_capacity import GpuCapacity
from cdk_stacks.constructs.network import Network
from cdk_stacks.constructs.orchestrator import OrchestratorService
from cdk_stacks.constructs.private_entry import PrivateEntry
from cdk_stacks.constructs.task_platform import TaskPlatform
from cdk_stacks.storage import StorageStack
from cohort.catalogue import Bucket


class ComputeStack(CapabilityStack):
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
        # Network keeps its own id in its resources' logical ids: it was a construct before capabilities.
        self.network = Network(self, "Network", config=config)
        self.platform = TaskPlatform(
            self, "Platform", config=config, catalogue=storage.catalogue, network=self.network
        )
        self.gpu = GpuCapacity(self, "Gpu", platform=self.platform)
        self.access_logs = storage.buckets[Bucket.ACCESS_LOGS]
        self.entry = PrivateEntry(self, "Entry", platform=self.platform, access_logs=self.access_logs)
        self.fl_nodes = FlNodeTasks(
            self,
            "FlNodes",
            platform=self.platform,
            entry_security_group=self.entry.security_group,
            queues=storage.queues,
        )
        self.orchestration = OrchestratorService(
            self,
            "Orchestrator",
            platform=self.platform,
            entry=self.entry,
            fl_nodes=self.fl_nodes,
            queues=storage.queues,
            user_pool_id=auth.user_pool.user_pool_id,
            user_pool_client_ids=auth.client_ids,
        )
        self.evaluation = EvaluatorService(
            self, "Evaluator", platform=self.platform, gpu=self.gpu, queues=storage.queues
        )
        # What the other stacks read.
        self.vpc = self.network.vpc
        self.cluster = self.platform.cluster
        self.nlb = self.entry.nlb
        self.orchestrator = self.orchestration.service
        self.evaluator = self.evaluation.service
