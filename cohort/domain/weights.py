"""Weights and updates in safetensors, checked before anything uses them.

A file from a user or a device must match the model exactly: the same tensor
names, shapes and dtype, finite values, and a bounded size. Otherwise it is
refused with a message that says what is wrong, and nothing changes.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from cohort.domain.errors import InvalidInput, PayloadTooLarge

Tensors = dict[str, torch.Tensor]
WEIGHT_DTYPE = torch.float32
# Integer buffers (BatchNorm's step counter) are not averaged or shipped.
_SKIPPED_DTYPES = (torch.int64, torch.int32)


@dataclass(frozen=True)
class TensorSignature:
    """The names and shapes a weights file for one architecture must have."""

    shapes: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, module: nn.Module) -> TensorSignature:
        return cls({name: tuple(t.shape) for name, t in trainable_state(module).items()})

    @property
    def nbytes(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values()) * WEIGHT_DTYPE.itemsize

    @property
    def max_file_bytes(self) -> int:
        """The largest safetensors file this signature admits: its tensors and a small header."""
        return self.nbytes + 64 * 1024 + 64 * len(self.shapes)

    def zeros(self) -> Tensors:
        return {name: torch.zeros(shape, dtype=WEIGHT_DTYPE) for name, shape in self.shapes.items()}


def trainable_state(module: nn.Module) -> Tensors:
    """The floating-point state of a module: parameters and running statistics."""
    return {
        name: tensor.detach()
        for name, tensor in module.state_dict().items()
        if tensor.dtype not in _SKIPPED_DTYPES
    }


def load_into(module: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    missing, unexpected = module.load_state_dict(dict(weights), strict=False)
    missing = [name for name in missing if not name.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise InvalidInput(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")


def encode(tensors: Mapping[str, torch.Tensor]) -> bytes:
    return save_safetensors({name: t.contiguous() for name, t in tensors.items()})


def decode(data: bytes, signature: TensorSignature, *, what: str = "weights") -> Tensors:
    """Parse a safetensors file and validate it against a signature: layout, then values."""
    tensors = view_tensors(data, signature, what=what)
    check_values(tensors, what=what)
    return tensors


def view_tensors(data: bytes, signature: TensorSignature, *, what: str = "weights") -> Tensors:
    """Parse a safetensors file and check its size and layout, but not its values.

    The tensors are read-only views into ``data``: safetensors' own loader
    copies every tensor, and on the FL node's hot path that copy alone costs
    more than folding the update in. The size check comes first and is exact:
    a file may carry a small header beyond the tensor bytes, and nothing more.
    """
    limit = signature.max_file_bytes
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{what}: {len(data):,} bytes; a file for this model is at most {limit:,} bytes"
        )
    tensors = _parse(data, what)
    check_layout(tensors, signature, what=what)
    return tensors


# https://github.com/huggingface/safetensors#format: an 8-byte little-endian
# header length, a JSON header, then every tensor's bytes back to back.
_HEADER_LENGTH = struct.Struct("<Q")
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
# torch warns that views of immutable bytes are writable; nothing here writes to them.
warnings.filterwarnings("ignore", message="The given buffer is not writable", category=UserWarning)


def _parse(data: bytes, what: str) -> Tensors:
    def corrupt(reason: str) -> InvalidInput:
        return InvalidInput(f"{what}: not a readable safetensors file (truncated or corrupt): {reason}")

    if len(data) < _HEADER_LENGTH.size:
        raise corrupt("shorter than its header")
    (header_length,) = _HEADER_LENGTH.unpack_from(data)
    body_start = _HEADER_LENGTH.size + header_length
    if body_start > len(data):
        raise corrupt("the header runs past the end of the file")
    try:
        header = json.loads(data[_HEADER_LENGTH.size : body_start])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt("the header is not JSON") from None
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    header.pop("__metadata__", None)

    entries = []
    for name, entry in header.items():
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = [int(size) for size in entry["shape"] if isinstance(size, int) and size >= 0]
            begin, end = (int(offset) for offset in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"tensor '{name}' has a malformed entry") from None
        if len(shape) != len(entry["shape"]):
            raise corrupt(f"tensor '{name}' has a malformed shape")
        entries.append((begin, end, name, dtype, shape))

    # One view of the whole body, so tensors that lie back to back can be
    # folded in as a single span (see contiguous_span).
    body_length = len(data) - body_start
    body = torch.frombuffer(data, dtype=torch.uint8, offset=body_start) if body_length else torch.empty(0)
    tensors, expected_begin = {}, 0
    for begin, end, name, dtype, shape in sorted(entries, key=lambda e: (e[0], e[1])):
        if begin != expected_begin or end - begin != math.prod(shape) * dtype.itemsize or end > body_length:
            raise corrupt(f"tensor '{name}' does not lie where its header says")
        try:
            tensors[name] = body[begin:end].view(dtype).view(shape)
        except RuntimeError:
            raise corrupt(f"tensor '{name}' is not aligned to its element size") from None
        expected_begin = end
    if expected_begin != body_length:
        raise corrupt(f"{body_length - expected_begin:,} bytes follow the last tensor")
    return tensors


def contiguous_span(tensors: Mapping[str, torch.Tensor], order: list[str]) -> torch.Tensor | None:
    """One flat view over tensors that lie back to back in memory in this order, else None.

    Files written by safetensors put same-dtype tensors in name order, so a
    decoded update is usually one span: one pass over it beats a pass per tensor.
    """
    first = tensors[order[0]]
    address, count = first.data_ptr(), 0
    for name in order:
        tensor = tensors[name]
        adjacent = tensor.data_ptr() == address + count * first.element_size()
        if tensor.dtype != first.dtype or not tensor.is_contiguous() or not adjacent:
            return None
        count += tensor.numel()
    try:
        return first.as_strided((count,), (1,))
    except RuntimeError:  # adjacent in memory but not one storage
        return None


def check_layout(tensors: Mapping[str, torch.Tensor], signature: TensorSignature, *, what: str) -> None:
    """Names, dtype and shapes: cheap, from the header alone."""
    expected, received = set(signature.shapes), set(tensors)
    if expected != received:
        raise InvalidInput(
            f"{what}: wrong tensor names: missing {sorted(expected - received)}, "
            f"unexpected {sorted(received - expected)}"
        )
    for name, tensor in tensors.items():
        if tensor.dtype != WEIGHT_DTYPE:
            raise InvalidInput(f"{what}: tensor '{name}' is {tensor.dtype}, expected float32")
        if tuple(tensor.shape) != signature.shapes[name]:
            raise InvalidInput(
                f"{what}: tensor '{name}' has shape {list(tensor.shape)}, "
                f"expected {list(signature.shapes[name])}"
            )


def check_values(tensors: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Every value finite: one pass over the data, then one per tensor only to name a culprit."""
    span = contiguous_span(tensors, sorted(tensors))
    if span is not None and torch.isfinite(span.sum()):
        return
    for name, tensor in tensors.items():
        # A sum is one vectorised pass and is non-finite iff some element is
        # (or the values are so large they overflow, which is refused too).
        if not torch.isfinite(tensor.sum()):
            raise InvalidInput(
                f"{what}: tensor '{name}' holds NaN or infinite values (or values so large they overflow)"
            )
