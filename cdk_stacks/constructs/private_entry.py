"""The private entry: an NLB, which API Gateway's VPC link needs, in front of the internal ALB.

Both log their access to the access-logs bucket. The ALB listens in plain HTTP inside the VPC:
API Gateway terminates TLS for every caller. Services register their routes on ``listener``.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as elb_targets
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_stacks.constructs.capability import Capability
from cdk_stacks.constructs.network import VPC_CIDR
from cdk_stacks.constructs.task_platform import TaskPlatform

HTTP = 80


class PrivateEntry(Capability):
    """``nlb`` for the VPC link; ``listener`` and ``security_group`` for the services behind it."""

    def __init__(
        self, scope: Construct, construct_id: str, *, platform: TaskPlatform, access_logs: s3.IBucket
    ) -> None:
        super().__init__(scope, construct_id)
        self._platform = platform
        self._access_logs = access_logs
        # The orchestrator's ECS permissions name the ALB, so its name is set, not generated.
        self.load_balancer_name = f"cohort-{platform.config.stage}-internal"
        self.security_group = self._build_security_group()
        self.alb, self.listener = self._build_alb()
        self.nlb = self._build_nlb()

    def _build_security_group(self) -> ec2.SecurityGroup:
        group = self._platform.security_group(self, "Alb", "Internal ALB; reached from inside the VPC")
        group.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(HTTP))
        return group

    def _build_alb(self) -> tuple[elbv2.ApplicationLoadBalancer, elbv2.ApplicationListener]:
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            load_balancer_name=self.load_balancer_name,
            vpc=self._platform.network.vpc,
            vpc_subnets=self._platform.network.private_subnets,
            internet_facing=False,
            security_group=self.security_group,
            drop_invalid_header_fields=True,
        )
        alb.log_access_logs(self._access_logs, prefix="alb")
        listener = alb.add_listener("Http", port=HTTP, protocol=elbv2.ApplicationProtocol.HTTP, open=False)
        return alb, listener

    def _build_nlb(self) -> elbv2.NetworkLoadBalancer:
        nlb = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=self._platform.network.vpc,
            vpc_subnets=self._platform.network.private_subnets,
            internet_facing=False,
        )
        nlb.log_access_logs(self._access_logs, prefix="nlb")
        nlb.add_listener("Tcp", port=HTTP).add_targets(
            "Alb", port=HTTP, targets=[elb_targets.AlbListenerTarget(self.listener)]
        )
        return nlb
