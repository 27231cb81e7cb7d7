"""State: DynamoDB tables, S3 buckets and SQS queues, named by the catalogue."""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.config import StageConfig
from cdk_stacks.constructs.buckets import secure_bucket
from cdk_stacks.constructs.queues import queue_with_dead_letters
from cdk_stacks.constructs.tables import idempotency_table, record_table
from cohort.catalogue import Bucket, Catalogue, Queue, Table
from cohort.domain.records import ALL_RECORDS

# How long a consumer may hold a message before SQS hands it out again.
_VISIBILITY = {Queue.EVALUATIONS: Duration.minutes(15), Queue.NOTIFICATIONS: Duration.minutes(2)}
# How long a browser may reuse a preflight answer.
_CORS_MAX_AGE_SECONDS = 3600


def _browser_access(origin: str) -> dict[Bucket, s3.CorsRule]:
    """What the dashboard, from ``origin`` only, does with presigned URLs of each bucket."""
    return {
        # Uploads of weights, ONNX files and evaluation sets, sent as application/octet-stream.
        Bucket.MODELS: s3.CorsRule(
            allowed_origins=[origin],
            allowed_methods=[s3.HttpMethods.PUT],
            allowed_headers=["content-type"],
            max_age=_CORS_MAX_AGE_SECONDS,
        ),
        # The sample preview reads the first bytes of the CSV, and how long the whole file is.
        Bucket.SAMPLES: s3.CorsRule(
            allowed_origins=[origin],
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
            allowed_headers=["range"],
            exposed_headers=["Content-Range", "Content-Length", "ETag"],
            max_age=_CORS_MAX_AGE_SECONDS,
        ),
        # The evaluation report's JSON, drawn by the site.
        Bucket.REPORTS: s3.CorsRule(
            allowed_origins=[origin],
            allowed_methods=[s3.HttpMethods.GET],
            max_age=_CORS_MAX_AGE_SECONDS,
        ),
    }


class StorageStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.catalogue = Catalogue(stage=config.stage, namespace=f"{Aws.ACCOUNT_ID}-{Aws.REGION}")
        self._config = config
        self.tables: dict[Table, dynamodb.TableV2] = {}
        self.buckets: dict[Bucket, s3.Bucket] = {}
        self.queues: dict[Queue, sqs.Queue] = {}
        self.dead_letter_queues: dict[Queue, sqs.Queue] = {}
        self._build_tables()
        self._build_buckets()
        self._build_queues()

    def _build_tables(self) -> None:
        removal = self._config.removal_policy
        for record in ALL_RECORDS:
            table = record.Meta.table
            self.tables[table] = record_table(self, record, self.catalogue.table(table), removal)
        self.tables[Table.IDEMPOTENCY] = idempotency_table(
            self, self.catalogue.table(Table.IDEMPOTENCY), removal
        )

    def _build_buckets(self) -> None:
        removal = self._config.removal_policy
        access_logs = secure_bucket(
            self,
            "AccessLogs",
            bucket_name=self.catalogue.bucket(Bucket.ACCESS_LOGS),
            removal_policy=removal,
            access_logs=None,
        )
        self.buckets[Bucket.ACCESS_LOGS] = access_logs
        expiry = {Bucket.UPDATES: self._config.updates_expiry_days}
        browser_access = _browser_access(self._config.website_origin)
        for bucket in Bucket:
            if bucket is Bucket.ACCESS_LOGS:
                continue
            self.buckets[bucket] = secure_bucket(
                self,
                bucket.name.title(),
                bucket_name=self.catalogue.bucket(bucket),
                removal_policy=removal,
                access_logs=access_logs,
                expire_after_days=expiry.get(bucket),
                cors=[browser_access[bucket]] if bucket in browser_access else None,
            )

    def _build_queues(self) -> None:
        for queue in Queue:
            self.queues[queue], self.dead_letter_queues[queue] = queue_with_dead_letters(
                self,
                queue.name.title(),
                queue_name=self.catalogue.queue(queue),
                dead_letter_name=self.catalogue.dead_letter_queue(queue),
                visibility_timeout=_VISIBILITY[queue],
            )
