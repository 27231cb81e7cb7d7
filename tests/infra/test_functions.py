"""Functions: signup, dataset generation and email, each alone with its role, logs and settings."""

from __future__ import annotations

import json

import pytest

from cohort.catalogue import Table

from .helpers import REPO, Synth, Target, render, retention_days

SERVICES = sorted(path.parent.name for path in (REPO / "lambdas").glob("*/handler.py"))


def _function(synth: Synth, service: str) -> dict:
    return synth.properties(synth.function(service))


def test_there_is_one_function_per_handler_in_lambdas(dev: Synth) -> None:
    # Given the handlers in lambdas/ and the synthesized functions stack
    functions = dev.resources("functions", "AWS::Lambda::Function").values()

    # Then each handler is deployed once, under its own Powertools service name
    services = [
        function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for function in functions
    ]
    assert sorted(services) == SERVICES == ["dataset_generation", "email", "signup"]


def test_no_two_functions_share_a_role(dev: Synth) -> None:
    # Given the role of each function
    roles = [dev.role_of("functions", _function(dev, service)["Role"]) for service in SERVICES]

    # Then every function has a role of its own, which only Lambda may assume
    assert len(set(roles)) == len(SERVICES)
    for stack, logical_id in roles:
        trust = dev.properties(Target(stack, logical_id))["AssumeRolePolicyDocument"]["Statement"]
        assert [statement["Principal"] for statement in trust] == [{"Service": "lambda.amazonaws.com"}]


@pytest.mark.parametrize("service", SERVICES)
def test_each_function_logs_to_its_own_group_with_the_stage_retention(synth: Synth, service: str) -> None:
    # Given a function of each stage
    function = _function(synth, service)

    # When its logging configuration is followed to the log group
    group = synth.resolve("functions", function["LoggingConfig"]["LogGroup"])

    # Then the group is declared in the stack, with the stage's retention
    assert synth.resource(group)["Type"] == "AWS::Logs::LogGroup"
    assert synth.properties(group)["RetentionInDays"] == retention_days(synth.config)


def test_log_groups_are_not_shared_between_functions(dev: Synth) -> None:
    # Given every function's log group
    groups = [render(_function(dev, service)["LoggingConfig"]["LogGroup"]) for service in SERVICES]

    # Then each function writes to a group of its own
    assert len(set(groups)) == len(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_each_function_configures_powertools_through_its_environment(dev: Synth, service: str) -> None:
    # Given a function's environment
    variables = _function(dev, service)["Environment"]["Variables"]

    # Then Powertools logs and metrics under the function's name in one shared namespace
    assert variables["POWERTOOLS_SERVICE_NAME"] == service
    assert variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert variables["COHORT_STAGE"] == dev.config.stage


def test_dataset_generation_reads_new_datasets_from_the_table_stream(dev: Synth) -> None:
    # Given the event source mappings of the dataset-generation function
    function = dev.function("dataset_generation")
    mappings = [
        mapping["Properties"]
        for mapping in dev.resources("functions", "AWS::Lambda::EventSourceMapping").values()
        if mapping["Properties"]["FunctionName"] == {"Ref": function.logical_id}
    ]
    assert len(mappings) == 1
    mapping = mappings[0]

    # Then it reads the stream of the catalogue's datasets table, which carries new images
    source = dev.resolve("functions", mapping["EventSourceArn"])
    assert source.attribute == "StreamArn"
    table = dev.properties(source)
    assert table["TableName"] == dev.catalogue.table(Table.DATASETS)
    assert table["StreamSpecification"]["StreamViewType"] in {"NEW_IMAGE", "NEW_AND_OLD_IMAGES"}

    # And only insertions reach the function
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [{"eventName": ["INSERT"]}]

    # And a failing batch is halved, reported item by item, and finally parked in a queue
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 0 <= mapping["MaximumRetryAttempts"] <= 10
    failures = dev.resolve("functions", mapping["DestinationConfig"]["OnFailure"]["Destination"])
    assert dev.resource(failures)["Type"] == "AWS::SQS::Queue"


def _ses_statements(synth: Synth) -> list:
    email_role = synth.role_of("functions", _function(synth, "email")["Role"])
    statements = [s for s in synth.iam_statements() if any(a.startswith("ses:") for a in s.actions)]
    assert statements, "the email function may not send email"
    assert {role for statement in statements for role in statement.roles} == {email_role}
    return statements


def test_only_the_email_function_may_send_and_only_from_the_configured_sender(dev: Synth) -> None:
    # Given every statement in the app that grants an SES action
    statements = _ses_statements(dev)

    # Then each lets the email function send only as the configured sender
    sender = dev.config.sender_email
    for statement in statements:
        assert set(statement.actions) <= {"ses:SendEmail", "ses:SendRawEmail"}
        assert statement.body["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}


def test_the_email_function_may_send_through_the_sender_identity_only(dev: Synth) -> None:
    # Given the SES statement of the email function
    statements = _ses_statements(dev)

    # When its resources are read
    resources = {render(resource) for statement in statements for resource in statement.resources}

    # Then they are the identity of the sender's address or of its domain, and nothing wider
    sender = dev.config.sender_email
    identities = {resource.rpartition(":identity/")[2] for resource in resources}
    assert identities == {sender, sender.split("@", 1)[1]}
    assert all(":ses:" in resource for resource in resources)
