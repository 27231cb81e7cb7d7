"""App developers' datasets, their sample datasets, and the API keys their apps use."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

from pydantic import BaseModel, Field

from cohort import storage
from cohort.catalogue import Bucket, Group
from cohort.datasets.schema import MAX_SEED, DatasetSchema, Name, SampleFormat
from cohort.domain.errors import Conflict, Forbidden, NotFound, Unauthorized
from cohort.domain.records import ApiKeyRecord, DatasetRecord, DatasetStatus
from cohort.services.ownership import owned_record
from cohort.web.auth import Principal

_ROLES = frozenset(group.value for group in Group)


class DatasetRegistration(DatasetSchema):
    """An app's on-device data: its attributes, and the sample dataset to generate from them."""

    app_name: Name


class DatasetSummary(BaseModel):
    """What a scientist needs to choose a dataset: its app, schema, sample size and state.

    Never the seed: with the schema and the row count, it would rebuild the sample row for row.
    """

    dataset_id: str
    app_name: str
    status: DatasetStatus = Field(
        description="registered: the sample is being generated; ready: it can be downloaded; "
        "failed: see status_reason"
    )
    status_reason: str | None = None
    attributes: list[dict[str, Any]] = Field(description="As registered (see DatasetRegistration)")
    rows: int | None = Field(description="Rows of the sample")
    created_at: str

    @classmethod
    def of(cls, record: DatasetRecord) -> DatasetSummary:
        return cls(
            dataset_id=record.dataset_id,
            app_name=record.app_name,
            status=DatasetStatus(record.status),
            status_reason=record.status_reason,
            attributes=record.attributes,
            rows=record.rows,
            created_at=record.created_at.isoformat(),
        )


class DatasetView(DatasetSummary):
    """A dataset as the app developer who registered it sees it, or as a scientist does."""

    seed: int | None = Field(
        description="The sample's seed, for the app developer who registered the dataset only (null for "
        "anyone else): the same schema and seed give the same rows"
    )

    @classmethod
    def for_caller(cls, record: DatasetRecord, caller: Principal) -> DatasetView:
        summary = DatasetSummary.of(record)
        return cls(**summary.model_dump(), seed=record.seed if record.owner_id == caller.user_id else None)


class ApiKeyView(BaseModel):
    key_id: str
    dataset_id: str
    created_at: str
    revoked: bool

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyView:
        return cls(
            key_id=record.key_id,
            dataset_id=record.dataset_id,
            created_at=record.created_at.isoformat(),
            revoked=record.revoked,
        )


class ApiKeyCreated(BaseModel):
    key_id: str
    dataset_id: str
    api_key: str = Field(description="Shown once; only its hash is stored")


def register(owner: Principal, registration: DatasetRegistration) -> DatasetView:
    """Store the dataset; its stream record has the dataset function generate the sample."""
    owner.require(Group.APP_DEVELOPERS)
    record = DatasetRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        app_name=registration.app_name,
        attributes=registration.stored_attributes(),
        rows=registration.rows,
        seed=secrets.randbelow(MAX_SEED + 1) if registration.seed is None else registration.seed,
    )
    record.save()
    return DatasetView.for_caller(record, owner)


def get(dataset_id: str) -> DatasetRecord:
    try:
        return DatasetRecord.get(dataset_id)
    except DatasetRecord.DoesNotExist:
        raise NotFound(f"no dataset {dataset_id}") from None


def readable(caller: Principal, dataset_id: str) -> DatasetRecord:
    """A dataset with its sample: for every scientist, and for the app developer who registered it."""
    record = get(dataset_id)
    if Group.SCIENTISTS.value not in caller.groups and record.owner_id != caller.user_id:
        raise Forbidden(
            "a dataset and its sample are for scientists and for the app developer who registered it"
        )
    return record


def sample(caller: Principal, dataset_id: str, fmt: SampleFormat) -> storage.Download:
    """A presigned link to the sample dataset, once it has been generated."""
    record = readable(caller, dataset_id)
    if record.status == DatasetStatus.FAILED:
        raise Conflict(
            f"the sample of dataset {dataset_id} could not be generated: {record.status_reason}. "
            "Register the dataset again with the schema corrected"
        )
    if record.status != DatasetStatus.READY or not record.sample_keys:
        raise Conflict(
            f"the sample of dataset {dataset_id} is still being generated; try again in a few seconds"
        )
    return storage.download(
        Bucket.SAMPLES, record.sample_keys[fmt], filename=f"{record.app_name}-{dataset_id[:8]}.{fmt}"
    )


def browse(caller: Principal) -> list[DatasetSummary]:
    """Every dataset scientists may train on, newest first, through the status index.

    For accounts with a role only: one whose sign-up did not complete sees nothing.
    """
    if not caller.groups & _ROLES:
        raise Forbidden(
            "your account has no role on Cohort yet: finish signing up as a scientist or an app developer, "
            "or ask an administrator to add you to the 'scientists' or 'app-developers' group"
        )
    # Registered first: a sample that becomes ready between the two queries is then in the second,
    # where the other order would miss it; one listed twice is kept as ready.
    registered = list(DatasetRecord.by_status.query(DatasetStatus.REGISTERED, scan_index_forward=False))
    ready = list(DatasetRecord.by_status.query(DatasetStatus.READY, scan_index_forward=False))
    ready_ids = {record.dataset_id for record in ready}
    still_registered = [record for record in registered if record.dataset_id not in ready_ids]
    return [DatasetSummary.of(record) for record in ready + still_registered]


def owned(owner: Principal, dataset_id: str) -> DatasetRecord:
    """A dataset, for the app developer who registered it; another's answers 404, a scientist 403."""
    owner.require(Group.APP_DEVELOPERS)
    return owned_record(DatasetRecord, dataset_id, owner, "dataset")


def registered_by(developer: Principal) -> list[DatasetSummary]:
    """The datasets an app developer registered, newest first, through the owner index."""
    developer.require(Group.APP_DEVELOPERS)
    records = DatasetRecord.by_owner.query(developer.user_id, scan_index_forward=False)
    return [DatasetSummary.of(record) for record in records]


def hash_api_key(api_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_api_key(owner: Principal, dataset_id: str) -> ApiKeyCreated:
    owned(owner, dataset_id)
    api_key = "ck_" + secrets.token_urlsafe(32)
    key_id = uuid.uuid4().hex[:12]
    ApiKeyRecord(hash_api_key(api_key), key_id=key_id, dataset_id=dataset_id, owner_id=owner.user_id).save()
    return ApiKeyCreated(key_id=key_id, dataset_id=dataset_id, api_key=api_key)


def list_api_keys(owner: Principal, dataset_id: str) -> list[ApiKeyView]:
    owned(owner, dataset_id)
    return [ApiKeyView.of(r) for r in ApiKeyRecord.by_dataset.query(dataset_id, scan_index_forward=False)]


def revoke_api_key(owner: Principal, dataset_id: str, key_id: str) -> ApiKeyView:
    """From now on the key gets no device token; tokens issued before live out their short TTL."""
    owned(owner, dataset_id)
    for record in ApiKeyRecord.by_dataset.query(dataset_id, filter_condition=ApiKeyRecord.key_id == key_id):
        record.update(actions=[ApiKeyRecord.revoked.set(True)])
        return ApiKeyView.of(record)
    raise NotFound(f"no API key {key_id} for dataset {dataset_id}")


def live_api_key(api_key: str) -> ApiKeyRecord:
    """The record of an API key that devices may still use."""
    try:
        record = ApiKeyRecord.get(hash_api_key(api_key))
    except ApiKeyRecord.DoesNotExist:
        record = None
    if record is None or record.revoked:
        raise Unauthorized("unknown or revoked API key")
    return record
