"""The ONNX import's child process: what it returns is the conversion, and its limits hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohort.domain.architecture import parse_architecture
from cohort.domain.errors import InvalidInput
from cohort.domain.weights import TensorSignature, decode
from cohort.onnx_import.convert import convert
from cohort.onnx_import.sandbox import SandboxLimits, run_child

from .onnx_models import GraphBuilder, cnn

GENEROUS = SandboxLimits(memory_bytes=1024 * 2**20, cpu_seconds=60, wall_seconds=60)


def _refusal(data: bytes, limits: SandboxLimits) -> str:
    with pytest.raises(InvalidInput) as refused:
        run_child(data, limits)
    return refused.value.message


def test_the_child_returns_the_conversion_which_validates_as_an_upload() -> None:
    # Given an ONNX CNN
    data = cnn()

    # When the child converts it
    result = run_child(data, GENEROUS)

    # Then its architecture and weights are the in-process conversion's, and pass the upload checks
    direct = convert(data)
    architecture = parse_architecture(result.architecture)
    assert result.architecture == direct.architecture
    weights = decode(result.weights, TensorSignature.of(architecture.build()))
    for name, array in direct.weights.items():
        torch.testing.assert_close(weights[name], torch.tensor(array))
    assert result.notes == direct.notes


def test_a_file_the_converter_refuses_says_why() -> None:
    message = _refusal(b"definitely not protobuf", GENEROUS)
    assert message.startswith("the ONNX model cannot be imported: not a readable ONNX model")


def test_a_file_that_needs_more_memory_than_the_limit_is_stopped() -> None:
    # Given a 64 MiB model and 16 MiB of memory to convert it in
    graph = GraphBuilder(["batch", 4096])
    graph.add("Gemm", graph.constant("w", np.ones((4096, 4096), dtype=np.float32)), transB=1)
    data = graph.bytes(["batch", 4096])

    message = _refusal(data, SandboxLimits(memory_bytes=16 * 2**20, cpu_seconds=60, wall_seconds=60))

    assert message == (
        "the ONNX import needed more than 16 MiB of memory and was stopped; import a smaller model"
    )


def test_a_file_that_takes_too_long_is_stopped_at_the_wall_time_limit() -> None:
    message = _refusal(cnn(), SandboxLimits(memory_bytes=1024 * 2**20, cpu_seconds=60, wall_seconds=0.05))
    assert "took longer than 0.05 s" in message


def test_a_file_that_takes_too_much_cpu_is_stopped_at_the_cpu_limit() -> None:
    # Given a graph of 100,000 nodes, seconds of CPU to convert, and no CPU to spare
    graph = GraphBuilder(["batch", 4])
    for _ in range(100_000):
        graph.add("Relu")
    data = graph.bytes(["batch", 4])

    message = _refusal(data, SandboxLimits(memory_bytes=1024 * 2**20, cpu_seconds=0, wall_seconds=60))

    assert "s of CPU and was stopped" in message
