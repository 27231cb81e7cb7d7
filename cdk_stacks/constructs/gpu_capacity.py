"""GPU capacity: an auto scaling group of GPU hosts, scaled by ECS from zero, in the cluster."""

from __future__ import annotations

from aws_cdk import Tags
from aws_cdk import aws_autoscaling as asg
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from cdk_stacks.constructs.capability import Capability, path
from cdk_stacks.constructs.findings import acknowledge
from cdk_stacks.constructs.task_platform import TaskPlatform

_ROOT_VOLUME_GIB = 100


class GpuCapacity(Capability):
    """``provider``: the capacity provider that GPU tasks name in their strategy."""

    def __init__(self, scope: Construct, construct_id: str, *, platform: TaskPlatform) -> None:
        super().__init__(scope, construct_id)
        self._platform = platform
        self.hosts = self._build_hosts()
        self.provider = self._build_provider()

    def _build_hosts(self) -> asg.AutoScalingGroup:
        config = self._platform.config
        group = asg.AutoScalingGroup(
            self,
            "GpuHosts",
            vpc=self._platform.network.vpc,
            vpc_subnets=self._platform.network.private_subnets,
            instance_type=ec2.InstanceType(config.gpu_instance_type),
            # Amazon Linux 2023's GPU AMI: its NVIDIA 580 driver runs the images' CUDA 13.0 torch.
            machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU),
            min_capacity=0,  # no GPU is paid for while no evaluation or GPU node is waiting
            max_capacity=config.max_gpu_instances,
            security_group=self._platform.security_group(
                self, "GpuHosts", "GPU container instances; no inbound traffic"
            ),
            require_imdsv2=True,
            block_devices=[
                asg.BlockDevice(
                    device_name="/dev/xvda",
                    volume=asg.BlockDeviceVolume.ebs(
                        _ROOT_VOLUME_GIB, encrypted=True, volume_type=asg.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        # CDK names the hosts and their launch template after their paths: keep the names they run with.
        for named in (group, group.node.find_child("LaunchTemplate")):
            Tags.of(named).add("Name", path(named))
        acknowledge(
            group,
            "AS3",
            "ECS managed scaling drives this group; its activity shows in ECS events and CloudWatch.",
        )
        return group

    def _build_provider(self) -> ecs.AsgCapacityProvider:
        provider = ecs.AsgCapacityProvider(
            self,
            "GpuCapacity",
            auto_scaling_group=self.hosts,
            enable_managed_scaling=True,
            enable_managed_termination_protection=False,
            enable_managed_draining=True,
            target_capacity_percent=100,
        )
        # ECS drains instances itself (managed draining): no drain-hook function is needed.
        self._platform.cluster.add_asg_capacity_provider(provider)
        agent_policy = self.hosts.role.node.find_child("DefaultPolicy")
        acknowledge(
            agent_policy,
            "IAM5[Action::ecs:Submit*]",
            "The ECS agent's standard permissions to report container and task state to its cluster.",
        )
        acknowledge(
            agent_policy,
            "IAM5[Resource::*]",
            "CDK's ECS agent policy: ecs:Poll, ecs:StartTelemetrySession, ecs:DiscoverPollEndpoint and "
            "ecr:GetAuthorizationToken take no resource; on EC2 the awslogs driver writes with this role "
            "into the log groups that the task definitions name.",
        )
        return provider
