"""App developers' datasets and the API keys their apps use."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cohort.catalogue import Group
from cohort.domain.errors import NotFound, Unauthorized
from cohort.domain.records import ApiKeyRecord, DatasetRecord, DatasetStatus
from cohort.services.auth import Principal
from cohort.services.ownership import owned_record

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


class Attribute(BaseModel):
    """One column of the app's on-device data."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    type: Literal["int", "float", "bool", "category", "string"]
    min: float | None = None
    max: float | None = None
    choices: Annotated[list[str], Field(max_length=1000)] | None = None


class DatasetRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app_name: Name
    attributes: Annotated[list[Attribute], Field(min_length=1, max_length=256)]


class DatasetView(BaseModel):
    dataset_id: str
    app_name: str
    status: DatasetStatus
    attributes: list[Attribute]
    created_at: str

    @classmethod
    def of(cls, record: DatasetRecord) -> DatasetView:
        return cls(
            dataset_id=record.dataset_id,
            app_name=record.app_name,
            status=DatasetStatus(record.status),
            attributes=record.attributes,
            created_at=record.created_at.isoformat(),
        )


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
    owner.require(Group.APP_DEVELOPERS)
    record = DatasetRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        app_name=registration.app_name,
        attributes=[a.model_dump(mode="json", exclude_none=True) for a in registration.attributes],
    )
    record.save()
    return DatasetView.of(record)


def get(dataset_id: str) -> DatasetRecord:
    try:
        return DatasetRecord.get(dataset_id)
    except DatasetRecord.DoesNotExist:
        raise NotFound(f"no dataset {dataset_id}") from None


def browse() -> list[DatasetView]:
    """Every dataset scientists may train on, newest first, through the status index."""
    views = []
    for status in (DatasetStatus.READY, DatasetStatus.REGISTERED):
        views += [DatasetView.of(r) for r in DatasetRecord.by_status.query(status, scan_index_forward=False)]
    return views


def hash_api_key(api_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_api_key(owner: Principal, dataset_id: str) -> ApiKeyCreated:
    owner.require(Group.APP_DEVELOPERS)
    owned_record(DatasetRecord, dataset_id, owner, "dataset")
    api_key = "ck_" + secrets.token_urlsafe(32)
    key_id = uuid.uuid4().hex[:12]
    ApiKeyRecord(hash_api_key(api_key), key_id=key_id, dataset_id=dataset_id, owner_id=owner.user_id).save()
    return ApiKeyCreated(key_id=key_id, dataset_id=dataset_id, api_key=api_key)


def list_api_keys(owner: Principal, dataset_id: str) -> list[ApiKeyView]:
    owner.require(Group.APP_DEVELOPERS)
    owned_record(DatasetRecord, dataset_id, owner, "dataset")
    return [ApiKeyView.of(r) for r in ApiKeyRecord.by_dataset.query(dataset_id, scan_index_forward=False)]


def revoke_api_key(owner: Principal, dataset_id: str, key_id: str) -> ApiKeyView:
    """From now on the key gets no device token; tokens issued before live out their short TTL."""
    owner.require(Group.APP_DEVELOPERS)
    owned_record(DatasetRecord, dataset_id, owner, "dataset")
    for record in ApiKeyRecord.by_dataset.query(dataset_id, filter_condition=ApiKeyRecord.key_id == key_id):
        record.update(actions=[ApiKeyRecord.revoked.set(True)])
        return ApiKeyView.of(record)
    raise NotFound(f"no API key {key_id} for dataset {dataset_id}")


def dataset_of_api_key(api_key: str) -> str:
    try:
        record = ApiKeyRecord.get(hash_api_key(api_key))
    except ApiKeyRecord.DoesNotExist:
        record = None
    if record is None or record.revoked:
        raise Unauthorized("unknown or revoked API key")
    return record.dataset_id
