"""Validation of weights and update files before anything uses them."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import save

from cohort.domain.errors import CohortError, InvalidInput, PayloadTooLarge
from cohort.domain.weights import TensorSignature, decode, encode

SIGNATURE = TensorSignature({"fc1.weight": (16, 8), "fc1.bias": (16,), "fc2.weight": (4, 16)})


def _valid(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in SIGNATURE.shapes.items()}


def _refused(data: bytes, *, what: str = "weights") -> CohortError:
    with pytest.raises(CohortError) as caught:
        decode(data, SIGNATURE, what=what)
    return caught.value


def _safetensors_file(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


# -- accepted ---------------------------------------------------------------------------


def test_a_valid_file_round_trips_exactly() -> None:
    # Given weights that match the signature
    weights = _valid()

    # When they are encoded and decoded
    decoded = decode(encode(weights), SIGNATURE)

    # Then every tensor comes back bit for bit
    assert set(decoded) == set(weights)
    for name, tensor in weights.items():
        assert decoded[name].dtype == torch.float32
        assert torch.equal(decoded[name], tensor)


def test_non_contiguous_tensors_can_be_encoded() -> None:
    # Given a weight that is a transposed view
    weights = _valid()
    weights["fc1.weight"] = torch.randn(8, 16).t()
    assert not weights["fc1.weight"].is_contiguous()

    # When it is encoded and decoded, then the values survive
    assert torch.equal(decode(encode(weights), SIGNATURE)["fc1.weight"], weights["fc1.weight"])


# -- refused: contents do not fit the model ---------------------------------------------


def test_a_missing_tensor_is_refused_naming_it() -> None:
    weights = _valid()
    del weights["fc1.bias"]

    error = _refused(encode(weights))

    assert isinstance(error, InvalidInput)
    assert error.status_code == 422
    assert "missing ['fc1.bias']" in error.message


def test_an_extra_tensor_is_refused_naming_it() -> None:
    weights = _valid()
    weights["backdoor.weight"] = torch.zeros(2)

    error = _refused(encode(weights))

    assert isinstance(error, InvalidInput)
    assert "unexpected ['backdoor.weight']" in error.message


def test_a_renamed_tensor_is_refused_naming_both_sides() -> None:
    weights = _valid()
    weights["fc2.kernel"] = weights.pop("fc2.weight")

    error = _refused(encode(weights))

    assert isinstance(error, InvalidInput)
    assert "fc2.weight" in error.message
    assert "fc2.kernel" in error.message


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((8, 16), id="transposed-same-numel"),
        pytest.param((16, 9), id="one-column-more"),
        pytest.param((128,), id="flattened"),
        pytest.param((16, 8, 1), id="extra-axis"),
    ],
)
def test_a_wrong_shape_is_refused_naming_the_tensor_and_expected_shape(shape: tuple[int, ...]) -> None:
    weights = _valid()
    weights["fc1.weight"] = torch.zeros(shape)

    error = _refused(encode(weights))

    assert isinstance(error, InvalidInput)
    assert error.status_code == 422
    assert "'fc1.weight'" in error.message
    assert "[16, 8]" in error.message


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64])
def test_a_wrong_dtype_is_refused_naming_the_tensor(dtype: torch.dtype) -> None:
    weights = _valid()
    weights["fc2.weight"] = weights["fc2.weight"].to(dtype)

    error = _refused(encode(weights))

    assert isinstance(error, InvalidInput)
    assert "'fc2.weight'" in error.message
    assert "float32" in error.message


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused_naming_the_tensor(bad_value: float) -> None:
    # Given an otherwise valid update with a single non-finite element
    weights = _valid()
    weights["fc1.bias"][7] = bad_value

    # When it is decoded as an update
    error = _refused(encode(weights), what="the update")

    # Then the message is about the update and names the tensor
    assert isinstance(error, InvalidInput)
    assert error.message.startswith("the update")
    assert "'fc1.bias'" in error.message
    assert "NaN or infinite" in error.message


# -- refused: not a readable file --------------------------------------------------------


def _header_length(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="cut-in-the-middle"),
        pytest.param(lambda data: data[:-1], id="one-byte-short"),
        pytest.param(lambda data: data[: 8 + _header_length(data)], id="header-only"),
        pytest.param(lambda data: data[: 8 + _header_length(data) // 2], id="half-the-header"),
        pytest.param(lambda data: data[:8], id="length-prefix-only"),
        pytest.param(lambda data: data[:3], id="shorter-than-the-prefix"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_truncated_file_is_refused_as_unreadable(cut) -> None:
    error = _refused(cut(encode(_valid())))

    assert isinstance(error, InvalidInput)
    assert error.status_code == 422
    assert "not a readable safetensors file" in error.message


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("size", [1, 64, 500])
def test_random_garbage_is_refused_as_invalid_input(seed: int, size: int) -> None:
    data = bytes(torch.randint(0, 256, (size,), generator=torch.Generator().manual_seed(seed)).tolist())

    error = _refused(data)

    assert isinstance(error, InvalidInput)
    assert error.status_code == 422


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(struct.pack("<Q", 6) + b"[1, 2]", id="header-is-not-an-object"),
        pytest.param(struct.pack("<Q", 10**12) + b"{}", id="header-length-absurd"),
        pytest.param(
            _safetensors_file(
                {"fc1.bias": {"dtype": "F32", "shape": [16], "data_offsets": [0, 8]}}, b"\0" * 8
            ),
            id="offsets-disagree-with-shape",
        ),
        pytest.param(
            _safetensors_file(
                {"fc1.bias": {"dtype": "Q4", "shape": [16], "data_offsets": [0, 64]}}, b"\0" * 64
            ),
            id="unknown-dtype",
        ),
    ],
)
def test_a_corrupt_header_is_refused_as_invalid_input(data: bytes) -> None:
    error = _refused(data)

    assert isinstance(error, InvalidInput)
    assert "not a readable safetensors file" in error.message


# -- refused: too large ------------------------------------------------------------------


def test_a_file_for_a_much_bigger_model_is_refused_as_too_large() -> None:
    # Given a well-formed file whose tensors are far bigger than the model's
    oversized = {name: torch.zeros(shape[0] * 100, *shape[1:]) for name, shape in SIGNATURE.shapes.items()}

    # When it is decoded
    error = _refused(encode(oversized))

    # Then it is refused for its size (413), before any parsing
    assert isinstance(error, PayloadTooLarge)
    assert error.status_code == 413


def test_size_is_checked_before_anything_else() -> None:
    # Given garbage that is simply too big for this model
    data = os.urandom(SIGNATURE.nbytes + 1024 * 1024)

    # When it is decoded, then it is refused as too large, not as corrupt
    assert isinstance(_refused(data), PayloadTooLarge)


def test_a_valid_file_with_a_small_metadata_header_is_still_accepted() -> None:
    # Given a valid file that carries a little metadata in its header
    weights = _valid()
    data = save(weights, metadata={"framework": "pt", "note": "x" * 200})

    # When it is decoded, then the header slack allows it
    decoded = decode(data, SIGNATURE)
    assert torch.equal(decoded["fc1.weight"], weights["fc1.weight"])
