"""DynamoDB records (pynamodb).

Every request path reaches its data through a key or an index: each query the
API makes has an index below. Table names, region and endpoint are bound at
start-up by :func:`bind_tables`, never at import.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from cohort.catalogue import Table
from cohort.settings import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Record(Model):
    class Meta:
        billing_mode = "PAY_PER_REQUEST"


def _owner_index(record: str) -> type[GlobalSecondaryIndex]:
    class OwnerIndex(GlobalSecondaryIndex):
        class Meta:
            index_name = "owner-index"
            projection = AllProjection()

        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UTCDateTimeAttribute(range_key=True)

    OwnerIndex.__name__ = f"{record}OwnerIndex"
    return OwnerIndex


class UserRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.USERS

    user_id = UnicodeAttribute(hash_key=True)  # Cognito sub
    email = UnicodeAttribute()
    role = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)


class ApiKeyRecord(_Record):
    """An app's API key, stored only as its SHA-256 digest."""

    class Meta(_Record.Meta):
        table = Table.API_KEYS

    class DatasetIndex(GlobalSecondaryIndex):
        """An app developer lists and revokes the keys of one dataset through this index."""

        class Meta:
            index_name = "dataset-index"
            projection = AllProjection()

        dataset_id = UnicodeAttribute(hash_key=True)
        created_at = UTCDateTimeAttribute(range_key=True)

    key_hash = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute()  # public, shown in listings
    dataset_id = UnicodeAttribute()
    owner_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)
    revoked = BooleanAttribute(default=False)
    by_dataset = DatasetIndex()


class DatasetStatus(StrEnum):
    REGISTERED = "registered"
    READY = "ready"
    FAILED = "failed"


class DatasetRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.DATASETS
        stream_view_type = "NEW_IMAGE"

    class StatusIndex(GlobalSecondaryIndex):
        """Lets scientists browse the catalogue of datasets without a scan."""

        class Meta:
            index_name = "status-index"
            projection = AllProjection()

        status = UnicodeAttribute(hash_key=True)
        created_at = UTCDateTimeAttribute(range_key=True)

    OwnerIndex = _owner_index("Dataset")

    dataset_id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    app_name = UnicodeAttribute()
    attributes = JSONAttribute()
    # The sample's size and seed; absent on datasets registered before samples existed.
    rows = NumberAttribute(null=True)
    seed = NumberAttribute(null=True)
    status = UnicodeAttribute(default=DatasetStatus.REGISTERED)
    status_reason = UnicodeAttribute(null=True)  # why the sample could not be generated
    sample_keys = JSONAttribute(null=True)  # object key in the samples bucket, by format
    created_at = UTCDateTimeAttribute(default=utcnow)
    by_owner = OwnerIndex()
    by_status = StatusIndex()


class ModelStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    READY = "ready"


class ModelFormat(StrEnum):
    """What the scientist uploads; either way the stored model is a spec plus safetensors."""

    SAFETENSORS = "safetensors"  # weights for the architecture given at creation
    ONNX = "onnx"  # an ONNX graph, converted into a spec and weights at commit


class ModelRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.MODELS

    OwnerIndex = _owner_index("Model")

    model_id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    architecture = JSONAttribute(null=True)  # an imported model has one only once committed
    # Sealed at commit: the checked weights, copied away from the upload's key, which a presigned PUT
    # names, to one that no URL names; their SHA-256 (hex), which readers check. Null until committed
    # (a model committed before sealing existed has its weights key and no digest).
    weights_key = UnicodeAttribute(null=True)
    weights_sha256 = UnicodeAttribute(null=True)
    parameter_count = NumberAttribute(default=0)
    upload_format = UnicodeAttribute(default=ModelFormat.SAFETENSORS)
    source_key = UnicodeAttribute(null=True)  # the uploaded ONNX file as received, sealed at commit
    import_notes = JSONAttribute(null=True)  # what the ONNX conversion changed, in plain words
    status = UnicodeAttribute(default=ModelStatus.AWAITING_UPLOAD)
    created_at = UTCDateTimeAttribute(default=utcnow)
    by_owner = OwnerIndex()


class JobStatus(StrEnum):
    STARTING = "starting"  # its node is being launched, or relaunched after it stopped
    RUNNING = "running"  # its node runs the rounds
    COMPLETED = "completed"
    FAILED = "failed"


OPEN_JOB_STATUSES = (JobStatus.STARTING, JobStatus.RUNNING)


class NodeHealth(StrEnum):
    """What the orchestrator last found of a job's FL node; its supervisor checks every few seconds."""

    WAITING = "waiting"  # none runs; the supervisor launches one at its next pass
    LAUNCHING = "launching"  # a launch is under way (node_launches counts it)
    BOOTING = "booting"  # launched; its task has not started serving yet (ECS)
    HEALTHY = "healthy"
    UNREACHABLE = "unreachable"  # its process runs but does not answer its health check
    DOWN = "down"  # its launch failed or it stopped; relaunched at the next pass, within the limit
    RELEASED = "released"  # the job ended and its node was stopped


class TrainingJobRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.JOBS

    class DatasetStatusIndex(GlobalSecondaryIndex):
        """Devices list the open jobs of their app through this index."""

        class Meta:
            index_name = "dataset-status-index"
            projection = AllProjection()

        dataset_id = UnicodeAttribute(hash_key=True)
        status = UnicodeAttribute(range_key=True)

    class LiveNodeIndex(GlobalSecondaryIndex):
        """Sparse: holds every job from its creation until its node is released, so the supervisor
        finds each job that needs a node, or whose node must be checked or released, without a scan."""

        class Meta:
            index_name = "live-node-index"
            projection = AllProjection()

        live_node = UnicodeAttribute(hash_key=True)
        updated_at = UTCDateTimeAttribute(range_key=True)

    OwnerIndex = _owner_index("Job")

    job_id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    model_id = UnicodeAttribute()
    dataset_id = UnicodeAttribute()
    client_config = JSONAttribute()
    server_config = JSONAttribute()
    status = UnicodeAttribute(default=JobStatus.STARTING)
    status_reason = UnicodeAttribute(null=True)
    node_url = UnicodeAttribute(null=True)
    node_ref = UnicodeAttribute(null=True)  # launcher-specific handle: a pid or a task ARN
    live_node = UnicodeAttribute(null=True)  # the launcher kind, from creation until the node is released
    # The supervisor's view of the node: its NodeHealth, since when, when it was last checked,
    # how many launches the job has had, and why the last one failed or stopped.
    node_health = UnicodeAttribute(null=True)
    node_health_since = UTCDateTimeAttribute(null=True)
    node_checked_at = UTCDateTimeAttribute(null=True)
    node_launches = NumberAttribute(default=0)
    node_detail = UnicodeAttribute(null=True)
    current_round = NumberAttribute(default=1)
    round_attempt = NumberAttribute(default=1)
    global_weights_key = UnicodeAttribute()  # the model the current round trains
    trained_weights_key = UnicodeAttribute(null=True)
    evaluation_spec = JSONAttribute(null=True)  # evaluate the trained model with this spec
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    by_owner = OwnerIndex()
    by_dataset_status = DatasetStatusIndex()
    by_live_node = LiveNodeIndex()


class RoundStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


class RoundAttemptFailure(MapAttribute):
    attempt = NumberAttribute()
    reason = UnicodeAttribute()
    failed_at = UTCDateTimeAttribute()


class RoundRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.ROUNDS

    job_id = UnicodeAttribute(hash_key=True)
    round_number = NumberAttribute(range_key=True)
    attempt = NumberAttribute(default=1)
    status = UnicodeAttribute(default=RoundStatus.OPEN)
    opened_at = UTCDateTimeAttribute(default=utcnow)
    deadline = UTCDateTimeAttribute()
    closed_at = UTCDateTimeAttribute(null=True)
    # Written when the round closes; while it is open, its attempt's participations say them.
    devices = NumberAttribute(null=True)  # admitted to the last attempt
    reports = NumberAttribute(default=0)
    samples = NumberAttribute(default=0)
    loss = NumberAttribute(null=True)  # sample-weighted means of what devices reported
    accuracy = NumberAttribute(null=True)
    checkpoint_key = UnicodeAttribute(null=True)
    failures = ListAttribute(of=RoundAttemptFailure, default=list)


class ParticipationStatus(StrEnum):
    ASSIGNED = "assigned"
    REPORTED = "reported"


class ParticipationRecord(_Record):
    """One device's slot in one attempt of one round."""

    class Meta(_Record.Meta):
        table = Table.PARTICIPATIONS

    job_id = UnicodeAttribute(hash_key=True)
    slot = UnicodeAttribute(range_key=True)  # see participation_slot()
    request_key = UnicodeAttribute()
    device_id = UnicodeAttribute()
    round_number = NumberAttribute()
    attempt = NumberAttribute()
    status = UnicodeAttribute(default=ParticipationStatus.ASSIGNED)
    assigned_at = UTCDateTimeAttribute(default=utcnow)
    reported_at = UTCDateTimeAttribute(null=True)
    num_samples = NumberAttribute(null=True)
    loss = NumberAttribute(null=True)
    accuracy = NumberAttribute(null=True)
    update_key = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


def attempt_prefix(round_number: int, attempt: int) -> str:
    return f"{round_number:06d}#{attempt:03d}#"


def participation_slot(round_number: int, attempt: int, request_key: str) -> str:
    """Sort key that lets one query fetch every slot of a round attempt."""
    return attempt_prefix(round_number, attempt) + request_key


class EvaluationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


FINAL_EVALUATION_STATUSES = (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED)


class EvaluationRecord(_Record):
    class Meta(_Record.Meta):
        table = Table.EVALUATIONS

    OwnerIndex = _owner_index("Evaluation")

    evaluation_id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    model_id = UnicodeAttribute()  # whose architecture is evaluated
    job_id = UnicodeAttribute(null=True)  # set when the weights are a training job's result
    weights_key = UnicodeAttribute(null=True)  # in the models bucket, resolved at submission
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    progress = NumberAttribute(default=0)  # fraction of the attack work done, 0 to 1
    attempts = NumberAttribute(default=0)  # runs started, retries included
    request = JSONAttribute()  # the EvaluationSpec
    summary = JSONAttribute(null=True)  # headline numbers, once completed
    report_key = UnicodeAttribute(null=True)  # report.json in the reports bucket
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)  # also the running worker's heartbeat
    by_owner = OwnerIndex()


class DeviceRegistrationRecord(_Record):
    """A device's Ed25519 public key, registered by the first token exchange of its id."""

    class Meta(_Record.Meta):
        table = Table.DEVICE_REGISTRATIONS

    dataset_id = UnicodeAttribute(hash_key=True)
    device_id = UnicodeAttribute(range_key=True)
    public_key = UnicodeAttribute()  # the JWK's x: base64url of the raw 32 bytes
    api_key_id = UnicodeAttribute()  # the key it registered with
    registered_at = UTCDateTimeAttribute(default=utcnow)


class DeviceAssertionRecord(_Record):
    """An assertion already exchanged: written once, conditionally, so a replay is refused."""

    class Meta(_Record.Meta):
        table = Table.DEVICE_ASSERTIONS

    assertion_key = UnicodeAttribute(hash_key=True)  # dataset#device#jti
    expires_at = TTLAttribute()  # past it the assertion is refused as expired anyway


class RegistrationWindowRecord(_Record):
    """How many devices one API key registered in one minute: an atomic counter."""

    class Meta(_Record.Meta):
        table = Table.REGISTRATION_WINDOWS

    window_key = UnicodeAttribute(hash_key=True)  # key_id#minute
    registrations = NumberAttribute(default=0)
    expires_at = TTLAttribute()


ALL_RECORDS: tuple[type[_Record], ...] = (
    UserRecord,
    ApiKeyRecord,
    DatasetRecord,
    ModelRecord,
    TrainingJobRecord,
    RoundRecord,
    ParticipationRecord,
    EvaluationRecord,
    DeviceRegistrationRecord,
    DeviceAssertionRecord,
    RegistrationWindowRecord,
)


def bind_tables(settings: Settings) -> None:
    """Point every record class at this deployment's tables.

    Cheap when nothing changed: a record already bound to the same table, region
    and endpoint keeps its connection, so a Lambda handler may call this on
    every invocation.
    """
    for record in ALL_RECORDS:
        binding = (
            settings.catalogue.table(record.Meta.table),
            settings.aws_region,
            settings.aws_endpoint_url,
        )
        if (getattr(record.Meta, "table_name", None), record.Meta.region, record.Meta.host) == binding:
            continue
        record.Meta.table_name, record.Meta.region, record.Meta.host = binding
        record._connection = None
