"""The Lambda functions: signup, sample-dataset generation and email."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.function import CohortFunction
from cdk_stacks.constructs.grants import (
    READ_ITEMS,
    READ_OBJECTS,
    WRITE_ITEMS,
    WRITE_OBJECTS,
    grant_items,
    grant_objects,
)
from cdk_stacks.constructs.lambda_bundling import ARCHITECTURE, RUNTIME, dependencies_code
from cdk_stacks.constructs.queues import dead_letter_queue
from cdk_stacks.storage import StorageStack
from cohort.catalogue import Bucket, Queue, Table

# Stream records are retried a few times, halving the batch on each failure,
# then parked in a queue so one bad dataset never blocks the others.
_STREAM_RETRIES = 3


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        storage: StorageStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._config = config
        self._storage = storage
        self._catalogue = storage.catalogue
        self._environment = {"COHORT_NAMESPACE": storage.catalogue.namespace}
        self._dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=dependencies_code(),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Third-party packages of the Cohort functions",
        )
        self.signup = self._build_signup()
        self.dataset_generation = self._build_dataset_generation()
        self.email = self._build_email()

    def _function(
        self, construct_id: str, name: str, environment: dict[str, str] | None = None, **kwargs: object
    ) -> CohortFunction:
        return CohortFunction(
            self,
            construct_id,
            name=name,
            config=self._config,
            dependencies=self._dependencies,
            environment={**self._environment, **(environment or {})},
            **kwargs,
        )

    def _build_signup(self) -> CohortFunction:
        signup = self._function("Signup", "signup", timeout=Duration.seconds(10))
        grant_items(signup.role, self._catalogue, Table.USERS, READ_ITEMS + WRITE_ITEMS)
        self._storage.queues[Queue.NOTIFICATIONS].grant_send_messages(signup.role)
        return signup

    def _build_dataset_generation(self) -> CohortFunction:
        generation = self._function(
            "DatasetGeneration", "dataset_generation", timeout=Duration.minutes(5), memory_mib=2048
        )
        grant_items(generation.role, self._catalogue, Table.DATASETS, READ_ITEMS + WRITE_ITEMS)
        grant_objects(
            generation.role, self._catalogue, Bucket.SAMPLES, (*WRITE_OBJECTS, "s3:AbortMultipartUpload")
        )
        self.dataset_failures = dead_letter_queue(self, "DatasetGenerationFailures")
        generation.function.add_event_source(
            sources.DynamoEventSource(
                self._storage.tables[Table.DATASETS],
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=10,
                bisect_batch_on_error=True,
                retry_attempts=_STREAM_RETRIES,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(self.dataset_failures),
                filters=[lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")})],
            )
        )
        return generation

    def _build_email(self) -> CohortFunction:
        sender = self._config.sender_email
        email = self._function(
            "Email",
            "email",
            timeout=Duration.seconds(60),
            environment={"COHORT_SENDER_EMAIL": sender},
        )
        grant_items(email.role, self._catalogue, Table.IDEMPOTENCY, READ_ITEMS + WRITE_ITEMS)
        grant_objects(email.role, self._catalogue, Bucket.REPORTS, READ_OBJECTS)
        notifications = self._storage.queues[Queue.NOTIFICATIONS]
        email.function.add_event_source(
            sources.SqsEventSource(notifications, batch_size=10, report_batch_item_failures=True)
        )
        identities = [sender, sender.split("@", 1)[1]]  # the address, or its verified domain
        email.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail", "ses:SendRawEmail"],
                resources=[
                    self.format_arn(
                        service="ses",
                        resource="identity",
                        resource_name=identity,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                    for identity in identities
                ],
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )
        return email
