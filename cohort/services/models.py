"""Scientists' models: an architecture spec plus safetensors weights uploaded to S3."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from cohort.catalogue import Bucket
from cohort.domain.architecture import ArchitectureSpec, parse_architecture
from cohort.domain.errors import Conflict
from cohort.domain.records import ModelRecord, ModelStatus
from cohort.domain.weights import TensorSignature, decode
from cohort.services import storage
from cohort.services.auth import Principal
from cohort.services.ownership import owned_record
from cohort.settings import get_settings


class ModelView(BaseModel):
    model_id: str
    name: str
    status: ModelStatus
    parameter_count: int
    architecture: ArchitectureSpec
    created_at: str

    @classmethod
    def of(cls, record: ModelRecord) -> ModelView:
        return cls(
            model_id=record.model_id,
            name=record.name,
            status=ModelStatus(record.status),
            parameter_count=int(record.parameter_count),
            architecture=parse_architecture(record.architecture),
            created_at=record.created_at.isoformat(),
        )


class ModelCreated(BaseModel):
    model: ModelView
    upload_url: str = Field(description="Presigned PUT for the initial weights (safetensors)")
    expires_in: int


def create(owner: Principal, name: str, architecture: ArchitectureSpec) -> ModelCreated:
    model_id = uuid.uuid4().hex
    module = architecture.build()
    record = ModelRecord(
        model_id,
        owner_id=owner.user_id,
        name=name,
        architecture=architecture.model_dump(mode="json"),
        weights_key=f"models/{model_id}/initial.safetensors",
        parameter_count=sum(p.numel() for p in module.parameters()),
    )
    record.save()
    return ModelCreated(
        model=ModelView.of(record),
        upload_url=storage.presigned_put(Bucket.MODELS, record.weights_key),
        expires_in=get_settings().presigned_url_ttl_seconds,
    )


def owned(owner: Principal, model_id: str) -> ModelRecord:
    return owned_record(ModelRecord, model_id, owner, "model")


def commit_upload(owner: Principal, model_id: str) -> ModelView:
    """Check the uploaded weights against the architecture; only then is the model ready."""
    record = owned(owner, model_id)
    if record.status == ModelStatus.READY:
        raise Conflict("the weights were committed already; create a new model to change them")
    signature = TensorSignature.of(parse_architecture(record.architecture).build())
    data = storage.get_bytes(Bucket.MODELS, record.weights_key, max_bytes=get_settings().max_model_bytes)
    decode(data, signature, what="the uploaded weights")
    record.update(actions=[ModelRecord.status.set(ModelStatus.READY)])
    return ModelView.of(record)


def list_owned(owner: Principal) -> list[ModelView]:
    return [ModelView.of(r) for r in ModelRecord.by_owner.query(owner.user_id, scan_index_forward=False)]
