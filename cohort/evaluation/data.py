"""Evaluation data: the built-in digits test split, or a set a scientist uploads.

An upload is a safetensors file holding ``inputs`` (float32, ``[N, *input_shape]``,
values in [0, 1]) and ``labels`` (an integer type, ``[N]``). safetensors is a
plain header plus raw bytes, so reading one runs no code; every property the
attacks rely on is checked before the set is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from cohort.datasets import digits
from cohort.domain.errors import InvalidInput

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


@dataclass(frozen=True)
class EvaluationData:
    inputs: torch.Tensor  # float32 [N, *input_shape], in [0, 1]
    labels: torch.Tensor  # int64 [N]
    name: str

    def __len__(self) -> int:
        return len(self.labels)


def builtin_digits(input_shape: Sequence[int], samples: int, seed: int) -> EvaluationData:
    """``samples`` images drawn (by ``seed``) from the digits test split, shaped for the model.

    The split is the default one (``digits.load()``), whose test part training never sees;
    pixels are scaled to [0, 1] exactly as for training.
    """
    _, test = digits.load()
    test = test.shaped(input_shape)
    chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:samples]
    return EvaluationData(test.inputs[chosen].contiguous(), test.labels[chosen], "digits")


def parse_uploaded(
    data: bytes, input_shape: Sequence[int], num_classes: int, max_samples: int, max_bytes: int
) -> EvaluationData:
    """Check an uploaded safetensors evaluation set and return it, or raise InvalidInput."""
    if len(data) > max_bytes:
        raise InvalidInput(f"evaluation set: {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise InvalidInput(
            f"evaluation set: not a readable safetensors file (truncated or corrupt): {exc}"
        ) from None
    if set(tensors) != {"inputs", "labels"}:
        raise InvalidInput(f"evaluation set: expected tensors 'inputs' and 'labels', found {sorted(tensors)}")
    inputs, labels = tensors["inputs"], tensors["labels"]
    _check_layout(inputs, labels, list(input_shape), max_samples)
    _check_values(inputs, labels, num_classes)
    return EvaluationData(inputs.contiguous(), labels.to(torch.int64), "uploaded")


def _check_layout(
    inputs: torch.Tensor, labels: torch.Tensor, input_shape: list[int], max_samples: int
) -> None:
    if inputs.dtype != torch.float32:
        raise InvalidInput(f"evaluation set: 'inputs' is {inputs.dtype}, expected float32")
    if labels.dtype not in _INTEGER_DTYPES:
        raise InvalidInput(f"evaluation set: 'labels' is {labels.dtype}, expected an integer type")
    if inputs.dim() < 1 or list(inputs.shape[1:]) != input_shape:
        raise InvalidInput(
            f"evaluation set: 'inputs' has shape {list(inputs.shape)}, "
            f"expected [N, {', '.join(map(str, input_shape))}]"
        )
    if labels.dim() != 1 or len(labels) != len(inputs):
        raise InvalidInput(
            f"evaluation set: 'labels' has shape {list(labels.shape)}, "
            f"expected [{len(inputs)}], one per input"
        )
    if not 1 <= len(inputs) <= max_samples:
        raise InvalidInput(
            f"evaluation set: {len(inputs):,} samples; between 1 and {max_samples:,} are allowed"
        )


def _check_values(inputs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if not torch.isfinite(inputs).all():
        raise InvalidInput("evaluation set: 'inputs' holds NaN or infinite values")
    low, high = float(inputs.min()), float(inputs.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInput(
            f"evaluation set: 'inputs' range from {low:g} to {high:g}; scale them to [0, 1] "
            "(the attack budgets are fractions of that range)"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise InvalidInput(
            f"evaluation set: labels range from {int(labels.min())} to {int(labels.max())}; "
            f"the model has {num_classes} classes, so they must lie in [0, {num_classes - 1}]"
        )
