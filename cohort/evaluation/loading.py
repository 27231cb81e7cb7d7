"""What an evaluation runs on: the model and the data, read from S3 and checked.

Models come in the platform's own format only, an architecture spec plus
safetensors weights, for uploaded and trained models alike: nothing is ever
unpickled. Every problem with a file is a ``CohortError`` whose message says
what is wrong, so the worker can fail the evaluation at once with that reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from torch import nn

from cohort import storage
from cohort.catalogue import Bucket
from cohort.domain.architecture import ArchitectureSpec, parse_architecture
from cohort.domain.errors import NotFound
from cohort.domain.records import EvaluationRecord, ModelRecord
from cohort.domain.weights import TensorSignature, decode, load_into
from cohort.evaluation.data import EvaluationData, builtin_digits, parse_uploaded
from cohort.evaluation.spec import BUILTIN_DATASET, EvaluationSpec
from cohort.settings import get_settings

MAX_SAMPLES = 10_000  # the most an evaluation spec may ask for


@dataclass(frozen=True)
class LoadedModel:
    name: str
    architecture: ArchitectureSpec
    module: nn.Module  # in eval mode, on the CPU
    sha256: str  # of the weights file, for the report's manifest


def load_model(record: EvaluationRecord) -> LoadedModel:
    """The evaluated model: its spec, then its weights, both validated before use."""
    try:
        model = ModelRecord.get(record.model_id, consistent_read=True)
    except ModelRecord.DoesNotExist:
        raise NotFound(f"model {record.model_id} no longer exists") from None
    architecture = parse_architecture(model.architecture)
    module = architecture.build()
    signature = TensorSignature.of(module)
    key = record.weights_key or model.weights_key
    # A valid file is the tensors plus a small header: refuse anything much larger unread.
    limit = min(signature.nbytes * 2 + 1_000_000, get_settings().max_model_bytes)
    # The uploaded weights must be those sealed at commit; a job's trained weights only its node wrote.
    sealed = model.weights_sha256 if key == model.weights_key else None
    body = storage.get_bytes(Bucket.MODELS, key, max_bytes=limit, sha256=sealed)
    load_into(module, decode(body, signature, what="the model's weights"))
    return LoadedModel(model.name, architecture, module.eval(), hashlib.sha256(body).hexdigest())


def load_data(spec: EvaluationSpec, architecture: ArchitectureSpec) -> EvaluationData:
    """The built-in digits test split, or the scientist's uploaded set, checked against the model."""
    input_shape = tuple(architecture.input_shape)
    if spec.dataset == BUILTIN_DATASET:
        return builtin_digits(input_shape, spec.samples, spec.seed)
    max_bytes = get_settings().max_evaluation_set_bytes
    data = storage.get_bytes(Bucket.MODELS, spec.dataset, max_bytes=max_bytes)
    # A set may hold more samples than this evaluation uses; the engine takes the first ``samples``.
    return parse_uploaded(
        data, input_shape, architecture.num_classes, max_samples=MAX_SAMPLES, max_bytes=max_bytes
    )
