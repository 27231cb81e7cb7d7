"""Scientists' models: an architecture spec plus safetensors weights, uploaded to S3.

A model is created from a spec and its weights, or imported from an ONNX file,
which is converted into a spec and weights in a limited child process at commit.
Either way, every consumer (the FL node, the evaluator) sees only the platform's
own format, and nothing is ever unpickled.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from pynamodb.exceptions import UpdateError

from cohort import storage
from cohort.catalogue import Bucket
from cohort.domain.architecture import ArchitectureSpec, parse_architecture
from cohort.domain.errors import Conflict
from cohort.domain.records import ModelFormat, ModelRecord, ModelStatus
from cohort.domain.weights import TensorSignature, decode
from cohort.onnx_import import sandbox
from cohort.services.ownership import owned_record
from cohort.settings import get_settings
from cohort.web.auth import Principal


class ModelView(BaseModel):
    model_id: str
    name: str
    status: ModelStatus
    upload_format: ModelFormat
    parameter_count: int
    architecture: ArchitectureSpec | None = Field(
        description="Null only for an ONNX import that has not been committed yet"
    )
    import_notes: list[str] = Field(description="What the ONNX conversion changed; empty otherwise")
    created_at: str

    @classmethod
    def of(cls, record: ModelRecord) -> ModelView:
        return cls(
            model_id=record.model_id,
            name=record.name,
            status=ModelStatus(record.status),
            upload_format=ModelFormat(record.upload_format),
            parameter_count=int(record.parameter_count),
            architecture=parse_architecture(record.architecture) if record.architecture else None,
            import_notes=list(record.import_notes or []),
            created_at=record.created_at.isoformat(),
        )


class ModelCreated(BaseModel):
    model: ModelView
    upload_url: str = Field(description="Presigned PUT for the file to upload, then commit the model")
    expires_in: int


def _parameter_count(architecture: ArchitectureSpec) -> int:
    return sum(p.numel() for p in architecture.build().parameters())


def create(owner: Principal, name: str, architecture: ArchitectureSpec) -> ModelCreated:
    model_id = uuid.uuid4().hex
    record = ModelRecord(
        model_id,
        owner_id=owner.user_id,
        name=name,
        architecture=architecture.model_dump(mode="json"),
        weights_key=_weights_key(model_id),
        parameter_count=_parameter_count(architecture),
    )
    record.save()
    return _created(record, record.weights_key)


def create_import(owner: Principal, name: str) -> ModelCreated:
    """Register a model to be imported from an ONNX file; PUT the file to ``upload_url``, then commit."""
    model_id = uuid.uuid4().hex
    record = ModelRecord(
        model_id,
        owner_id=owner.user_id,
        name=name,
        weights_key=_weights_key(model_id),
        upload_format=ModelFormat.ONNX,
        source_key=f"models/{model_id}/source.onnx",
    )
    record.save()
    return _created(record, record.source_key)


def _weights_key(model_id: str) -> str:
    return f"models/{model_id}/initial.safetensors"


def _created(record: ModelRecord, upload_key: str) -> ModelCreated:
    return ModelCreated(
        model=ModelView.of(record),
        upload_url=storage.presigned_put(Bucket.MODELS, upload_key),
        expires_in=get_settings().presigned_url_ttl_seconds,
    )


def owned(owner: Principal, model_id: str) -> ModelRecord:
    return owned_record(ModelRecord, model_id, owner, "model")


def commit_upload(owner: Principal, model_id: str) -> ModelView:
    """Check the uploaded file (converting an ONNX one first); only then is the model ready."""
    record = owned(owner, model_id)
    if record.status == ModelStatus.READY:
        raise Conflict("the model was committed already; create a new model to change it")
    settings = get_settings()
    if record.upload_format == ModelFormat.ONNX:
        source = storage.get_bytes(Bucket.MODELS, record.source_key, max_bytes=settings.max_onnx_bytes)
        _commit_onnx(record, source)
    else:
        signature = TensorSignature.of(parse_architecture(record.architecture).build())
        weights = storage.get_bytes(Bucket.MODELS, record.weights_key, max_bytes=settings.max_model_bytes)
        decode(weights, signature)
        record.update(actions=[ModelRecord.status.set(ModelStatus.READY)])
    return ModelView.of(record)


def _commit_onnx(record: ModelRecord, source: bytes) -> None:
    """Convert in the sandbox, then validate its output exactly as an upload: spec, then weights."""
    converted = sandbox.convert_onnx(source, get_settings())
    architecture = parse_architecture(converted.architecture)
    decode(converted.weights, TensorSignature.of(architecture.build()), what="the converted weights")
    storage.put_bytes(Bucket.MODELS, record.weights_key, converted.weights)
    try:
        record.update(
            actions=[
                ModelRecord.architecture.set(architecture.model_dump(mode="json")),
                ModelRecord.parameter_count.set(_parameter_count(architecture)),
                ModelRecord.import_notes.set(converted.notes),
                ModelRecord.status.set(ModelStatus.READY),
            ],
            condition=ModelRecord.status == ModelStatus.AWAITING_UPLOAD,
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise Conflict("the model was committed already, by a commit that ran at the same time") from None
        raise


def list_owned(owner: Principal) -> list[ModelView]:
    return [ModelView.of(r) for r in ModelRecord.by_owner.query(owner.user_id, scan_index_forward=False)]
