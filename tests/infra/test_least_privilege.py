"""Least privilege across every template: named actions, named resources, one role per workload."""

from __future__ import annotations

import re

from cdk_stacks.constructs.fl_nodes import JOBS_PREFIX
from cohort.catalogue import Bucket, Table
from cohort.federated.node_store import update_key

from .helpers import Statement, Synth, Target, render

# Actions IAM cannot scope to a resource: "*" is the only resource they accept.
NO_RESOURCE_LEVEL = {
    "ecr:GetAuthorizationToken": "the registry login token is account-wide",
    "ecs:DiscoverPollEndpoint": "the ECS agent asks where to poll before it has an instance ARN",
    "elasticloadbalancing:DescribeRules": "ELB's Describe actions have no resource-level permissions",
    "elasticloadbalancing:DescribeTargetGroups": "ELB's Describe actions have no resource-level permissions",
    "elasticloadbalancing:DescribeTargetHealth": "ELB's Describe actions have no resource-level permissions",
}
# Actions on a container instance, which registers only at boot: bound to the cluster by a condition.
SCOPED_BY_CONDITION = {"ecs:Poll": "ecs:cluster", "ecs:StartTelemetrySession": "ecs:cluster"}
# On EC2 the ECS agent writes the logs of whichever task lands on the instance, with the instance role.
CONTAINER_INSTANCE_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# AWS managed policies are not in the templates; these two are attached to AWS- or CDK-owned roles.
AWS_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole": "CDK's custom-resource functions write their own logs",
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs": "API Gateway's account-wide logging role",
}
_WHOLE_SERVICE = re.compile(r"^[\w-]+:\*$")


def _trusted_services(synth: Synth, role: tuple[str, str]) -> set[str]:
    trust = synth.properties(Target(*role))["AssumeRolePolicyDocument"]["Statement"]
    return {statement["Principal"].get("Service") for statement in trust}


def test_no_statement_grants_every_action_or_every_action_of_a_service(synth: Synth) -> None:
    # Given every identity-policy statement of the app
    statements = synth.iam_statements()
    assert len(statements) > 50

    for statement in statements:
        # Then each names its actions and resources, never by exclusion
        assert not {"NotAction", "NotResource"} & set(statement.body), statement
        # And none is "*" or "<service>:*"
        wide = [a for a in statement.actions if a == "*" or _WHOLE_SERVICE.match(a)]
        assert not wide, f"{statement.stack}/{statement.policy} allows {wide}"


def test_statements_on_any_resource_hold_only_actions_that_cannot_be_scoped(synth: Synth) -> None:
    # Given every statement whose resource is "*"
    unscoped = [s for s in synth.iam_statements() if s.on_any_resource]
    assert unscoped

    for statement in unscoped:
        for action in statement.actions:
            # Then each action lacks resource-level permissions, or a condition binds it
            if action in NO_RESOURCE_LEVEL:
                continue
            if action in SCOPED_BY_CONDITION:
                keys = {
                    key for condition in statement.body.get("Condition", {}).values() for key in condition
                }
                assert SCOPED_BY_CONDITION[action] in keys, f"{action} is not bound to the cluster"
                continue
            # Or it is the ECS agent's logging, and only container instances (EC2) hold it
            assert action in CONTAINER_INSTANCE_LOGS, f"{statement.stack}/{statement.policy}: {action} on *"
            assert all(_trusted_services(synth, role) == {"ec2.amazonaws.com"} for role in statement.roles)


def test_only_known_aws_managed_policies_are_attached(synth: Synth) -> None:
    # Given the managed policies attached to any role of the app
    attached = {
        render(arn).partition(":iam::aws:policy/")[2]
        for _, _, role in synth.everywhere("AWS::IAM::Role")
        for arn in role["Properties"].get("ManagedPolicyArns", [])
    }

    # Then each is an AWS policy on the allow-list, whose reach is known
    assert attached <= set(AWS_MANAGED_POLICIES)


def test_every_role_is_assumed_by_an_aws_service_only(dev: Synth) -> None:
    # Given every role of the app
    for stack, logical_id, _ in dev.everywhere("AWS::IAM::Role"):
        # Then only an AWS service may assume it: no account, user or federated principal
        services = _trusted_services(dev, (stack, logical_id))
        assert services, logical_id
        assert all(service and service.endswith(".amazonaws.com") for service in services), logical_id


def _orchestrator_role(synth: Synth) -> tuple[str, str]:
    task_definition, properties, _ = synth.container("Orchestrator")
    return synth.role_of(task_definition.stack, properties["TaskRoleArn"])


def _allowing(synth: Synth, action: str) -> list[Statement]:
    return [statement for statement in synth.iam_statements() if statement.allows(action)]


def test_only_the_orchestrator_may_run_tasks_and_only_fl_node_definitions_in_its_cluster(dev: Synth) -> None:
    # Given every statement of the app that allows ecs:RunTask, by name or by wildcard
    statements = _allowing(dev, "ecs:RunTask")

    # Then they belong to the orchestrator's task role alone
    assert statements
    assert {role for statement in statements for role in statement.roles} == {_orchestrator_role(dev)}

    # And they name any revision of the two FL-node families, and nothing else
    resources = {render(resource) for statement in statements for resource in statement.resources}
    families = {resource.partition(":task-definition/")[2] for resource in resources}
    assert families == {
        f"{dev.catalogue.fl_node_task_family}:*",
        f"{dev.catalogue.fl_node_gpu_task_family}:*",
    }
    assert all(":ecs:" in resource for resource in resources)

    # And tasks may start only in the Cohort cluster
    for statement in statements:
        cluster = render(statement.body["Condition"]["ArnEquals"]["ecs:cluster"])
        assert cluster.endswith(f":cluster/{dev.catalogue.ecs_cluster}")


def test_the_orchestrator_may_check_and_stop_only_the_tasks_of_its_cluster(dev: Synth) -> None:
    # Given the statements that let the supervisor read a node's task state, and stop it
    for action in ("ecs:DescribeTasks", "ecs:StopTask"):
        statements = _allowing(dev, action)

        # Then the orchestrator alone holds them, on the tasks of the Cohort cluster and nothing else
        assert statements, action
        assert {role for statement in statements for role in statement.roles} == {_orchestrator_role(dev)}
        resources = {render(resource) for statement in statements for resource in statement.resources}
        assert resources
        in_cluster = f":task/{dev.catalogue.ecs_cluster}/*"
        assert all(resource.endswith(in_cluster) for resource in resources), action


def test_the_orchestrator_may_pass_only_the_fl_node_roles_and_only_to_ecs_tasks(dev: Synth) -> None:
    # Given every statement of the app that allows iam:PassRole
    statements = _allowing(dev, "iam:PassRole")
    assert statements

    # Then only the orchestrator may pass roles
    assert {role for statement in statements for role in statement.roles} == {_orchestrator_role(dev)}

    # And only the task and execution roles of the FL-node task definitions, to ECS tasks
    passed = {dev.role_of(s.stack, resource) for s in statements for resource in s.resources}
    node_roles = {
        dev.role_of(target.stack, properties[role])
        for target, properties in dev.fl_node_task_definitions()
        for role in ("TaskRoleArn", "ExecutionRoleArn")
    }
    assert passed == node_roles
    for statement in statements:
        assert statement.body["Condition"] == {
            "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        }


def test_every_task_definition_has_a_task_role_and_an_execution_role_of_its_own(dev: Synth) -> None:
    # Given every task definition of the app
    definitions = dev.task_definitions()
    assert len(definitions) == 5

    # Then no two share a role, whether task role or execution role
    roles = [
        dev.role_of(target.stack, properties[role])
        for target, properties in definitions
        for role in ("TaskRoleArn", "ExecutionRoleArn")
    ]
    assert len(set(roles)) == len(roles)


def test_the_orchestrator_reads_participations_for_live_round_progress_but_never_writes_them(
    dev: Synth,
) -> None:
    # Given the orchestrator's statements that name the participations table
    role = _orchestrator_role(dev)
    table = f":table/{dev.catalogue.table(Table.PARTICIPATIONS)}"
    statements = [
        statement
        for statement in dev.iam_statements()
        if role in statement.roles and any(table in render(resource) for resource in statement.resources)
    ]

    # Then it may query them (a job's status counts the open round's devices and reports)
    assert any(statement.allows("dynamodb:Query") for statement in statements)
    # And it may change none: the FL node alone records who took part
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert not any(statement.allows(action) for statement in statements), action


def test_only_the_orchestrator_reads_and_writes_device_identities(dev: Synth) -> None:
    # Given the statements that name a device-identity table: registered keys, used assertions,
    # registrations counted per minute
    orchestrator = _orchestrator_role(dev)
    for table in (Table.DEVICE_REGISTRATIONS, Table.DEVICE_ASSERTIONS, Table.REGISTRATION_WINDOWS):
        arn = f":table/{dev.catalogue.table(table)}"
        statements = [
            statement
            for statement in dev.iam_statements()
            if any(arn in render(resource) for resource in statement.resources)
        ]

        # Then the orchestrator, which exchanges device tokens, may read them and write them
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert any(orchestrator in s.roles and s.allows(action) for s in statements), (table, action)
        # And no other role may touch them: FL nodes trust the token, not the key
        assert all(s.roles == {orchestrator} for s in statements), table


def test_only_the_fl_nodes_delete_device_updates_every_version_and_only_under_jobs(dev: Synth) -> None:
    # Given the statements that allow deleting an object version, and those that list versions
    deleting, listing = _allowing(dev, "s3:DeleteObjectVersion"), _allowing(dev, "s3:ListBucketVersions")
    node_task_roles = {
        dev.role_of(target.stack, properties["TaskRoleArn"])
        for target, properties in dev.fl_node_task_definitions()
    }
    updates = f"arn:${{AWS::Partition}}:s3:::{dev.catalogue.bucket(Bucket.UPDATES)}"

    # Then only the FL nodes' task roles hold them
    assert {role for s in deleting + listing for role in s.roles} == node_task_roles
    # And only on the updates bucket, under the prefix of every key a node writes there
    assert update_key("job", 1, 1, "key").startswith(JOBS_PREFIX)
    for statement in deleting:
        assert set(statement.actions) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}
        assert [render(r) for r in statement.resources] == [f"{updates}/{JOBS_PREFIX}*"]
    for statement in listing:
        assert [render(r) for r in statement.resources] == [updates]
        assert statement.body["Condition"] == {"StringLike": {"s3:prefix": f"{JOBS_PREFIX}*"}}
