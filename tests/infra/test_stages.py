"""Stages: removal, protection, retention and capacity follow each stage's block in cdk.json."""

from __future__ import annotations

from cohort.catalogue import Table

from .helpers import Synth, retention_days

_REMOVAL = {"destroy": "Delete", "retain": "Retain"}
# Synthesized without an account (offline, as in CI), the CDK knows only two zones of the region;
# with the deployer's account the CLI looks them up, and max_azs applies in full.
_ACCOUNT_AGNOSTIC_ZONES = 2
# What must survive `cdk destroy` in a stage that retains: data, identities, notebooks and logs.
STATEFUL = (
    "AWS::DynamoDB::GlobalTable",
    "AWS::S3::Bucket",
    "AWS::Cognito::UserPool",
    "AWS::EFS::FileSystem",
    "AWS::Logs::LogGroup",
)


def test_the_stages_differ_where_cdk_json_says_they_do(dev: Synth, prod: Synth) -> None:
    # Given the two stages of cdk.json
    # Then prod keeps its resources and its logs longer, and dev cleans up after itself
    assert (dev.config.removal, prod.config.removal) == ("destroy", "retain")
    assert retention_days(prod.config) > retention_days(dev.config)


def test_stateful_resources_follow_the_stage_removal_policy(synth: Synth) -> None:
    # Given every stateful resource of a stage
    resources = synth.everywhere(*STATEFUL)
    assert {resource["Type"] for _, _, resource in resources} == set(STATEFUL)

    # Then deleting the stack or replacing the resource keeps or deletes it as the stage says
    expected = _REMOVAL[synth.config.removal]
    for stack, logical_id, resource in resources:
        policies = (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        assert policies == (expected, expected), f"{stack}/{logical_id}"


def test_tables_and_the_user_pool_are_deletion_protected_in_a_stage_that_retains(synth: Synth) -> None:
    # Given the catalogue's record tables and the user pool of a stage
    protected = synth.config.removal == "retain"
    record_tables = {synth.catalogue.table(table) for table in Table} - {
        synth.catalogue.table(Table.IDEMPOTENCY)
    }

    # Then CloudFormation refuses to delete them exactly when the stage retains its data
    for table in synth.resources("storage", "AWS::DynamoDB::GlobalTable").values():
        if table["Properties"]["TableName"] in record_tables:
            for replica in table["Properties"]["Replicas"]:
                assert replica["DeletionProtectionEnabled"] is protected, table["Properties"]["TableName"]
    (pool,) = synth.resources("auth", "AWS::Cognito::UserPool").values()
    assert pool["Properties"]["DeletionProtection"] == ("ACTIVE" if protected else "INACTIVE")


def test_every_log_group_keeps_logs_for_the_stage_retention(synth: Synth) -> None:
    # Given every log group of a stage
    groups = synth.everywhere("AWS::Logs::LogGroup")
    assert len(groups) >= 10

    # Then each keeps its logs exactly as long as the stage says
    for stack, logical_id, group in groups:
        assert group["Properties"]["RetentionInDays"] == retention_days(synth.config), f"{stack}/{logical_id}"


def test_capacity_follows_the_stage(synth: Synth) -> None:
    # Given a stage's configuration
    config = synth.config

    # Then the network spans the stage's availability zones, with a NAT gateway in as many as asked
    zones = min(config.max_azs, _ACCOUNT_AGNOSTIC_ZONES)
    private_subnets = [k for k in synth.resources("compute", "AWS::EC2::Subnet") if "private" in k]
    assert len(private_subnets) == zones
    assert len(synth.resources("compute", "AWS::EC2::NatGateway")) == min(config.nat_gateways, zones)

    # And the orchestrator runs the stage's number of tasks, each of the stage's size
    _, orchestrator, _ = synth.container("Orchestrator")
    assert (orchestrator["Cpu"], orchestrator["Memory"]) == (
        str(config.orchestrator_cpu),
        str(config.orchestrator_memory_mib),
    )
    (service,) = (
        s["Properties"]
        for s in synth.resources("compute", "AWS::ECS::Service").values()
        if s["Properties"].get("LaunchType") == "FARGATE"
    )
    assert service["DesiredCount"] == config.orchestrator_tasks

    # And CPU FL nodes and the hub get the stage's task sizes
    sizes = {p.get("Family"): (p.get("Cpu"), p.get("Memory")) for _, p in synth.task_definitions()}
    assert sizes[synth.catalogue.fl_node_task_family] == (
        str(config.fl_node_cpu),
        str(config.fl_node_memory_mib),
    )
    _, hub, _ = synth.container("Hub")
    assert (hub["Cpu"], hub["Memory"]) == (str(config.jupyter_cpu), str(config.jupyter_memory_mib))
