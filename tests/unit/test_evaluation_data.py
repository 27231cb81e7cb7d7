"""Evaluation data: the built-in digits split, and uploaded sets refused unless they are sound."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save

from cohort.datasets import digits
from cohort.domain.errors import InvalidInput
from cohort.evaluation.data import builtin_digits, parse_uploaded

SHAPE = [1, 8, 8]


def _upload(
    inputs: torch.Tensor | None = None, labels: torch.Tensor | None = None, **extra: torch.Tensor
) -> bytes:
    tensors = {
        "inputs": torch.rand(5, *SHAPE) if inputs is None else inputs,
        "labels": torch.arange(5) if labels is None else labels,
        **extra,
    }
    return save(tensors)


def _parse(data: bytes, max_samples: int = 100, max_bytes: int = 1_000_000):
    return parse_uploaded(data, SHAPE, num_classes=10, max_samples=max_samples, max_bytes=max_bytes)


def test_builtin_digits_come_from_the_test_split_scaled_and_shaped_for_the_model() -> None:
    # Given the default split's test part
    _, test = digits.load()

    # When 50 samples are drawn for a model that takes flat inputs
    data = builtin_digits([64], 50, seed=3)

    # Then they are test images in [0, 1], reshaped, with their labels, and the same for the same seed
    assert data.inputs.shape == (50, 64)
    assert data.labels.dtype == torch.int64
    assert float(data.inputs.min()) >= 0.0
    assert float(data.inputs.max()) <= 1.0
    test_rows = {row.numpy().tobytes() for row in test.inputs.reshape(len(test), -1)}
    assert all(row.numpy().tobytes() in test_rows for row in data.inputs)
    assert torch.equal(builtin_digits([64], 50, seed=3).inputs, data.inputs)


def test_builtin_digits_refuse_a_model_of_another_input_size() -> None:
    # Given a model that takes 3x32x32 inputs, then digits cannot be fed to it
    with pytest.raises(InvalidInput, match="digits set"):
        builtin_digits([3, 32, 32], 10, seed=0)


def test_a_sound_upload_is_accepted_with_int64_labels() -> None:
    # Given a well-formed file with int32 labels
    data = _parse(_upload(labels=torch.arange(5, dtype=torch.int32)))

    # Then its inputs and labels come back, labels as int64
    assert data.inputs.shape == (5, *SHAPE)
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_upload(inputs=torch.rand(5, 1, 8, 9)), r"shape \[5, 1, 8, 9\], expected \[N, 1, 8, 8\]"),
        (_upload(inputs=torch.rand(5, *SHAPE, dtype=torch.float64)), "float64, expected float32"),
        (_upload(labels=torch.arange(4)), "one per input"),
        (_upload(labels=torch.arange(5.0)), "expected an integer type"),
        (_upload(inputs=torch.full((5, *SHAPE), float("nan"))), "NaN or infinite"),
        (_upload(inputs=torch.rand(5, *SHAPE) * 255), "scale them to"),
        (_upload(inputs=torch.rand(5, *SHAPE) - 0.5), "scale them to"),
        (_upload(labels=torch.tensor([0, 1, 2, 3, 10])), r"must lie in \[0, 9\]"),
        (_upload(labels=torch.tensor([0, 1, -1, 3, 4])), r"must lie in \[0, 9\]"),
        (_upload(extra=torch.zeros(1)), "expected tensors 'inputs' and 'labels'"),
        (_upload()[:-7], "truncated or corrupt"),
        (b"not a safetensors file", "truncated or corrupt"),
        (_upload(inputs=torch.rand(0, *SHAPE), labels=torch.arange(0)), "between 1 and 100"),
    ],
    ids=[
        "shape",
        "dtype",
        "label-count",
        "float-labels",
        "nan",
        "0-255",
        "negative",
        "label-too-big",
        "label-negative",
        "extra-tensor",
        "truncated",
        "garbage",
        "empty",
    ],
)
def test_an_unsound_upload_is_refused_with_a_clear_message(data: bytes, message: str) -> None:
    # Given a file with one defect, when it is parsed, then it is refused saying what is wrong
    with pytest.raises(InvalidInput, match=message):
        _parse(data)


def test_too_many_samples_are_refused() -> None:
    # Given 5 samples where at most 4 are allowed, then the file is refused
    with pytest.raises(InvalidInput, match="between 1 and 4"):
        _parse(_upload(), max_samples=4)


def test_an_oversized_file_is_refused_before_it_is_read() -> None:
    # Given a file over the byte limit, then it is refused as too large, without parsing
    with pytest.raises(InvalidInput, match="the limit is 1,000 bytes"):
        _parse(b"\0" * 2_000, max_bytes=1_000)
