"""Monitoring: alarms on what breaks, all paging through one encrypted topic; a dashboard."""

from __future__ import annotations

from cohort.catalogue import Queue

from .helpers import Synth, Target, as_list


def _alarms(synth: Synth, namespace: str, metric: str) -> list[dict]:
    return [
        alarm["Properties"]
        for alarm in synth.resources("monitoring", "AWS::CloudWatch::Alarm").values()
        if (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName"))
        == (namespace, metric)
    ]


def _watched(synth: Synth, namespace: str, metric: str, dimension: str) -> set[tuple[str, str]]:
    """The resources whose ``metric`` some alarm watches, found through its ``dimension``."""
    return {
        synth.resolve("monitoring", d["Value"]).resource
        for alarm in _alarms(synth, namespace, metric)
        for d in alarm["Dimensions"]
        if d["Name"] == dimension
    }


def _topic(synth: Synth) -> Target:
    (logical_id,) = synth.resources("monitoring", "AWS::SNS::Topic")
    return Target("monitoring", logical_id)


def test_alarms_page_through_a_topic_encrypted_with_a_rotated_key_cloudwatch_may_use(dev: Synth) -> None:
    # Given the alarms topic and its key
    key = dev.resolve("monitoring", dev.properties(_topic(dev))["KmsMasterKeyId"])
    key_properties = dev.properties(key)

    # Then the topic is encrypted with a key of its own, rotated
    assert dev.resource(key)["Type"] == "AWS::KMS::Key"
    assert key_properties["EnableKeyRotation"] is True

    # And CloudWatch may use the key, or alarms could not publish to the topic
    cloudwatch = [
        statement
        for statement in key_properties["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= {a for s in cloudwatch for a in as_list(s["Action"])}


def test_every_alarm_notifies_the_topic(dev: Synth) -> None:
    # Given every alarm of the monitoring stack
    alarms = dev.resources("monitoring", "AWS::CloudWatch::Alarm").values()
    assert alarms

    # Then each sends its state changes to the alarms topic
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": _topic(dev).logical_id}]


def test_each_function_has_an_errors_alarm(dev: Synth) -> None:
    # Given the functions of the app
    functions = {
        ("functions", logical_id) for logical_id in dev.resources("functions", "AWS::Lambda::Function")
    }

    # Then an alarm watches each one's errors
    assert _watched(dev, "AWS/Lambda", "Errors", "FunctionName") == functions


def test_each_dead_letter_queue_has_a_depth_alarm(dev: Synth) -> None:
    # Given every dead-letter queue: redrive targets and the stream's on-failure destination
    redrive = {
        dev.resolve("storage", queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]).resource
        for queue in dev.resources("storage", "AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    }
    on_failure = {
        dev.resolve(
            "functions", mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        ).resource
        for mapping in dev.resources("functions", "AWS::Lambda::EventSourceMapping").values()
        if "DestinationConfig" in mapping["Properties"]
    }
    assert len(redrive) == len(Queue)
    assert len(on_failure) == 1

    # Then an alarm fires as soon as a message waits in any of them
    assert _watched(dev, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName") == redrive | on_failure


def test_an_alarm_fires_when_evaluations_wait_too_long(dev: Synth) -> None:
    # Given the catalogue's evaluations queue
    queue = dev.named("storage", "AWS::SQS::Queue", "QueueName", dev.catalogue.queue(Queue.EVALUATIONS))

    # Then an alarm watches the age of its oldest message, and only that queue's
    assert _watched(dev, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName") == {queue.resource}


def test_an_alarm_fires_on_api_server_errors(dev: Synth) -> None:
    # Given the REST API's name
    (api,) = dev.resources("api", "AWS::ApiGateway::RestApi").values()

    # Then an alarm watches that API's 5XX errors
    dimensions = [alarm["Dimensions"] for alarm in _alarms(dev, "AWS/ApiGateway", "5XXError")]
    assert dimensions == [[{"Name": "ApiName", "Value": api["Properties"]["Name"]}]]


def test_each_ecs_service_has_cpu_and_memory_alarms(dev: Synth) -> None:
    # Given every ECS service of the app
    services = {(stack, logical_id) for stack, logical_id, _ in dev.everywhere("AWS::ECS::Service")}

    # Then alarms watch each one's CPU and memory
    assert _watched(dev, "AWS/ECS", "CPUUtilization", "ServiceName") == services
    assert _watched(dev, "AWS/ECS", "MemoryUtilization", "ServiceName") == services


def test_a_dashboard_shows_the_platform(dev: Synth) -> None:
    # Given the monitoring stack
    template = dev.template("monitoring")

    # Then it holds one dashboard, named for the stage
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": f"cohort-{dev.config.stage}"}
    )
