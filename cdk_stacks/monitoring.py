"""A dashboard of the platform's vital signs, and alarms that page through one SNS topic."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.api import ApiStack
from cdk_stacks.compute import ComputeStack
from cdk_stacks.config import StageConfig
from cdk_stacks.functions import FunctionsStack
from cdk_stacks.jupyter import JupyterStack
from cdk_stacks.storage import StorageStack
from cohort.catalogue import Queue

_PERIOD = Duration.minutes(5)
_UTILIZATION_LIMIT = 85  # percent of the task's CPU or memory
_API_5XX_LIMIT = 5  # responses per period
_EVALUATION_WAIT_LIMIT = Duration.minutes(30)


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        storage: StorageStack,
        functions: FunctionsStack,
        compute: ComputeStack,
        api: ApiStack,
        jupyter: JupyterStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self.topic = self._build_topic()
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"cohort-{config.stage}")
        self.alarms: list[cloudwatch.Alarm] = []
        self._watch_functions(functions)
        self._watch_queues(
            {
                **{f"{queue.value} dead letters": dlq for queue, dlq in storage.dead_letter_queues.items()},
                "dataset-generation failures": functions.dataset_failures,
            }
        )
        self._watch_evaluation_backlog(storage.queues[Queue.EVALUATIONS])
        self._watch_api(api)
        self._watch_services(
            {
                "orchestrator": compute.orchestrator,
                "evaluator": compute.evaluator,
                "jupyterhub": jupyter.service,
            }
        )

    def _build_topic(self) -> sns.Topic:
        # CloudWatch can publish only to topics whose key lets it: a key of our own, rotated.
        key = kms.Key(
            self,
            "AlarmsKey",
            description="Encrypts the Cohort alarms topic",
            enable_key_rotation=True,
            removal_policy=self._config.removal_policy,
        )
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self, "Alarms", topic_name=f"cohort-{self._config.stage}-alarms", master_key=key, enforce_ssl=True
        )
        if self._config.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self._config.alarm_email))
        return topic

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str
    ) -> None:
        alarm = metric.create_alarm(
            self,
            construct_id,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def _watch_functions(self, functions: FunctionsStack) -> None:
        graphs = []
        for name, wrapped in (
            ("Signup", functions.signup),
            ("DatasetGeneration", functions.dataset_generation),
            ("Email", functions.email),
        ):
            errors = wrapped.function.metric_errors(period=_PERIOD, statistic="Sum")
            self._alarm(f"{name}Errors", errors, 1, f"The {name} function failed; see its log group.")
            graphs.append(errors.with_(label=name))
        self.dashboard.add_widgets(cloudwatch.GraphWidget(title="Lambda errors", left=graphs, width=12))

    def _watch_queues(self, dead_letter_queues: dict[str, sqs.IQueue]) -> None:
        graphs = []
        for label, queue in dead_letter_queues.items():
            depth = queue.metric_approximate_number_of_messages_visible(period=_PERIOD, statistic="Maximum")
            self._alarm(
                f"{label.title().replace(' ', '').replace('-', '')}",
                depth,
                1,
                f"Messages are waiting in {label}: something failed repeatedly; inspect and redrive them.",
            )
            graphs.append(depth.with_(label=label))
        self.dashboard.add_widgets(cloudwatch.GraphWidget(title="Dead letters", left=graphs, width=12))

    def _watch_evaluation_backlog(self, queue: sqs.IQueue) -> None:
        age = queue.metric_approximate_age_of_oldest_message(period=_PERIOD, statistic="Maximum")
        self._alarm(
            "EvaluationsWaiting",
            age,
            _EVALUATION_WAIT_LIMIT.to_seconds(),
            "An evaluation has waited over 30 minutes: check the GPU capacity and the evaluator's scaling.",
        )
        depth = queue.metric_approximate_number_of_messages_visible(period=_PERIOD)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Evaluations queue", left=[depth], right=[age], width=12)
        )

    def _watch_api(self, api: ApiStack) -> None:
        errors = api.api.metric_server_error(period=_PERIOD, statistic="Sum")
        self._alarm("Api5xx", errors, _API_5XX_LIMIT, "The API answers with server errors.")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API",
                left=[api.api.metric_count(period=_PERIOD), errors],
                right=[api.api.metric_latency(period=_PERIOD, statistic="p95")],
                width=12,
            )
        )

    def _watch_services(self, services: dict[str, ecs.BaseService]) -> None:
        cpu_graphs, memory_graphs = [], []
        for name, service in services.items():
            cpu = service.metric_cpu_utilization(period=_PERIOD)
            memory = service.metric_memory_utilization(period=_PERIOD)
            title = name.title()
            self._alarm(f"{title}Cpu", cpu, _UTILIZATION_LIMIT, f"The {name} tasks are short of CPU.")
            self._alarm(
                f"{title}Memory", memory, _UTILIZATION_LIMIT, f"The {name} tasks are short of memory."
            )
            cpu_graphs.append(cpu.with_(label=name))
            memory_graphs.append(memory.with_(label=name))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="ECS CPU %", left=cpu_graphs, width=12),
            cloudwatch.GraphWidget(title="ECS memory %", left=memory_graphs, width=12),
        )
