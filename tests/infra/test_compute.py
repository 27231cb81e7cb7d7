"""Compute: the VPC, the cluster and its GPU capacity, the orchestrator, FL nodes and the evaluator."""

from __future__ import annotations

import json
import re

from cohort.catalogue import Queue

from .helpers import Synth, Target, environment, render, secrets


def _service(synth: Synth, container: str) -> Target:
    """The ECS service that runs the task definition holding ``container``."""
    task_definition, _, _ = synth.container(container)
    (service,) = (
        Target(task_definition.stack, logical_id)
        for logical_id, service in synth.resources(task_definition.stack, "AWS::ECS::Service").items()
        if synth.resolve(task_definition.stack, service["Properties"]["TaskDefinition"]) == task_definition
    )
    return service


def _gpu_capacity_provider(synth: Synth) -> Target:
    (strategy,) = synth.properties(_service(synth, "Evaluator"))["CapacityProviderStrategy"]
    return synth.resolve("compute", strategy["CapacityProvider"])


def test_the_evaluator_runs_on_the_gpu_capacity_provider(dev: Synth) -> None:
    # Given the evaluator service's capacity provider strategy
    provider = _gpu_capacity_provider(dev)

    # Then it is the cluster's EC2 capacity provider, with ECS managing its scaling
    assert dev.resource(provider)["Type"] == "AWS::ECS::CapacityProvider"
    assert dev.properties(provider)["AutoScalingGroupProvider"]["ManagedScaling"]["Status"] == "ENABLED"
    (association,) = dev.resources("compute", "AWS::ECS::ClusterCapacityProviderAssociations").values()
    assert {"Ref": provider.logical_id} in association["Properties"]["CapacityProviders"]


def test_gpu_hosts_scale_from_zero_on_the_ecs_gpu_ami(synth: Synth) -> None:
    # Given the auto scaling group behind the GPU capacity provider, and its launch template
    provider = synth.properties(_gpu_capacity_provider(synth))
    group = synth.properties(
        synth.resolve("compute", provider["AutoScalingGroupProvider"]["AutoScalingGroupArn"])
    )
    launch_template = synth.resolve("compute", group["LaunchTemplate"]["LaunchTemplateId"])
    launch = synth.properties(launch_template)["LaunchTemplateData"]

    # Then no GPU instance runs while nothing waits, and at most the stage's number do
    assert group["MinSize"] == "0"
    assert group["MaxSize"] == str(synth.config.max_gpu_instances)

    # And instances are the stage's GPU type, booting Amazon Linux 2023's ECS GPU-optimized AMI
    # from SSM: its NVIDIA driver runs the CUDA 13.0 torch the GPU images carry
    assert launch["InstanceType"] == synth.config.gpu_instance_type
    parameter = synth.templates["compute"]["Parameters"][launch["ImageId"]["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"].startswith("/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/")


def test_fl_node_task_families_are_the_catalogues_cpu_on_fargate_and_gpu_on_ec2(dev: Synth) -> None:
    # Given the task definitions that run the FL-node container
    nodes = {
        properties["Family"]: (properties, container)
        for _, properties in dev.task_definitions()
        for container in properties["ContainerDefinitions"]
        if container["Name"] == dev.catalogue.fl_node_container
    }

    # Then they are the catalogue's two families
    assert set(nodes) == {dev.catalogue.fl_node_task_family, dev.catalogue.fl_node_gpu_task_family}

    # And the CPU variant runs on Fargate without a GPU
    cpu, cpu_container = nodes[dev.catalogue.fl_node_task_family]
    assert cpu["RequiresCompatibilities"] == ["FARGATE"]
    assert "ResourceRequirements" not in cpu_container

    # And the GPU variant runs on EC2 and reserves one GPU
    gpu, gpu_container = nodes[dev.catalogue.fl_node_gpu_task_family]
    assert gpu["RequiresCompatibilities"] == ["EC2"]
    assert gpu_container["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]


def test_the_orchestrator_reads_the_device_token_key_from_secrets_manager(dev: Synth) -> None:
    # Given the orchestrator's container
    task_definition, _, container = dev.container("Orchestrator")
    variables = environment(container)

    # Then the token key comes from the catalogue's secret, injected by ECS, never in plain text
    assert "COHORT_TOKEN_SECRET" not in variables
    secret = dev.resolve(task_definition.stack, secrets(container)["COHORT_TOKEN_SECRET"])
    assert dev.resource(secret)["Type"] == "AWS::SecretsManager::Secret"
    assert dev.properties(secret)["Name"] == dev.catalogue.device_token_secret

    # And it launches FL nodes on ECS, starting from the CPU node task definition
    assert variables["COHORT_LAUNCHER"] == "ecs"
    node = dev.resolve(task_definition.stack, variables["COHORT_ECS_NODE_TASK_DEFINITION"])
    assert dev.properties(node)["Family"] == dev.catalogue.fl_node_task_family


def test_the_orchestrator_answers_the_website_and_accepts_its_tokens(synth: Synth) -> None:
    # Given the orchestrator's container, in each stage
    task_definition, _, container = synth.container("Orchestrator")
    variables = environment(container)

    # Then it allows cross-origin calls from the website's origin, and from no other
    assert json.loads(variables["COHORT_ALLOWED_ORIGINS"]) == [synth.config.website_origin]

    # And it limits new device registrations per API key as the stage says
    assert variables["COHORT_DEVICE_REGISTRATIONS_PER_MINUTE"] == str(
        synth.config.device_registrations_per_minute
    )

    # And it accepts ID tokens of the SDK's and the website's clients
    client_ids = json.loads(render(variables["COHORT_USER_POOL_CLIENT_IDS"]))
    names = set()
    for client_id in client_ids:
        (export,) = re.fullmatch(r"\$\{Import:([^}]+)\}", client_id).groups()
        client = synth.resolve(task_definition.stack, {"Fn::ImportValue": export})
        names.add(render(synth.properties(client)["ClientName"]))
    assert names == {synth.catalogue.user_pool_client, f"{synth.catalogue.prefix}-website"}


def test_fl_nodes_read_the_same_device_token_key(dev: Synth) -> None:
    # Given the orchestrator's secret and the FL-node containers
    orchestrator, _, container = dev.container("Orchestrator")
    key = dev.resolve(orchestrator.stack, secrets(container)["COHORT_TOKEN_SECRET"])
    for task_definition, properties in dev.fl_node_task_definitions():
        (node,) = properties["ContainerDefinitions"]

        # Then each node verifies device tokens with the key the orchestrator signs them with
        assert dev.resolve(task_definition.stack, secrets(node)["COHORT_TOKEN_SECRET"]) == key


def test_the_orchestrator_sits_behind_an_internal_load_balancer(dev: Synth) -> None:
    # Given the orchestrator service
    service = dev.properties(_service(dev, "Orchestrator"))

    # Then it receives traffic from a target group of an internal ALB's listener
    (binding,) = service["LoadBalancers"]
    group = dev.properties(dev.resolve("compute", binding["TargetGroupArn"]))
    assert group["TargetType"] == "ip"
    balancers = dev.resources("compute", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert {b["Properties"]["Type"]: b["Properties"]["Scheme"] for b in balancers} == {
        "application": "internal",
        "network": "internal",
    }


def test_no_ecs_service_gets_a_public_address(dev: Synth) -> None:
    # Given every ECS service of the app
    services = dev.everywhere("AWS::ECS::Service")
    assert len(services) == 3

    for stack, _, service in services:
        network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        # Then its tasks get no public IP and live in the private subnets
        assert network["AssignPublicIp"] == "DISABLED"
        for subnet in network["Subnets"]:
            assert "privateSubnet" in dev.resolve(stack, subnet).logical_id


def test_the_vpc_reaches_s3_dynamodb_sqs_and_ecr_through_endpoints(dev: Synth) -> None:
    # Given the VPC endpoints, by service (com.amazonaws.<region>.<service>)
    endpoints = {
        render(e["Properties"]["ServiceName"]).removeprefix("com.amazonaws.").split(".", 1)[1]: e[
            "Properties"
        ]
        for e in dev.resources("compute", "AWS::EC2::VPCEndpoint").values()
    }

    # Then bulk traffic to S3 and DynamoDB takes the free gateway endpoints
    assert endpoints["s3"]["VpcEndpointType"] == "Gateway"
    assert endpoints["dynamodb"]["VpcEndpointType"] == "Gateway"

    # And SQS and both ECR APIs are reached privately, through interface endpoints with private DNS
    for service in ("sqs", "ecr.api", "ecr.dkr"):
        assert endpoints[service]["VpcEndpointType"] == "Interface", service
        assert endpoints[service]["PrivateDnsEnabled"] is True, service


def test_the_evaluator_scales_from_zero_on_the_evaluations_queue(synth: Synth) -> None:
    # Given the evaluator's scalable target, its scaling policies and their alarms
    service = _service(synth, "Evaluator")
    (target_id, target), *others = [
        (logical_id, t["Properties"])
        for logical_id, t in synth.resources("compute", "AWS::ApplicationAutoScaling::ScalableTarget").items()
        if render(t["Properties"]["ResourceId"]).endswith(f"${{{service.logical_id}.Name}}")
    ]
    assert not others
    policies = {
        logical_id
        for logical_id, p in synth.resources("compute", "AWS::ApplicationAutoScaling::ScalingPolicy").items()
        if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    }
    alarms = [
        a["Properties"]
        for a in synth.resources("compute", "AWS::CloudWatch::Alarm").values()
        if {synth.resolve("compute", action).logical_id for action in a["Properties"]["AlarmActions"]}
        & policies
    ]

    # Then it runs between zero and the stage's number of tasks
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, synth.config.max_evaluator_tasks)

    # And both scaling directions watch the catalogue's evaluations queue
    queue = synth.named("storage", "AWS::SQS::Queue", "QueueName", synth.catalogue.queue(Queue.EVALUATIONS))
    assert len(alarms) == 2
    for alarm in alarms:
        watched = {
            synth.resolve("compute", dimension["Value"]).resource
            for metric in alarm["Metrics"]
            if "MetricStat" in metric
            for dimension in metric["MetricStat"]["Metric"]["Dimensions"]
        }
        assert watched == {queue.resource}
