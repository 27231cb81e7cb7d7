"""Every AWS resource name in one place.

The CDK stacks and the local platform both build names from here, so a table,
bucket or queue is never spelled twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Table(StrEnum):
    USERS = "users"
    API_KEYS = "api-keys"
    DATASETS = "datasets"
    MODELS = "models"
    JOBS = "jobs"
    ROUNDS = "rounds"
    PARTICIPATIONS = "participations"
    EVALUATIONS = "evaluations"
    DEVICE_REGISTRATIONS = "device-registrations"  # each device's public key
    DEVICE_ASSERTIONS = "device-assertions"  # assertion ids already used, until they expire
    REGISTRATION_WINDOWS = "registration-windows"  # new devices counted per API key and minute
    IDEMPOTENCY = "idempotency"  # Powertools idempotency records of the Lambda functions


class Bucket(StrEnum):
    MODELS = "models"  # uploaded weights, round checkpoints and trained models
    UPDATES = "updates"  # device deltas; short-lived
    SAMPLES = "samples"  # generated sample datasets
    REPORTS = "reports"  # evaluation reports
    ACCESS_LOGS = "access-logs"


class Queue(StrEnum):
    EVALUATIONS = "evaluations"
    NOTIFICATIONS = "notifications"


# The ports the services' containers listen on, which load balancers and security groups name.
ORCHESTRATOR_PORT = 8000
NODE_PORT = 8080

# A message received this many times without being deleted moves to its queue's
# dead-letter queue; consumers that mark work failed on the last try read it too.
MAX_RECEIVES = 5


@dataclass(frozen=True)
class Catalogue:
    """Names for one deployment, scoped by stage and a namespace.

    S3 bucket names are global across AWS, so they also carry the namespace
    (the account and region on AWS, ``local`` on the emulator).
    """

    stage: str
    namespace: str

    @property
    def prefix(self) -> str:
        return f"cohort-{self.stage}"

    def table(self, table: Table) -> str:
        return f"{self.prefix}-{table.value}"

    def bucket(self, bucket: Bucket) -> str:
        return f"{self.prefix}-{self.namespace}-{bucket.value}"

    def queue(self, queue: Queue) -> str:
        return f"{self.prefix}-{queue.value}"

    def dead_letter_queue(self, queue: Queue) -> str:
        return f"{self.prefix}-{queue.value}-dlq"

    @property
    def user_pool(self) -> str:
        return f"{self.prefix}-users"

    @property
    def user_pool_client(self) -> str:
        return f"{self.prefix}-sdk"

    @property
    def ecs_cluster(self) -> str:
        return f"{self.prefix}-cluster"

    @property
    def fl_node_task_family(self) -> str:
        return f"{self.prefix}-fl-node"

    @property
    def fl_node_gpu_task_family(self) -> str:
        return f"{self.prefix}-fl-node-gpu"

    @property
    def fl_node_container(self) -> str:
        return "fl-node"

    @property
    def public_api_url_parameter(self) -> str:
        """SSM parameter holding the API's public URL, which devices use to reach FL nodes."""
        return f"/cohort/{self.stage}/public-api-url"

    @property
    def device_token_secret(self) -> str:
        return f"cohort/{self.stage}/device-token-key"


class Group(StrEnum):
    """Cognito groups; a user's role on the platform."""

    SCIENTISTS = "scientists"
    APP_DEVELOPERS = "app-developers"
