"""What the orchestrator may do to run FL nodes: only their task definitions, only its own routes."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_stacks.constructs.findings import acknowledge
from cohort.catalogue import Catalogue

_ARN = "arn:{partition}:{service}:{region}:{account}:{resource}"
_REPORTED = {"partition": "<AWS::Partition>", "region": "<AWS::Region>", "account": "<AWS::AccountId>"}
_ACTUAL = {"partition": Aws.PARTITION, "region": Aws.REGION, "account": Aws.ACCOUNT_ID}


def _arn(service: str, resource: str, *, reported: bool = False) -> str:
    return _ARN.format(service=service, resource=resource, **(_REPORTED if reported else _ACTUAL))


def grant_node_launching(
    scope: Construct,
    role: iam.IRole,
    *,
    catalogue: Catalogue,
    load_balancer_name: str,
    node_task_families: list[str],
    node_roles: list[iam.IRole],
) -> None:
    """RunTask on the FL-node families in the cluster, and per-job target groups and listener rules."""
    cluster = catalogue.ecs_cluster
    task_definitions = [f"task-definition/{family}:*" for family in node_task_families]
    tasks = f"task/{cluster}/*"
    target_groups = "targetgroup/cohort-*/*"  # the launcher's per-job groups carry this prefix
    rules = f"listener-rule/app/{load_balancer_name}/*"
    listeners = f"listener/app/{load_balancer_name}/*"
    statements = [
        iam.PolicyStatement(
            actions=["ecs:RunTask"],
            resources=[_arn("ecs", definition) for definition in task_definitions],
            conditions={"ArnEquals": {"ecs:cluster": _arn("ecs", f"cluster/{cluster}")}},
        ),
        iam.PolicyStatement(
            actions=["ecs:TagResource"],
            resources=[_arn("ecs", tasks)],
            conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
        ),
        iam.PolicyStatement(actions=["ecs:DescribeTasks", "ecs:StopTask"], resources=[_arn("ecs", tasks)]),
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[node_role.role_arn for node_role in node_roles],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            actions=[
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:AddTags",
            ],
            resources=[_arn("elasticloadbalancing", target_groups)],
        ),
        iam.PolicyStatement(
            actions=["elasticloadbalancing:CreateRule", "elasticloadbalancing:AddTags"],
            resources=[_arn("elasticloadbalancing", listeners), _arn("elasticloadbalancing", rules)],
        ),
        iam.PolicyStatement(
            actions=["elasticloadbalancing:DeleteRule"], resources=[_arn("elasticloadbalancing", rules)]
        ),
    ]
    launching = iam.Policy(scope, "LaunchFlNodes", roles=[role], statements=statements)
    wildcards = {
        ("ecs", tasks): "FL-node tasks are started at run time, only in the Cohort cluster.",
        ("elasticloadbalancing", target_groups): "One target group per job, prefixed cohort-.",
        ("elasticloadbalancing", listeners): "Only the listeners of Cohort's internal load balancer.",
        ("elasticloadbalancing", rules): "Per-job rules on Cohort's internal load balancer.",
        **{("ecs", d): "Any revision of an FL-node task family." for d in task_definitions},
    }
    for (service, resource), reason in wildcards.items():
        acknowledge(launching, f"IAM5[Resource::{_arn(service, resource, reported=True)}]", reason)
    describing = iam.Policy(
        scope,
        "DescribeFlNodes",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                actions=[
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                ],
                resources=["*"],
            )
        ],
    )
    acknowledge(
        describing,
        "IAM5[Resource::*]",
        "Elastic Load Balancing's Describe actions have no resource-level permissions.",
    )
