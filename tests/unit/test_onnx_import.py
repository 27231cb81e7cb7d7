"""ONNX graphs into the platform's format: the converted model computes what ONNX Runtime does."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.numpy import load_file

from cohort.domain.architecture import parse_architecture
from cohort.domain.errors import InvalidInput
from cohort.domain.weights import load_into
from cohort.onnx_import.convert import convert

from .onnx_models import (
    CHANNELS_LAST_LAYERS,
    CNN_LAYERS,
    EXPORTS,
    GraphBuilder,
    channels_last_cnn,
    cnn,
    mlp_with_softmax,
    reshaping_mlp,
)


def _reference(data: bytes, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def _imported(data: bytes) -> tuple[torch.nn.Module, list[str]]:
    converted = convert(data)
    architecture = parse_architecture(converted.architecture)
    module = architecture.build()
    load_into(module, {name: torch.tensor(array) for name, array in converted.weights.items()})
    return module.eval(), converted.notes


def _outputs(module: torch.nn.Module, data: bytes, shape: tuple[int, ...], seed: int) -> tuple:
    """The imported module's outputs and ONNX Runtime's, on the same random inputs."""
    inputs = np.random.default_rng(seed).random(shape, dtype=np.float32)
    with torch.no_grad():
        ours = module(torch.from_numpy(inputs))
    return ours, _reference(data, inputs)


def test_an_mlp_keeps_its_predictions_and_loses_only_its_softmax() -> None:
    # Given an exported MLP that ends in Softmax
    data = mlp_with_softmax()

    # When it is imported
    module, notes = _imported(data)

    # Then the logits, softmaxed, are ONNX Runtime's probabilities, and the note says why they are logits
    logits, reference = _outputs(module, data, (16, 1, 8, 8), seed=0)
    np.testing.assert_allclose(logits.softmax(dim=1).numpy(), reference, atol=1e-6)
    assert any("Softmax was dropped" in note for note in notes)


def test_a_cnn_with_batch_norm_and_a_matmul_bias_computes_the_same_logits() -> None:
    data = cnn()

    module, notes = _imported(data)

    ours, reference = _outputs(module, data, (8, 1, 8, 8), seed=1)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-5)
    assert [type(layer).__name__ for layer in module] == CNN_LAYERS
    assert module[1].eps == pytest.approx(1e-3)
    assert notes == []


def test_a_channels_last_keras_style_cnn_imports_with_its_layout_and_padding() -> None:
    # Given a CNN that takes [batch, H, W, C] and pads "same", as Keras models export
    data = channels_last_cnn()

    # When it is imported
    converted = convert(data)
    module, _ = _imported(data)

    # Then it still takes channels-last inputs, its transposes became Permute layers and its
    # "same" padding an explicit one, and its probabilities are ONNX Runtime's
    assert converted.input_shape == [8, 8, 1]
    assert [type(layer).__name__ for layer in module] == CHANNELS_LAST_LAYERS
    assert [converted.layers[i]["dims"] for i in (0, 4)] == [[3, 1, 2], [2, 3, 1]]
    assert converted.layers[1]["padding"] == 1
    logits, reference = _outputs(module, data, (8, 8, 8, 1), seed=4)
    np.testing.assert_allclose(logits.softmax(dim=1).numpy(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        pytest.param(
            "keras_cnn_flatten",
            [
                *("Permute", "Conv2d", "ReLU", "ChannelAffine", "MaxPool2d", "Permute", "Flatten"),
                *("Linear", "Tanh", "Linear"),
            ],
            id="keras-cnn-batchnorm-flatten",
        ),
        pytest.param(
            "keras_cnn_gap",
            ["Permute", "Conv2d", "ReLU", "Conv2d", "ReLU", "GlobalAvgPool2d", "Flatten", "Linear"],
            id="keras-cnn-global-average",
        ),
        pytest.param(
            "keras_rgb_rescaled",
            [
                *("ChannelAffine", "Permute", "Conv2d", "ReLU", "AvgPool2d", "Conv2d", "Sigmoid"),
                *("GlobalMaxPool2d", "Flatten", "Linear", "Tanh", "Linear"),
            ],
            id="keras-rgb-rescaling-global-max",
        ),
        pytest.param("keras_mlp", ["Linear", "ReLU", "Linear"], id="keras-mlp"),
        pytest.param("keras_gelu_mlp", ["Linear", "GELU", "Linear"], id="keras-written-out-gelu"),
        pytest.param(
            "torch_cnn",
            ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "GELU", "Linear"],
            id="torch-dynamo-cnn-folded-batchnorm",
        ),
        pytest.param(
            "torch_gap",
            ["Conv2d", "ReLU", "GlobalAvgPool2d", "Flatten", "Linear"],
            id="torch-dynamo-reducemean",
        ),
        pytest.param("torch_mlp", ["Flatten", "Linear", "Tanh", "Linear"], id="torch-dynamo-mlp-logsoftmax"),
    ],
)
def test_models_exported_by_keras_and_pytorch_compute_what_their_framework_computes(
    name: str, layers: list[str]
) -> None:
    # Given a model as tf2onnx or PyTorch's default exporter writes it, and what its framework
    # computed for 16 inputs (tests/fixtures/onnx_exports/export_*.py wrote both)
    data = (EXPORTS / f"{name}.onnx").read_bytes()
    expected = load_file(EXPORTS / f"{name}.safetensors")

    # When it is imported
    converted = convert(data)
    module, notes = _imported(data)

    # Then its layers are the ones the model had, its input layout kept, and it computes the same
    assert [layer["type"] for layer in converted.layers] == layers
    with torch.no_grad():
        logits = module(torch.from_numpy(expected["inputs"]))
    if any("final Softmax was dropped" in note for note in notes):
        logits = logits.softmax(dim=1)
    elif any("final LogSoftmax was dropped" in note for note in notes):
        logits = logits.log_softmax(dim=1)
    np.testing.assert_allclose(logits.numpy(), expected["outputs"], rtol=1e-5, atol=1e-5)


def test_reshape_dropout_and_scaled_gemm_in_float64_are_translated() -> None:
    data = reshaping_mlp()

    module, notes = _imported(data)

    ours, reference = _outputs(module, data, (1, 1, 8, 8), seed=2)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)
    assert "float64 weights were converted to float32" in notes
    assert module[2].p == pytest.approx(0.25)


def test_a_model_exported_by_torch_imports_to_the_same_logits() -> None:
    # Given a torch CNN exported to ONNX by torch itself
    torch.manual_seed(0)
    original = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(96, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 10),
    ).eval()
    original[1].running_mean.uniform_(-0.5, 0.5)
    original[1].running_var.uniform_(0.5, 2.0)
    example = torch.rand(4, 1, 8, 8)
    exported = _torch_export(original, example)

    # When it is imported
    module, _ = _imported(exported)

    # Then the imported model is the original
    with torch.no_grad():
        torch.testing.assert_close(module(example), original(example), rtol=1e-5, atol=1e-5)


class _ViewFlatten(torch.nn.Module):
    """A CNN that flattens with ``x.view(x.size(0), *tail)``, as many hand-written models do."""

    def __init__(self, tail: tuple[int, ...] = (-1,)) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(256, 10)
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), *self.tail))


class _GlobalPooled(torch.nn.Module):
    """A convolution, then each channel pooled to one value in one of the ways models write it."""

    def __init__(self, pooling: str) -> None:
        super().__init__()
        self.conv, self.fc, self.pooling = torch.nn.Conv2d(1, 6, 3), torch.nn.Linear(6, 10), pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).relu()
        if self.pooling == "adaptive":
            x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        elif self.pooling == "mean":
            x = x.mean(dim=(2, 3))
        else:
            x = x.amax(dim=(2, 3))
        return self.fc(x)


@pytest.mark.parametrize(
    ("pooling", "layers"),
    [
        ("adaptive", ["GlobalAvgPool2d", "Flatten"]),  # exported as GlobalAveragePool, Flatten
        ("mean", ["GlobalAvgPool2d", "Flatten"]),  # ReduceMean, keepdims 0
        ("max", ["GlobalMaxPool2d", "Flatten"]),  # ReduceMax, keepdims 0
    ],
)
def test_global_pooling_imports_as_a_global_pool_whichever_way_it_was_written(
    pooling: str, layers: list[str]
) -> None:
    # Given a torch model that pools each channel of its feature map, exported by torch
    torch.manual_seed(0)
    original = _GlobalPooled(pooling).eval()
    example = torch.rand(3, 1, 8, 8)

    # When it is imported
    converted = convert(_torch_export(original, example))
    module, _ = _imported(_torch_export(original, example))

    # Then the pooling became a global pool, and the logits are the original's
    assert [layer["type"] for layer in converted.layers] == ["Conv2d", "ReLU", *layers, "Linear"]
    with torch.no_grad():
        torch.testing.assert_close(module(example), original(example), rtol=1e-5, atol=1e-5)


def test_a_keras_style_global_average_over_channels_last_axes_imports() -> None:
    # Given a channels-last model that averages over H and W, as Keras' GlobalAveragePooling2D exports
    graph = GraphBuilder(["batch", 8, 8, 1], seed=5)
    graph.add("Transpose", perm=[0, 3, 1, 2])
    graph.add("Conv", graph.weight("conv.w", (4, 1, 3, 3)), graph.weight("conv.b", (4,)))
    graph.add("Relu")
    graph.add("Transpose", perm=[0, 2, 3, 1])
    graph.add("ReduceMean", axes=[1, 2], keepdims=0)
    graph.add("MatMul", graph.weight("fc.w", (4, 10)))
    data = graph.bytes(["batch", 10])

    # When it is imported
    module, _ = _imported(data)

    # Then it computes what ONNX Runtime does
    ours, reference = _outputs(module, data, (6, 8, 8, 1), seed=5)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_a_global_pool_squeezed_to_its_channels_imports_as_pool_and_flatten() -> None:
    graph = GraphBuilder(["batch", 3, 8, 8], seed=6)
    graph.add("GlobalMaxPool")
    graph.add("Squeeze", graph.constant("axes", np.array([2, 3], dtype=np.int64)))
    graph.add("Gemm", graph.weight("w", (10, 3)), transB=1)
    data = graph.bytes(["batch", 10])

    module, _ = _imported(data)

    assert [type(layer).__name__ for layer in module] == ["AdaptiveMaxPool2d", "Flatten", "Linear"]
    ours, reference = _outputs(module, data, (4, 3, 8, 8), seed=6)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


def test_a_squeeze_that_leaves_more_than_features_is_refused() -> None:
    graph = GraphBuilder(["batch", 3, 8, 1])
    graph.add("Squeeze", graph.constant("axes", np.array([3], dtype=np.int64)))
    graph.add("Flatten")
    graph.add("Gemm", graph.weight("w", (10, 24)), transB=1)
    assert "only a squeeze to [batch, features]" in _refused(graph.bytes(["batch", 10]))


def test_a_reduction_over_other_axes_than_an_images_spatial_ones_is_refused() -> None:
    graph = GraphBuilder(["batch", 4, 8, 8])
    graph.add("ReduceMean", axes=[1], keepdims=0)
    graph.add("Flatten")
    graph.add("Gemm", graph.weight("w", (3, 64)), transB=1)
    message = _refused(graph.bytes(["batch", 3]))
    assert "reduces axes [1] of a rank-4 tensor" in message


def test_a_flatten_written_as_shape_arithmetic_imports_as_a_flatten() -> None:
    # Given a model exported with a dynamic batch that flattens through Shape, Gather, Unsqueeze, Concat
    torch.manual_seed(0)
    original = _ViewFlatten().eval()
    example = torch.rand(3, 1, 8, 8)

    # When it is imported
    module, _ = _imported(_torch_export(original, example))

    # Then the shape arithmetic became one Flatten, and the logits are the original's
    assert [type(layer).__name__ for layer in module] == ["Conv2d", "ReLU", "Flatten", "Linear"]
    with torch.no_grad():
        torch.testing.assert_close(module(example), original(example), rtol=1e-5, atol=1e-5)


def test_a_reshape_that_does_not_flatten_is_refused() -> None:
    # Given shape arithmetic that keeps the batch axis but splits the features in two
    original = _ViewFlatten(tail=(16, -1))
    original.fc = torch.nn.Linear(16, 10)
    original.eval()

    message = _refused(_torch_export(original, torch.rand(2, 1, 8, 8)))

    assert "(Reshape) turns [2, 4, 8, 8] into [2, 16, 16]" in message


def _torch_export(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    return buffer.getvalue()


# -- refusals --------------------------------------------------------------------------------
def _refused(data: bytes) -> str:
    with pytest.raises(InvalidInput) as refused:
        convert(data)
    return refused.value.message


def test_a_truncated_file_is_refused_as_corrupt() -> None:
    data = cnn()
    assert "truncated or corrupt" in _refused(data[: len(data) // 2])
    assert "truncated or corrupt" in _refused(b"\x00\x01not onnx at all")


def test_an_unsupported_operator_is_named_with_the_supported_ones() -> None:
    graph = GraphBuilder(["batch", 4])
    graph.add("LeakyRelu", alpha=0.1)
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)

    message = _refused(graph.bytes(["batch", 3]))

    assert "LeakyRelu" in message
    assert "supported: Conv, Gemm" in message


def test_a_branching_graph_is_refused_as_not_a_chain() -> None:
    # Given a residual connection: the Add reads two data paths
    graph = GraphBuilder(["batch", 4])
    skip = graph.current
    graph.add("Relu")
    graph.node(helper.make_node("Add", [graph.current, skip], ["residual"], name="residual"))
    graph.current = "residual"
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)

    assert "only a single chain of layers" in _refused(graph.bytes(["batch", 3]))


def test_external_data_is_never_followed() -> None:
    # Given an initializer that points at a file on the converting machine
    graph = GraphBuilder(["batch", 4])
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)
    model = graph.model(["batch", 3])
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../etc/passwd")

    assert "external file" in _refused(model.SerializeToString())


def test_a_symbolic_feature_dimension_is_refused() -> None:
    graph = GraphBuilder(["batch", "features"])
    graph.add("Relu")
    assert "every dimension but the batch must be fixed" in _refused(graph.bytes(["batch", "features"]))


def test_non_finite_weights_are_refused() -> None:
    graph = GraphBuilder(["batch", 4])
    weights = np.ones((3, 4), dtype=np.float32)
    weights[1, 2] = np.nan
    graph.add("Gemm", graph.constant("w", weights), transB=1)
    assert "NaN or infinite" in _refused(graph.bytes(["batch", 3]))


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"group": 2}, "grouped convolutions"),
        ({"pads": [1, 0, 1, 0]}, "pads must be equal"),
        ({"dilations": [2, 2]}, "dilated kernels"),
        ({"strides": [1, 2]}, "strides must be two equal values"),
    ],
)
def test_convolutions_beyond_the_allow_list_are_refused(attributes: dict, problem: str) -> None:
    graph = GraphBuilder(["batch", 2, 8, 8])
    in_channels = 1 if attributes.get("group") == 2 else 2
    graph.add("Conv", graph.weight("w", (2, in_channels, 3, 3)), **attributes)
    graph.add("Flatten")
    model = graph.model(["batch", "features"])
    assert problem in _refused(model.SerializeToString())


def test_arithmetic_with_per_channel_constants_becomes_channel_affine_layers() -> None:
    # Given x - c, then c - x, then x / c on features, each constant one value per feature
    graph = GraphBuilder(["batch", 4], seed=7)
    graph.add("Sub", graph.weight("mean", (4,)))
    graph.add("Sub", graph.weight("offset", (1, 4)), data_position=1)
    graph.add("Div", graph.constant("scale", np.array([0.5, 2.0, -4.0, 1.5], dtype=np.float32)))
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)
    data = graph.bytes(["batch", 3])

    # When it is imported
    module, _ = _imported(data)

    # Then each became a per-channel affine layer, and together they compute what ONNX Runtime does
    assert [type(layer).__name__ for layer in module] == ["PerChannelAffine"] * 3 + ["Linear"]
    ours, reference = _outputs(module, data, (5, 4), seed=7)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("op", "constant", "data_position", "problem"),
    [
        pytest.param(
            "Mul", (1, 2, 8, 8), 0, "shape [1, 2, 8, 8] is not one value per channel", id="full-map"
        ),
        pytest.param("Add", (8,), 0, "shape [8] is not one value per channel", id="last-axis"),
        pytest.param("Div", (2, 1, 1), 1, "only x / constant is supported", id="constant-over-x"),
    ],
)
def test_arithmetic_that_is_not_per_channel_is_refused(
    op: str, constant: tuple[int, ...], data_position: int, problem: str
) -> None:
    graph = GraphBuilder(["batch", 2, 8, 8])
    graph.add(op, graph.weight("c", constant), data_position=data_position)
    graph.add("Flatten")
    assert problem in _refused(graph.bytes(["batch", 128]))


def _written_out_gelu(half: float = 0.5, extra_reader: bool = False) -> bytes:
    """x -> 0.5 * x * erfc(-x / sqrt(2)), as tf2onnx writes GELU, between two Linear layers."""
    graph = GraphBuilder(["batch", 4], seed=8)
    x = graph.add("Gemm", graph.weight("w1", (6, 4)), transB=1)
    graph.node(helper.make_node("Mul", [x, graph.constant("half", np.array(half, np.float32))], ["halved"]))
    graph.node(helper.make_node("Neg", [x], ["negated"]))
    scale = graph.constant("rsqrt2", np.array(1 / np.sqrt(2), np.float32))
    graph.node(helper.make_node("Mul", ["negated", scale], ["scaled"]))
    graph.node(helper.make_node("Erfc", ["scaled"], ["tail"]))
    graph.node(helper.make_node("Mul", ["halved", "tail"], ["gelu"]))
    graph.current = "gelu"
    if extra_reader:  # the halved input is read again: fusing would lose it
        graph.node(helper.make_node("Add", ["gelu", "halved"], ["both"]))
        graph.current = "both"
    graph.add("Gemm", graph.weight("w2", (3, 6)), transB=1)
    return graph.model(["batch", 3], checked=False).SerializeToString()  # Erfc is tf2onnx's own


def test_a_gelu_written_out_as_arithmetic_is_fused_into_one_layer() -> None:
    converted = convert(_written_out_gelu())
    assert [layer["type"] for layer in converted.layers] == ["Linear", "GELU", "Linear"]
    assert converted.notes == [
        "1 GELU written out as arithmetic, as TensorFlow exports it, became GELU layers"
    ]


@pytest.mark.parametrize(
    ("graph", "problem"),
    [
        pytest.param(
            lambda: _written_out_gelu(half=0.25), "not the previous layer's output", id="other-constant"
        ),
        pytest.param(
            lambda: _written_out_gelu(extra_reader=True), "not the previous layer's output", id="read-again"
        ),
    ],
)
def test_arithmetic_that_only_resembles_a_gelu_is_not_fused(graph: Callable[[], bytes], problem: str) -> None:
    assert problem in _refused(graph())


def test_a_transpose_that_moves_the_batch_axis_is_refused() -> None:
    graph = GraphBuilder([4, 6])
    graph.add("Transpose", perm=[1, 0])
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)
    assert "perm [1, 0] moves the batch axis" in _refused(graph.bytes([6, 3]))


def test_same_padding_that_would_pad_unequally_is_refused() -> None:
    # Given a stride-2 convolution on 8x8 inputs, where "same" needs one row more at the bottom
    graph = GraphBuilder(["batch", 1, 8, 8])
    graph.add("Conv", graph.weight("w", (2, 1, 3, 3)), strides=[2, 2], auto_pad="SAME_UPPER")
    graph.add("Flatten")
    model = graph.model(["batch", "features"])

    # Then it is refused with what would import instead
    assert "pads unequally here (kernel 3, stride 2)" in _refused(model.SerializeToString())


def test_a_softmax_before_the_last_layer_is_refused() -> None:
    graph = GraphBuilder(["batch", 4])
    graph.add("Softmax", axis=-1)
    graph.add("Gemm", graph.weight("w", (3, 4)), transB=1)
    assert "only as the final node" in _refused(graph.bytes(["batch", 3]))


def test_an_output_that_is_not_one_score_per_class_is_refused() -> None:
    graph = GraphBuilder(["batch", 1, 4, 4])
    graph.add("Relu")
    assert "a classifier outputs [batch, classes]" in _refused(graph.bytes(["batch", 1, 4, 4]))


def test_two_inputs_are_refused() -> None:
    graph = GraphBuilder(["batch", 4])
    graph.add("Relu")
    model = graph.model(["batch", 4])
    model.graph.input.append(helper.make_tensor_value_info("second", TensorProto.FLOAT, ["batch", 4]))
    assert "2 inputs and 1 outputs" in _refused(model.SerializeToString())


def test_the_converted_weights_are_float32_and_named_as_the_spec_builds_them() -> None:
    converted = convert(cnn())
    module = parse_architecture(converted.architecture).build()
    expected = {name for name, t in module.state_dict().items() if t.dtype == torch.float32}
    assert set(converted.weights) == expected
    assert {array.dtype for array in converted.weights.values()} == {np.dtype(np.float32)}
