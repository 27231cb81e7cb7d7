"""The ECS launcher against the AWS emulator (moto, in process).

The emulator holds a VPC with private subnets, an internal ALB with an HTTP
listener, the catalogue's ECS cluster and a Fargate task definition for the FL
node, the same shapes the CDK stacks deploy.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api import state_manager

from cohort import aws
from cohort.services.ecs_launcher import (
    JOB_TAG,
    STARTED_BY,
    STOP_REASON,
    EcsLauncher,
    EcsLauncherConfigError,
    NodeResources,
    preferred_rule_priority,
    target_group_name,
)
from cohort.services.launcher import LaunchedNode, Liveness, NodeCheck
from cohort.services.orchestrator import launcher_for
from cohort.settings import Settings, get_settings

from .in_process_aws import clear_aws_environment

PUBLIC_BASE_URL = "https://api.example.test/prod/"


@dataclass
class Network:
    vpc_id: str
    subnets: list[str]
    security_group: str
    listener_arn: str
    cluster: str
    container: str
    task_family: str


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    clear_aws_environment(monkeypatch)
    with mock_aws():
        catalogue = get_settings().catalogue
        ec2 = aws.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # As the CDK VPC has it; moto's ECS also needs it to name a task's ENI.
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        subnets = [
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
            for cidr, zone in (("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b"))
        ]
        security_group = ec2.create_security_group(
            GroupName="cohort-test-fl-node", Description="FL nodes", VpcId=vpc_id
        )["GroupId"]

        elbv2 = aws.client("elbv2")
        balancer_arn = elbv2.create_load_balancer(
            Name="cohort-test-internal",
            Subnets=subnets,
            SecurityGroups=[security_group],
            Scheme="internal",
            Type="application",
        )["LoadBalancers"][0]["LoadBalancerArn"]
        listener_arn = elbv2.create_listener(
            LoadBalancerArn=balancer_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {
                        "StatusCode": "404",
                        "ContentType": "text/plain",
                        "MessageBody": "no such job",
                    },
                }
            ],
        )["Listeners"][0]["ListenerArn"]

        ecs = aws.client("ecs")
        ecs.create_cluster(clusterName=catalogue.ecs_cluster)
        ecs.register_task_definition(
            family=catalogue.fl_node_task_family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="512",
            memory="1024",
            containerDefinitions=[
                {
                    "name": catalogue.fl_node_container,
                    "image": "cohort/fl-node:test",
                    "essential": True,
                    # Optional on Fargate, but moto sums container memory when placing tasks.
                    "memory": 1024,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                }
            ],
        )

        monkeypatch.setenv("COHORT_LAUNCHER", "ecs")
        monkeypatch.setenv("COHORT_NODE_PUBLIC_BASE_URL", PUBLIC_BASE_URL)
        monkeypatch.setenv("COHORT_ECS_SUBNETS", json.dumps(subnets))
        monkeypatch.setenv("COHORT_ECS_SECURITY_GROUPS", json.dumps([security_group]))
        monkeypatch.setenv("COHORT_ECS_NODE_TASK_DEFINITION", catalogue.fl_node_task_family)
        monkeypatch.setenv("COHORT_ECS_LISTENER_ARN", listener_arn)
        monkeypatch.setenv("COHORT_ECS_VPC_ID", vpc_id)
        aws.reset_clients()
        yield Network(
            vpc_id=vpc_id,
            subnets=subnets,
            security_group=security_group,
            listener_arn=listener_arn,
            cluster=catalogue.ecs_cluster,
            container=catalogue.fl_node_container,
            task_family=catalogue.fl_node_task_family,
        )


@pytest.fixture
def launcher(network: Network) -> EcsLauncher:
    return EcsLauncher(get_settings(), ip_timeout=5.0, poll_interval=0.01)


def _job_id() -> str:
    return uuid.uuid4().hex  # the shape jobs.start gives ids


def _ref(ref: str) -> dict[str, str]:
    return json.loads(ref)


def _task(network: Network, task_arn: str) -> dict[str, Any]:
    described = aws.client("ecs").describe_tasks(cluster=network.cluster, tasks=[task_arn], include=["TAGS"])
    assert len(described["tasks"]) == 1
    return described["tasks"][0]


def _task_ip(task: dict[str, Any]) -> str:
    details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
    return details["privateIPv4Address"]


def _rules_for(network: Network, job_id: str) -> list[dict[str, Any]]:
    rules = aws.client("elbv2").describe_rules(ListenerArn=network.listener_arn)["Rules"]
    wanted = f"/jobs/{job_id}/*"
    return [
        rule
        for rule in rules
        for condition in rule["Conditions"]
        if condition["Field"] == "path-pattern"
        and wanted in (condition.get("PathPatternConfig", {}).get("Values") or condition.get("Values") or [])
    ]


def _target_group_arns() -> list[str]:
    return [group["TargetGroupArn"] for group in aws.client("elbv2").describe_target_groups()["TargetGroups"]]


def _capture_run_task(sent: list[dict[str, Any]]) -> None:
    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    aws.client("ecs").meta.events.register("provide-client-params.ecs.RunTask", record)


# -- Launching ------------------------------------------------------------------


def test_launch_runs_the_node_on_fargate_in_the_private_subnets(
    network: Network, launcher: EcsLauncher
) -> None:
    # Given a configured ECS launcher, recording what it asks ECS for
    job_id = _job_id()
    sent: list[dict[str, Any]] = []
    _capture_run_task(sent)

    # When it launches the node for a job
    node = launcher.launch(job_id, 1)

    # Then one Fargate task of the node's task definition runs on the catalogue's cluster
    task = _task(network, _ref(node.ref)["task"])
    assert f":cluster/{network.cluster}" in task["clusterArn"]
    assert f":task-definition/{network.task_family}:" in task["taskDefinitionArn"]
    assert task["launchType"] == "FARGATE"
    assert task["desiredStatus"] == "RUNNING"
    assert task["startedBy"] == STARTED_BY
    assert {"key": JOB_TAG, "value": job_id} in task["tags"]
    # with the node's command, for this job, listening on the task's interface
    [override] = task["overrides"]["containerOverrides"]
    assert override["name"] == network.container
    assert override["command"] == [
        "python",
        "-m",
        "cohort.federated.node_app",
        "--job-id",
        job_id,
        "--host",
        "0.0.0.0",  # noqa: S104 - asserting the command, not binding
        "--port",
        "8080",
    ]
    # in one of the private subnets, behind the node security group, with no public address
    eni_id = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}["networkInterfaceId"]
    [eni] = aws.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
    assert eni["SubnetId"] in network.subnets
    assert [group["GroupId"] for group in eni["Groups"]] == [network.security_group]
    assert "Association" not in eni
    # and the request itself asked for no public IP, idempotently per launch of the job
    [request] = sent
    assert request["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": network.subnets,
        "securityGroups": [network.security_group],
        "assignPublicIp": "DISABLED",
    }
    assert request["clientToken"] == f"{job_id}-1"


def test_launch_routes_the_job_path_to_the_task_ip(network: Network, launcher: EcsLauncher) -> None:
    # Given a running launcher
    job_id = _job_id()

    # When it launches a job's node
    node = launcher.launch(job_id, 1)

    # Then one listener rule forwards /jobs/{job_id}/* to the job's target group
    ref = _ref(node.ref)
    [rule] = _rules_for(network, job_id)
    assert rule["RuleArn"] == ref["rule"]
    [action] = rule["Actions"]
    assert action["Type"] == "forward"
    assert action["TargetGroupArn"] == ref["target_group"]
    # and that group targets IPs on the node's port, health-checked on /healthz, in the VPC
    elbv2 = aws.client("elbv2")
    [group] = elbv2.describe_target_groups(TargetGroupArns=[ref["target_group"]])["TargetGroups"]
    assert group["TargetGroupName"] == target_group_name(job_id)
    assert len(group["TargetGroupName"]) <= 32
    assert (group["TargetType"], group["Protocol"], group["Port"]) == ("ip", "HTTP", 8080)
    assert group["VpcId"] == network.vpc_id
    assert group["HealthCheckPath"] == "/healthz"
    # and it holds exactly the task's private address
    health = elbv2.describe_target_health(TargetGroupArn=ref["target_group"])["TargetHealthDescriptions"]
    task_ip = _task_ip(_task(network, ref["task"]))
    assert [(h["Target"]["Id"], h["Target"]["Port"]) for h in health] == [(task_ip, 8080)]


def test_the_url_is_the_public_base_url_with_the_job_path(network: Network, launcher: EcsLauncher) -> None:
    # Given a public base URL with a trailing slash
    job_id = _job_id()

    # When a node is launched
    node = launcher.launch(job_id, 1)

    # Then devices get the public URL of the job's routes, not the task's address
    assert node.url == f"https://api.example.test/prod/jobs/{job_id}"
    assert _task_ip(_task(network, _ref(node.ref)["task"])) not in node.url


def test_two_jobs_get_distinct_rule_priorities(network: Network, launcher: EcsLauncher) -> None:
    # Given two jobs
    first, second = _job_id(), _job_id()

    # When both nodes are launched
    launcher.launch(first, 1)
    launcher.launch(second, 1)

    # Then each has its own rule, at a distinct priority chosen from its job id
    [first_rule] = _rules_for(network, first)
    [second_rule] = _rules_for(network, second)
    assert int(first_rule["Priority"]) != int(second_rule["Priority"])
    assert int(first_rule["Priority"]) == preferred_rule_priority(first)
    assert int(second_rule["Priority"]) == preferred_rule_priority(second)


def test_a_taken_priority_moves_the_rule_to_a_free_one(network: Network, launcher: EcsLauncher) -> None:
    # Given another rule already sits at the job's preferred priority
    job_id = _job_id()
    preferred = preferred_rule_priority(job_id)
    aws.client("elbv2").create_rule(
        ListenerArn=network.listener_arn,
        Priority=preferred,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/other/*"]}}],
        Actions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "418", "ContentType": "text/plain"},
            }
        ],
    )

    # When the job's node is launched
    launcher.launch(job_id, 1)

    # Then its rule takes another free priority, and the other rule is untouched
    [rule] = _rules_for(network, job_id)
    assert int(rule["Priority"]) != preferred
    priorities = [
        r["Priority"] for r in aws.client("elbv2").describe_rules(ListenerArn=network.listener_arn)["Rules"]
    ]
    assert sorted(str(p) for p in priorities) == sorted({str(p) for p in priorities})
    assert str(preferred) in {str(p) for p in priorities}


def test_a_priority_taken_during_launch_is_retried(
    network: Network, launcher: EcsLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another orchestrator takes the job's preferred slot right after the launcher looked
    job_id = _job_id()
    preferred = preferred_rule_priority(job_id)
    real_rules = launcher._listener_rules
    calls = 0

    def stale_then_real() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        rules = real_rules()
        if calls == 1:
            aws.client("elbv2").create_rule(
                ListenerArn=network.listener_arn,
                Priority=preferred,
                Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/racer/*"]}}],
                Actions=[
                    {
                        "Type": "fixed-response",
                        "FixedResponseConfig": {"StatusCode": "418", "ContentType": "text/plain"},
                    }
                ],
            )
        return rules

    monkeypatch.setattr(launcher, "_listener_rules", stale_then_real)

    # When the node is launched
    launcher.launch(job_id, 1)

    # Then the PriorityInUse answer made it look again and take a free slot
    assert calls == 2
    [rule] = _rules_for(network, job_id)
    assert int(rule["Priority"]) != preferred


def test_relaunching_a_job_reuses_its_target_group_and_rule(network: Network, launcher: EcsLauncher) -> None:
    # Given a job whose node was launched once, recording what the launcher asks ECS for
    job_id = _job_id()
    sent: list[dict[str, Any]] = []
    _capture_run_task(sent)
    first = _ref(launcher.launch(job_id, 1).ref)

    # When its node is launched a second time (the first one died)
    second = _ref(launcher.launch(job_id, 2).ref)

    # Then there is still one target group and one rule for it
    assert second["target_group"] == first["target_group"]
    assert second["rule"] == first["rule"]
    assert len(_rules_for(network, job_id)) == 1
    assert _target_group_arns() == [first["target_group"]]
    # and the second launch asked for a new task, not for the first one again
    assert [request["clientToken"] for request in sent] == [f"{job_id}-1", f"{job_id}-2"]
    assert second["task"] != first["task"]
    # and the group routes only to the latest task
    health = aws.client("elbv2").describe_target_health(TargetGroupArn=second["target_group"])
    latest_ip = _task_ip(_task(network, second["task"]))
    assert [h["Target"]["Id"] for h in health["TargetHealthDescriptions"]] == [latest_ip]


def test_launcher_for_builds_the_ecs_launcher_from_the_settings(network: Network, tmp_path: Path) -> None:
    # Given COHORT_LAUNCHER=ecs and the ECS settings
    # When the orchestrator picks its launcher
    chosen = launcher_for(get_settings(), tmp_path)

    # Then it is the ECS launcher, and it launches reachable nodes
    assert isinstance(chosen, EcsLauncher)
    job_id = _job_id()
    assert chosen.launch(job_id, 1).url.endswith(f"/jobs/{job_id}")


# -- Checking -------------------------------------------------------------------


@pytest.fixture
def tasks_run_until_stopped() -> Iterator[None]:
    """moto moves a task one step towards STOPPED at each describe; real tasks run until they stop."""
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 1_000_000})
    yield
    state_manager.unset_transition("ecs::task")


@pytest.mark.usefixtures("tasks_run_until_stopped")
def test_check_finds_a_running_task_healthy(network: Network, launcher: EcsLauncher) -> None:
    # Given a launched node whose task runs
    job_id = _job_id()
    node = launcher.launch(job_id, 1)

    # When it is checked, Then it is healthy
    assert launcher.check(job_id, node) == NodeCheck(Liveness.HEALTHY)


@pytest.mark.usefixtures("tasks_run_until_stopped")
def test_check_finds_a_stopped_task_dead_with_ecs_s_reason(network: Network, launcher: EcsLauncher) -> None:
    # Given a launched node whose task then stops on its own (its container exited)
    job_id = _job_id()
    node = launcher.launch(job_id, 1)
    aws.client("ecs").stop_task(
        cluster=network.cluster, task=_ref(node.ref)["task"], reason="Essential container in task exited"
    )

    # When it is checked, Then it is dead, and the detail says what ECS said
    check = launcher.check(job_id, node)
    assert check.liveness == Liveness.DEAD
    assert "Essential container in task exited" in check.detail


def test_check_finds_a_provisioning_task_booting(network: Network, launcher: EcsLauncher) -> None:
    # Given a task that ECS is still provisioning
    job_id = _job_id()
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/{network.cluster}/booting"
    node = LaunchedNode(url="https://api.example.test/jobs/x", ref=NodeResources(task_arn).to_ref())
    with Stubber(aws.client("ecs")) as ecs:
        ecs.add_response(
            "describe_tasks",
            {"tasks": [{"taskArn": task_arn, "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING"}]},
            {"cluster": network.cluster, "tasks": [task_arn]},
        )

        # When it is checked, Then it is booting
        assert launcher.check(job_id, node).liveness == Liveness.BOOTING


def test_check_finds_a_task_ecs_no_longer_knows_dead(network: Network, launcher: EcsLauncher) -> None:
    # Given a ref to a task the cluster does not hold (stopped long ago)
    job_id = _job_id()
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/{network.cluster}/gone"
    node = LaunchedNode(url="https://api.example.test/jobs/x", ref=NodeResources(task_arn).to_ref())

    # When it is checked, Then it is dead
    check = launcher.check(job_id, node)
    assert check.liveness == Liveness.DEAD
    assert "gone" in check.detail


# -- Stopping -------------------------------------------------------------------


def test_stop_stops_the_task_and_removes_the_route(network: Network, launcher: EcsLauncher) -> None:
    # Given two running nodes
    job_id, other = _job_id(), _job_id()
    node = launcher.launch(job_id, 1)
    other_node = launcher.launch(other, 1)
    ref = _ref(node.ref)

    # When one job's node is stopped
    launcher.stop(job_id, node.ref)

    # Then its task is stopped with the reason, and its rule and target group are gone
    task = _task(network, ref["task"])
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == STOP_REASON
    assert _rules_for(network, job_id) == []
    assert ref["target_group"] not in _target_group_arns()
    # while the other job keeps its node and its route
    assert _task(network, _ref(other_node.ref)["task"])["desiredStatus"] == "RUNNING"
    assert len(_rules_for(network, other)) == 1
    assert _target_group_arns() == [_ref(other_node.ref)["target_group"]]


def test_stopping_twice_tolerates_resources_already_gone(network: Network, launcher: EcsLauncher) -> None:
    # Given a node that was stopped
    job_id = _job_id()
    node = launcher.launch(job_id, 1)
    launcher.stop(job_id, node.ref)

    # When it is stopped again
    launcher.stop(job_id, node.ref)

    # Then nothing fails and nothing reappears
    assert _rules_for(network, job_id) == []
    assert _target_group_arns() == []


def test_stop_finds_the_route_by_job_when_the_ref_holds_only_the_task(
    network: Network, launcher: EcsLauncher
) -> None:
    # Given a ref that only names the task (as an older record would)
    job_id = _job_id()
    ref = _ref(launcher.launch(job_id, 1).ref)

    # When the node is stopped with it
    launcher.stop(job_id, ref["task"])

    # Then the job's rule and target group are still found and removed
    assert _task(network, ref["task"])["desiredStatus"] == "STOPPED"
    assert _rules_for(network, job_id) == []
    assert _target_group_arns() == []


# -- Failures -------------------------------------------------------------------


def test_ecs_failures_surface_as_a_clear_error(network: Network, launcher: EcsLauncher) -> None:
    # Given ECS cannot place the task
    job_id = _job_id()
    with Stubber(aws.client("ecs")) as ecs:
        ecs.add_response(
            "run_task",
            {"tasks": [], "failures": [{"reason": "RESOURCE:ENI", "detail": "ENI limit reached"}]},
        )

        # When the node is launched, Then the error names the job and ECS's reason
        with pytest.raises(RuntimeError, match=rf"job {job_id}.*RESOURCE:ENI \(ENI limit reached\)"):
            launcher.launch(job_id, 1)
        ecs.assert_no_pending_responses()

    # and nothing was created on the load balancer
    assert _target_group_arns() == []
    assert _rules_for(network, job_id) == []


def test_a_task_that_stops_before_getting_an_ip_is_cleaned_up(
    network: Network, launcher: EcsLauncher
) -> None:
    # Given a task that ECS starts but that stops while provisioning
    job_id = _job_id()
    task_arn = f"arn:aws:ecs:us-east-1:123456789012:task/{network.cluster}/abc"
    with Stubber(aws.client("ecs")) as ecs:
        ecs.add_response("run_task", {"tasks": [{"taskArn": task_arn}], "failures": []})
        ecs.add_response(
            "describe_tasks",
            {
                "tasks": [
                    {
                        "taskArn": task_arn,
                        "lastStatus": "STOPPED",
                        "stoppedReason": "CannotPullContainerError",
                    }
                ]
            },
        )
        ecs.add_response(
            "stop_task",
            {"task": {"taskArn": task_arn}},
            {"cluster": network.cluster, "task": task_arn, "reason": STOP_REASON},
        )

        # When the node is launched, Then the error carries the task's stop reason
        with pytest.raises(RuntimeError, match="stopped before it started: CannotPullContainerError"):
            launcher.launch(job_id, 1)
        # and the task was stopped
        ecs.assert_no_pending_responses()

    # and the target group made for it was removed
    assert _target_group_arns() == []


def test_a_failed_route_rolls_the_launch_back(monkeypatch: pytest.MonkeyPatch, network: Network) -> None:
    # Given a listener ARN that does not exist
    monkeypatch.setenv("COHORT_ECS_LISTENER_ARN", network.listener_arn.replace("/app/", "/app/gone-"))
    get_settings.cache_clear()
    launcher = EcsLauncher(get_settings(), ip_timeout=5.0, poll_interval=0.01)
    job_id = _job_id()

    # When the node is launched, Then the load balancer's error comes through
    with pytest.raises(ClientError):
        launcher.launch(job_id, 1)

    # and neither the task nor the target group is left behind
    tasks = aws.client("ecs").list_tasks(cluster=network.cluster, startedBy=STARTED_BY)["taskArns"]
    assert len(tasks) == 1
    assert _task(network, tasks[0])["desiredStatus"] == "STOPPED"
    assert _target_group_arns() == []


# -- Configuration --------------------------------------------------------------


def test_missing_settings_name_the_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no ECS settings at all
    clear_aws_environment(monkeypatch)
    monkeypatch.setenv("COHORT_LAUNCHER", "ecs")

    # When the launcher is built, Then the error names every variable to set
    with pytest.raises(EcsLauncherConfigError) as raised:
        EcsLauncher(Settings())
    message = str(raised.value)
    for variable in (
        "COHORT_ECS_SUBNETS",
        "COHORT_ECS_SECURITY_GROUPS",
        "COHORT_ECS_NODE_TASK_DEFINITION",
        "COHORT_ECS_LISTENER_ARN",
        "COHORT_ECS_VPC_ID",
    ):
        assert variable in message


def test_without_a_base_url_the_url_is_read_from_the_api_stacks_parameter(
    monkeypatch: pytest.MonkeyPatch, network: Network
) -> None:
    # Given no base URL in the environment, and the API stack's published one in SSM
    monkeypatch.delenv("COHORT_NODE_PUBLIC_BASE_URL")
    name = get_settings().catalogue.public_api_url_parameter
    aws.client("ssm").put_parameter(Name=name, Value="https://abc.execute-api.test/v1", Type="String")
    job_id = _job_id()

    # When a node is launched
    node = EcsLauncher(Settings(), ip_timeout=5, poll_interval=0.01).launch(job_id, 1)

    # Then devices are sent through the published API URL
    assert node.url == f"https://abc.execute-api.test/v1/jobs/{job_id}"


def test_without_any_public_url_nothing_is_started(monkeypatch: pytest.MonkeyPatch, network: Network) -> None:
    # Given neither a base URL nor the API stack's parameter
    monkeypatch.delenv("COHORT_NODE_PUBLIC_BASE_URL")
    launcher = EcsLauncher(Settings())

    # When a node is launched, Then the error says what to deploy, and no task was started
    with pytest.raises(EcsLauncherConfigError, match="deploy it, or set COHORT_NODE_PUBLIC_BASE_URL"):
        launcher.launch(_job_id(), 1)
    assert aws.client("ecs").list_tasks(cluster=network.cluster)["taskArns"] == []


def test_a_single_missing_setting_is_named_alone(monkeypatch: pytest.MonkeyPatch, network: Network) -> None:
    # Given everything but the listener
    monkeypatch.delenv("COHORT_ECS_LISTENER_ARN")

    # When the launcher is built, Then only the listener variable is asked for
    with pytest.raises(EcsLauncherConfigError, match="COHORT_ECS_LISTENER_ARN") as raised:
        EcsLauncher(Settings())
    assert "COHORT_ECS_SUBNETS" not in str(raised.value)


# -- Names and refs -------------------------------------------------------------


def test_target_group_names_are_valid_and_distinct() -> None:
    # Given job ids of several shapes, two of them sharing a long prefix
    ids = [
        uuid.uuid4().hex,
        "short-id",
        "experiment-2024-resnet-cifar10-run-a",
        "experiment-2024-resnet-cifar10-run-b",
        "weird_id.with/chars",
    ]

    # When target group names are derived
    names = [target_group_name(job_id) for job_id in ids]

    # Then each is a valid ALB name, unique per job, and stable
    for name in names:
        assert len(name) <= 32
        assert re.fullmatch(r"(?!.*--)[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]", name)
    assert len(set(names)) == len(names)
    assert names == [target_group_name(job_id) for job_id in ids]
    assert names[0] == f"cohort-{ids[0][:25]}"


def test_refs_round_trip_and_accept_a_bare_task_arn() -> None:
    resources = NodeResources("arn:aws:ecs:task/x", "arn:aws:tg/y", "arn:aws:rule/z")
    assert NodeResources.from_ref(resources.to_ref()) == resources
    assert NodeResources.from_ref("arn:aws:ecs:task/x") == NodeResources(task_arn="arn:aws:ecs:task/x")
    assert NodeResources.from_ref("not a ref") == NodeResources()
