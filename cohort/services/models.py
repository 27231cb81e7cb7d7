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
from pynamodb.expressions.update import Action

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
    record = ModelRecord(
        uuid.uuid4().hex,
        owner_id=owner.user_id,
        name=name,
        architecture=architecture.model_dump(mode="json"),
        parameter_count=_parameter_count(architecture),
    )
    record.save()
    return _created(record)


def create_import(owner: Principal, name: str) -> ModelCreated:
    """Register a model to be imported from an ONNX file; PUT the file to ``upload_url``, then commit."""
    record = ModelRecord(uuid.uuid4().hex, owner_id=owner.user_id, name=name, upload_format=ModelFormat.ONNX)
    record.save()
    return _created(record)


# The one prefix of the models bucket that presigned PUTs name. Nothing reads an upload but its commit,
# which seals what it checked under a key of its own; a PUT after that changes nothing anyone reads.
UPLOADS_PREFIX = "uploads/"
_UPLOADED_FILE = {ModelFormat.SAFETENSORS: "weights.safetensors", ModelFormat.ONNX: "source.onnx"}


def _upload_key(record: ModelRecord) -> str:
    return f"{UPLOADS_PREFIX}models/{record.model_id}/{_UPLOADED_FILE[ModelFormat(record.upload_format)]}"


def _sealed_key(model_id: str, extension: str) -> str:
    """A key of one commit's own: a commit racing another, or an upload replaced mid-commit, can
    overwrite or remove only its own copy, never the sealed weights of the commit that won."""
    return f"models/{model_id}/sealed-{uuid.uuid4().hex}.{extension}"


def _created(record: ModelRecord) -> ModelCreated:
    return ModelCreated(
        model=ModelView.of(record),
        upload_url=storage.presigned_put(Bucket.MODELS, _upload_key(record)),
        expires_in=get_settings().presigned_url_ttl_seconds,
    )


def owned(owner: Principal, model_id: str) -> ModelRecord:
    return owned_record(ModelRecord, model_id, owner, "model")


def usable(owner: Principal, model_id: str) -> ModelRecord:
    """A model of the owner's that a job or an evaluation may use: committed, its weights as sealed.

    The check reads the digest S3 keeps for the sealed weights (one HEAD request, not the weights):
    weights that went missing or were written over in storage answer 409 here, not 500 later.
    """
    record = owned(owner, model_id)
    if record.status != ModelStatus.READY:
        raise Conflict("the model's weights have not been committed; upload them and call commit first")
    if (
        record.weights_sha256
        and storage.sealed_sha256(Bucket.MODELS, record.weights_key) != record.weights_sha256
    ):
        raise Conflict(
            f"model {model_id}'s weights in storage are missing or are not those checked at commit; "
            "create the model again and upload its weights"
        )
    return record


def commit_upload(owner: Principal, model_id: str) -> ModelView:
    """Check the uploaded file (converting an ONNX one first) and seal it; only then is the model ready."""
    record = owned(owner, model_id)
    if record.status == ModelStatus.READY:
        raise Conflict("the model was committed already; create a new model to change it")
    settings = get_settings()
    upload_key = _upload_key(record)
    if record.upload_format == ModelFormat.ONNX:
        source = storage.get_bytes(Bucket.MODELS, upload_key, max_bytes=settings.max_onnx_bytes)
        _commit_onnx(record, upload_key, source)
    else:
        signature = TensorSignature.of(parse_architecture(record.architecture).build())
        weights = storage.get_bytes(Bucket.MODELS, upload_key, max_bytes=settings.max_model_bytes)
        decode(weights, signature)
        weights_key, digest = _sealed_key(model_id, "safetensors"), storage.sha256_hex(weights)
        storage.seal(Bucket.MODELS, upload_key, weights_key, digest)
        _mark_ready(
            record,
            [ModelRecord.weights_key.set(weights_key), ModelRecord.weights_sha256.set(digest)],
        )
    return ModelView.of(record)


def _commit_onnx(record: ModelRecord, upload_key: str, source: bytes) -> None:
    """Convert in the sandbox, then validate its output exactly as an upload: spec, then weights."""
    converted = sandbox.convert_onnx(source, get_settings())
    architecture = parse_architecture(converted.architecture)
    decode(converted.weights, TensorSignature.of(architecture.build()), what="the converted weights")
    weights_key = _sealed_key(record.model_id, "safetensors")
    digest = storage.put_sealed(Bucket.MODELS, weights_key, converted.weights)
    source_key = _sealed_key(record.model_id, "onnx")
    storage.seal(Bucket.MODELS, upload_key, source_key, storage.sha256_hex(source))
    _mark_ready(
        record,
        [
            ModelRecord.architecture.set(architecture.model_dump(mode="json")),
            ModelRecord.parameter_count.set(_parameter_count(architecture)),
            ModelRecord.import_notes.set(converted.notes),
            ModelRecord.weights_key.set(weights_key),
            ModelRecord.weights_sha256.set(digest),
            ModelRecord.source_key.set(source_key),
        ],
    )


def _mark_ready(record: ModelRecord, actions: list[Action]) -> None:
    """Record what was sealed and make the model ready, unless a commit that ran at the same time did
    (whose sealed copy then stays unread: the record names the winner's only)."""
    try:
        record.update(
            actions=[*actions, ModelRecord.status.set(ModelStatus.READY)],
            condition=ModelRecord.status == ModelStatus.AWAITING_UPLOAD,
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise Conflict("the model was committed already, by a commit that ran at the same time") from None
        raise


def list_owned(owner: Principal) -> list[ModelView]:
    return [ModelView.of(r) for r in ModelRecord.by_owner.query(owner.user_id, scan_index_forward=False)]
