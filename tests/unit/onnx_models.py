"""ONNX graphs built node by node for the import tests, as other tools export them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# Models as other tools export them, with what their framework computes (export_*.py wrote them).
EXPORTS = Path(__file__).parents[1] / "fixtures" / "onnx_exports"


class GraphBuilder:
    """A chain of nodes from one float input; each ``add`` feeds the previous output onward."""

    def __init__(self, input_shape: list[int | str], seed: int = 0) -> None:
        self._random = np.random.default_rng(seed)
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)
        self.current = "input"

    def weight(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> str:
        values = (self._random.standard_normal(shape) * 0.3).astype(dtype)
        return self.constant(name, values)

    def constant(self, name: str, values: np.ndarray) -> str:
        self._initializers.append(numpy_helper.from_array(values, name))
        return name

    def add(self, op: str, *extra_inputs: str, data_position: int = 0, **attributes: object) -> str:
        name = f"{op.lower()}_{len(self._nodes)}"
        inputs = list(extra_inputs)
        inputs.insert(data_position, self.current)
        self._nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        self.current = name
        return name

    def node(self, node: onnx.NodeProto) -> None:
        self._nodes.append(node)

    def model(self, output_shape: list[int | str], *, checked: bool = True) -> onnx.ModelProto:
        """The graph as a model; ``checked=False`` for the non-standard ops some exporters write."""
        output = helper.make_tensor_value_info(self.current, TensorProto.FLOAT, output_shape)
        graph = helper.make_graph(self._nodes, "imported", [self.input], [output], self._initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        if checked:
            onnx.checker.check_model(model)
        return model

    def bytes(self, output_shape: list[int | str]) -> bytes:
        return self.model(output_shape).SerializeToString()


def mlp_with_softmax() -> bytes:
    """Flatten, Gemm (transB), ReLU, Gemm, Softmax: a typical exported MLP."""
    graph = GraphBuilder(["batch", 1, 8, 8])
    graph.add("Flatten", axis=1)
    graph.add("Gemm", graph.weight("fc1.w", (32, 64)), graph.weight("fc1.b", (32,)), transB=1)
    graph.add("Relu")
    graph.add("Gemm", graph.weight("fc2.w", (10, 32)), graph.weight("fc2.b", (10,)), transB=1)
    graph.add("Softmax", axis=-1)
    return graph.bytes(["batch", 10])


CNN_LAYERS = ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]  # what cnn() imports as


def cnn() -> bytes:
    """Conv (padded), BatchNorm (Keras' epsilon), ReLU, MaxPool, Flatten, MatMul + Add."""
    graph = GraphBuilder(["batch", 1, 8, 8], seed=1)
    graph.add("Conv", graph.weight("conv.w", (4, 1, 3, 3)), graph.weight("conv.b", (4,)), pads=[1, 1, 1, 1])
    variance = (np.random.default_rng(2).random(4) + 0.5).astype(np.float32)
    graph.add(
        "BatchNormalization",
        graph.weight("bn.scale", (4,)),
        graph.weight("bn.bias", (4,)),
        graph.weight("bn.mean", (4,)),
        graph.constant("bn.var", variance),
        epsilon=1e-3,
    )
    graph.add("Relu")
    graph.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    graph.add("Flatten", axis=1)
    graph.add("MatMul", graph.weight("fc.w", (64, 10)))
    graph.add("Add", graph.weight("fc.b", (10,)), data_position=1)  # bias first, as some exporters do
    return graph.bytes(["batch", 10])


CHANNELS_LAST_LAYERS = [  # what channels_last_cnn() imports as
    *("AxisPermutation", "Conv2d", "ReLU", "MaxPool2d", "AxisPermutation", "Flatten", "Linear")
]


def channels_last_cnn() -> bytes:
    """A Keras CNN as it exports: [batch, H, W, C] in, transposed to channels-first and back before
    its flatten, "same" padding as auto_pad, a constant reshape, MatMul + Add and a Softmax."""
    graph = GraphBuilder(["unk__0", 8, 8, 1], seed=4)
    graph.add("Transpose", perm=[0, 3, 1, 2])
    weight, bias = graph.weight("conv.w", (4, 1, 3, 3)), graph.weight("conv.b", (4,))
    graph.add("Conv", weight, bias, auto_pad="SAME_UPPER")
    graph.add("Relu")
    graph.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    graph.add("Transpose", perm=[0, 2, 3, 1])
    graph.add("Reshape", graph.constant("shape", np.array([-1, 64], dtype=np.int64)))
    graph.add("MatMul", graph.weight("fc.w", (64, 10)))
    graph.add("Add", graph.weight("fc.b", (10,)))
    graph.add("Softmax", axis=1)
    return graph.bytes(["unk__0", 10])


def reshaping_mlp() -> bytes:
    """AveragePool, Reshape to [batch, -1], Dropout, then a scaled Gemm without transB on float64 weights."""
    graph = GraphBuilder([1, 1, 8, 8], seed=3)
    graph.add("AveragePool", kernel_shape=[2, 2], strides=[2, 2])
    graph.add("Reshape", graph.constant("shape", np.array([1, -1], dtype=np.int64)))
    graph.add("Dropout", graph.constant("ratio", np.array(0.25, dtype=np.float32)))
    weight, bias = graph.weight("fc.w", (16, 10), np.float64), graph.weight("fc.b", (10,), np.float64)
    cast_weight, cast_bias = "fc.w32", "fc.b32"
    graph.node(helper.make_node("Cast", [weight], [cast_weight], to=TensorProto.FLOAT))
    graph.node(helper.make_node("Cast", [bias], [cast_bias], to=TensorProto.FLOAT))
    graph.add("Gemm", cast_weight, cast_bias, alpha=0.5, beta=2.0)
    graph.add("Tanh")
    return graph.bytes([1, 10])
