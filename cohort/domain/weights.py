"""Weights and updates in safetensors, checked before anything uses them.

A file from a user or a device must match the model exactly: the same tensor
names, shapes and dtype, finite values, and a bounded size. Otherwise it is
refused with a message that says what is wrong, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
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
        return sum(_numel(shape) for shape in self.shapes.values()) * WEIGHT_DTYPE.itemsize

    def zeros(self) -> Tensors:
        return {name: torch.zeros(shape, dtype=WEIGHT_DTYPE) for name, shape in self.shapes.items()}


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


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
    """Parse and validate a safetensors file against a signature.

    The size check comes first and is exact: a file may carry a small header
    beyond the tensor bytes, and nothing more.
    """
    limit = signature.nbytes + 64 * 1024 + 64 * len(signature.shapes)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"{what}: {len(data):,} bytes; a file for this model is at most {limit:,} bytes"
        )
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise InvalidInput(
            f"{what} are not a readable safetensors file (truncated or corrupt): {exc}"
        ) from None
    check(tensors, signature, what=what)
    return tensors


def check(tensors: Mapping[str, torch.Tensor], signature: TensorSignature, *, what: str = "weights") -> None:
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
        # A sum is one vectorised pass and is non-finite iff some element is
        # (or the values are so large they overflow, which is refused too).
        if not torch.isfinite(tensor.sum()):
            raise InvalidInput(
                f"{what}: tensor '{name}' holds NaN or infinite values (or values so large they overflow)"
            )
