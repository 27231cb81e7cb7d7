"""ONNX graphs translated into the platform's own model format.

An ONNX file is a protobuf: reading it runs no code, but a crafted one can still
ask a parser for unbounded memory or time, so this runs only inside the limited
child process of :mod:`cohort.onnx_import.sandbox`. It uses onnx and numpy,
never torch, and produces plain data: layer documents for an
:class:`~cohort.domain.architecture.ArchitectureSpec` and float32 arrays named as
that spec's ``nn.Sequential`` names them. The parent validates both as it
validates any upload.

Only a single chain of allow-listed layers is accepted: each node reads the
previous node's output plus constants, and shape arithmetic on the way (see
:mod:`cohort.onnx_import.shapes`) is evaluated, not imported. Anything else is
refused with the node's name and op, and what to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Set
from dataclasses import dataclass

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper, shape_inference
from onnx.external_data_helper import uses_external_data

from cohort.domain.errors import InvalidInput
from cohort.onnx_import.patterns import fuse_written_out_gelus
from cohort.onnx_import.shapes import SHAPE_OPS, ShapeArithmetic, reshaped

SUPPORTED_OPS = (
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Tanh",
    "Sigmoid",
    "Gelu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceMax",
    "BatchNormalization",
    "Flatten",
    "Reshape",
    "Transpose",
    "Dropout",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Constant",
    *sorted(SHAPE_OPS),  # over shapes only, as exporters write x.view(x.size(0), -1)
)
_ACTIVATIONS = {"Relu": "ReLU", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Gelu": "GELU"}
_FINAL_NORMALISERS = ("Softmax", "LogSoftmax")
_BIAS_WIDTHS = {"Linear": "out_features", "Conv2d": "out_channels", "ChannelAffine": "num_features"}
_GLOBAL_POOLS = {
    "GlobalAveragePool": "GlobalAvgPool2d",
    "ReduceMean": "GlobalAvgPool2d",
    "GlobalMaxPool": "GlobalMaxPool2d",
    "ReduceMax": "GlobalMaxPool2d",
}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
_SMALL_CONSTANT = 4096  # elements: shape vectors and scalars, whose values inference may need

Dims = list[int | None]  # None: a dimension of unknown size, such as the batch axis


@dataclass
class Converted:
    """A model in the platform's terms: a spec document, its weights, and what was changed."""

    input_shape: list[int]
    num_classes: int
    layers: list[dict]
    weights: dict[str, np.ndarray]  # named as the spec's nn.Sequential names its state
    notes: list[str]

    @property
    def architecture(self) -> dict:
        return {"input_shape": self.input_shape, "num_classes": self.num_classes, "layers": self.layers}


def convert(data: bytes) -> Converted:
    """Translate a serialized ONNX model, raising InvalidInput with the first problem found.

    The weights are held once at a time: as the file, then as the parsed model, then as arrays.
    """
    model = _parse(data)
    del data
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    skeleton = _skeleton(model)
    del model
    gelus = _fuse_gelus(skeleton, constants)
    converted = _Translation(skeleton, constants, _inferred_shapes(skeleton, gelus)).run()
    if gelus:
        converted.notes.append(
            f"{len(gelus)} GELU written out as arithmetic, as TensorFlow exports it, became GELU layers"
        )
    return converted


def _parse(data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"not a readable ONNX model (truncated or corrupt): {exc}") from None
    graph = model.graph
    if not graph.node:
        raise InvalidInput("not a readable ONNX model: the graph has no nodes")
    if model.functions or graph.sparse_initializer:
        raise InvalidInput("ONNX models with local functions or sparse initializers cannot be imported")
    for tensor in graph.initializer:
        if uses_external_data(tensor):
            # External data names a file path to read: never followed.
            raise InvalidInput(
                f"initializer '{tensor.name}' keeps its data in an external file; "
                "save the model with all tensors inside it (onnx.save(..., save_as_external_data=False))"
            )
    return model


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its weights: each large initializer becomes a typed input.

    Small initializers (shape vectors, scalars) stay, since shape inference may need their values.
    """
    graph = model.graph
    declared = {value.name for value in graph.input}
    small, weights = [], []
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= _SMALL_CONSTANT:
            small.append(tensor)
        elif tensor.name not in declared:
            weights.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return helper.make_model(
        helper.make_graph(graph.node, graph.name, [*graph.input, *weights], graph.output, small),
        opset_imports=model.opset_import,
        ir_version=model.ir_version,
    )


def _fuse_gelus(skeleton: onnx.ModelProto, constants: dict[str, np.ndarray]) -> set[str]:
    """Fuses written-out GELUs into Gelu nodes, in place; returns their outputs' names."""
    graph = skeleton.graph
    values = dict(constants)
    for node in graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    nodes, fused = fuse_written_out_gelus(list(graph.node), values)
    if fused:
        del graph.node[:]
        graph.node.extend(nodes)
    return fused


def _inferred_shapes(model: onnx.ModelProto, shape_preserving: Set[str] = frozenset()) -> dict[str, Dims]:
    """Every value's shape, by ONNX shape inference in strict mode.

    The nodes that output ``shape_preserving`` are inferred as Identity: fused GELUs, which ONNX
    defines only from opset 20 on, whatever opset the rest of the graph is in.
    """
    if shape_preserving:
        model = _with_identities(model, shape_preserving)
    try:
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True).graph
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"the ONNX graph is inconsistent: {first_line}") from None
    return {
        value.name: _shape_of(value) for value in (*inferred.input, *inferred.value_info, *inferred.output)
    }


def _with_identities(model: onnx.ModelProto, outputs: Set[str]) -> onnx.ModelProto:
    """A copy of the weight-free model with the nodes that write ``outputs`` made Identity."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.output[0] in outputs:
            node.op_type = "Identity"
            del node.input[1:]
            del node.attribute[:]
    return copy


def _reshape_as_layer(batch: int, features: list[int], result: list[int]) -> tuple[str, tuple] | None:
    """What reshaping ``[batch, *features]`` to ``result`` is as a spec layer, if it is one.

    A reshape keeps the data's order, so it is a Flatten if it leaves ``[batch, features]``, and a
    Permute if it only moves axes of size 1 (the others keep their order): [8, 8, 1] to [1, 8, 8]
    is how exporters turn a one-channel channels-last image channels-first.
    """
    if result[:1] != [batch]:
        return None
    shape = result[1:]
    if shape == [math.prod(features)]:
        return ("Flatten", ())
    if len(shape) != len(features) or [s for s in shape if s != 1] != [s for s in features if s != 1]:
        return None
    units = iter([axis for axis, size in enumerate(features, start=1) if size == 1])
    others = iter([axis for axis, size in enumerate(features, start=1) if size != 1])
    return ("Permute", tuple(next(units if size == 1 else others) for size in shape))


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _shape_of(value: onnx.ValueInfoProto) -> Dims:
    dims = value.type.tensor_type.shape.dim
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in dims]


class _Translation:
    """One walk down the chain of nodes, emitting one spec layer per weighted or activation node."""

    def __init__(
        self, skeleton: onnx.ModelProto, constants: dict[str, np.ndarray], shapes: dict[str, Dims]
    ) -> None:
        self._graph = skeleton.graph
        self._constants = constants
        self._converted_dtypes = {
            array.dtype.name for array in constants.values() if array.dtype in (np.float64, np.float16)
        }
        self._shapes = shapes
        self._handlers: dict[str, Callable[[onnx.NodeProto, dict], None]] = {
            "Conv": self._conv,
            "Gemm": self._gemm,
            "MatMul": self._matmul,
            "Add": self._shift,
            "Sub": self._shift,
            "Mul": self._scale,
            "Div": self._scale,
            "MaxPool": self._pool,
            "AveragePool": self._pool,
            "GlobalAveragePool": self._global_pool,
            "GlobalMaxPool": self._global_pool,
            "ReduceMean": self._reduce,
            "ReduceMax": self._reduce,
            "Squeeze": self._squeeze,
            "BatchNormalization": self._batch_norm,
            "Flatten": self._flatten,
            "Reshape": self._reshape,
            "Transpose": self._transpose,
            "Dropout": self._dropout,
            "Identity": lambda node, attrs: None,
        }
        self._layers: list[dict] = []
        self._weights: dict[str, np.ndarray] = {}
        self._notes: list[str] = []

    # -- the walk -----------------------------------------------------------------
    def run(self) -> Converted:
        current, batch, input_shape = self._input()
        chain = {current}  # the data tensors so far, one per layer
        # Shape arithmetic is checked at two batch sizes, or at the only one a fixed batch axis allows.
        self._shape_arithmetic = ShapeArithmetic((batch,) if batch else (2, 3))
        nodes = list(self._graph.node)
        last_layer = max(
            (i for i, n in enumerate(nodes) if n.op_type != "Constant" and n.op_type not in SHAPE_OPS),
            default=-1,
        )
        for position, node in enumerate(nodes):
            if node.op_type == "Constant":
                self._constants[node.output[0]] = self._constant_node(node)
                continue
            if node.op_type == "Cast" and all(name in self._constants for name in node.input):
                self._constants[node.output[0]] = self._cast(node)  # as fp16 and fp64 weights are stored
                continue
            if self._shape_arithmetic.takes(node, chain, self._constants):
                source = node.input[0] if node.op_type == "Shape" else current
                self._shape_arithmetic.evaluate(node, self._features(source), self._constants)
                continue
            data_inputs = [
                name
                for name in node.input
                if name and name not in self._constants and name not in self._shape_arithmetic
            ]
            if data_inputs != [current]:
                raise InvalidInput(
                    f"node '{node.name or position}' ({node.op_type}) reads "
                    f"{data_inputs or 'only constants'}, "
                    f"not the previous layer's output '{current}': only a single chain of layers "
                    "can be imported (no branches or skip connections)"
                )
            self._current = current
            self._translate(node, last=position == last_layer)
            current = node.output[0]
            chain.add(current)
        if current != self._graph.output[0].name:
            raise InvalidInput("the graph's output is not the end of its chain of layers")
        output_shape = self._shapes.get(current) or []
        if len(output_shape) != 2 or not output_shape[1] or output_shape[1] < 2:
            raise InvalidInput(
                f"the model's output has shape {output_shape}; a classifier outputs [batch, classes]"
            )
        for dtype in sorted(self._converted_dtypes):
            self._notes.append(f"{dtype} weights were converted to float32")
        return Converted(input_shape, int(output_shape[1]), self._layers, self._weights, self._notes)

    def _input(self) -> tuple[str, int | None, list[int]]:
        """The input's name, its batch size if fixed, and its other dimensions."""
        inputs = [value for value in self._graph.input if value.name not in self._constants]
        outputs = list(self._graph.output)
        if len(inputs) != 1 or len(outputs) != 1:
            raise InvalidInput(
                f"the model has {len(inputs)} inputs and {len(outputs)} outputs; a classifier has one of each"
            )
        value = inputs[0]
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise InvalidInput(f"the input '{value.name}' must be float32")
        shape = _shape_of(value)
        if not 2 <= len(shape) <= 4:
            raise InvalidInput(f"the input '{value.name}' has rank {len(shape)}; Cohort takes ranks 2 to 4")
        features = shape[1:]
        if any(size is None or size < 1 for size in features):
            raise InvalidInput(
                f"the input '{value.name}' has shape {shape}: every dimension but the batch must be fixed"
            )
        return value.name, shape[0], [int(size) for size in features]

    def _translate(self, node: onnx.NodeProto, *, last: bool) -> None:
        attrs = _attributes(node)
        if node.op_type in _ACTIVATIONS:
            if node.op_type == "Gelu" and attrs.get("approximate", b"none") not in (b"none", "none"):
                raise InvalidInput(
                    f"node '{node.name}': only the exact GELU (approximate='none') is supported"
                )
            self._emit({"type": _ACTIVATIONS[node.op_type]})
        elif node.op_type in _FINAL_NORMALISERS:
            if not last:
                raise InvalidInput(f"node '{node.name}' ({node.op_type}) is supported only as the final node")
            self._notes.append(
                f"the final {node.op_type} was dropped: Cohort's models output logits, "
                "and the predicted classes are unchanged"
            )
        elif node.op_type in self._handlers:
            self._handlers[node.op_type](node, attrs)
        else:
            raise InvalidInput(
                f"node '{node.name}' uses the {node.op_type} operator, which Cohort cannot import; "
                f"supported: {', '.join(SUPPORTED_OPS)}"
            )

    def _emit(self, layer: dict, **weights: np.ndarray) -> None:
        index = len(self._layers)
        self._layers.append(layer)
        for name, array in weights.items():
            self._weights[f"{index}.{name}"] = np.ascontiguousarray(array, dtype=np.float32)

    # -- values ------------------------------------------------------------------
    def _constant_node(self, node: onnx.NodeProto) -> np.ndarray:
        attrs = node.attribute
        if len(attrs) != 1 or attrs[0].name != "value":
            raise InvalidInput(f"Constant node '{node.name}' must hold a tensor 'value'")
        value = numpy_helper.to_array(attrs[0].t)
        if value.dtype in (np.float64, np.float16):
            self._converted_dtypes.add(value.dtype.name)
        return value

    def _cast(self, node: onnx.NodeProto) -> np.ndarray:
        target = _attributes(node).get("to")
        if target not in _FLOAT_TYPES:
            raise InvalidInput(f"Cast node '{node.name}' casts a constant to a non-float type")
        return self._constants[node.input[0]].astype(helper.tensor_dtype_to_np_dtype(target))

    def _constant(self, node: onnx.NodeProto, position: int, what: str) -> np.ndarray | None:
        """The node's constant input at ``position``, None if absent."""
        if len(node.input) <= position or not node.input[position]:
            return None
        if node.input[position] not in self._constants:
            raise InvalidInput(f"node '{node.name}' ({node.op_type}): its {what} must be a constant")
        value = self._constants[node.input[position]]  # float: shape inference checked the types
        if not np.isfinite(value).all():
            raise InvalidInput(f"node '{node.name}': the {what} holds NaN or infinite values")
        return value

    def _required(self, node: onnx.NodeProto, position: int, what: str) -> np.ndarray:
        value = self._constant(node, position, what)
        if value is None:
            raise InvalidInput(f"node '{node.name}' ({node.op_type}) has no {what}")
        return value

    def _input_shape(self) -> Dims:
        return self._shapes.get(self._current, [])

    def _features(self, name: str) -> list[int]:
        """A tensor's dimensions past the batch axis, which must be known."""
        features = self._shapes.get(name, [None])[1:]
        if any(size is None for size in features):
            raise InvalidInput(
                f"the shape of '{name}' cannot be inferred; export the model with a fixed input shape"
            )
        return [int(size) for size in features]

    # -- layers ------------------------------------------------------------------
    def _conv(self, node: onnx.NodeProto, attrs: dict) -> None:
        weight = self._required(node, 1, "weight")
        bias = self._constant(node, 2, "bias")
        if weight.ndim != 4:
            raise InvalidInput(f"node '{node.name}': only 2-D convolutions are supported")
        out_channels, in_channels, height, width = weight.shape
        self._require(node, attrs.get("group", 1) == 1, "grouped convolutions are not supported")
        self._require(node, height == width, "the kernel must be square")
        stride = self._uniform(node, attrs.get("strides", [1, 1]), "strides")
        self._require(
            node, list(attrs.get("dilations", [1, 1])) == [1, 1], "dilated kernels are not supported"
        )
        padding = self._padding(node, attrs, int(height), stride)
        layer = {
            "type": "Conv2d",
            "in_channels": int(in_channels),
            "out_channels": int(out_channels),
            "kernel_size": int(height),
            "stride": stride,
            "padding": padding,
            "bias": bias is not None,
        }
        if bias is None:
            self._emit(layer, weight=weight)
        else:
            self._emit(layer, weight=weight, bias=bias.reshape(out_channels))

    def _gemm(self, node: onnx.NodeProto, attrs: dict) -> None:
        self._require(node, attrs.get("transA", 0) == 0, "transA must be 0")
        weight = self._required(node, 1, "weight")
        self._require(node, weight.ndim == 2, "the weight must be a matrix")
        weight = weight if attrs.get("transB", 0) else weight.T  # torch keeps [out, in]
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        weight = weight if alpha == 1.0 else weight * alpha  # no copy of the weights unless scaled
        bias = self._constant(node, 2, "bias")
        if bias is not None:
            bias = np.broadcast_to(bias if beta == 1.0 else bias * beta, (weight.shape[0],))
        self._linear(node, weight, bias)

    def _matmul(self, node: onnx.NodeProto, _: dict) -> None:
        self._require(node, node.input[0] == self._current, "the layer input must be the left operand")
        weight = self._required(node, 1, "weight")
        self._require(node, weight.ndim == 2, "the weight must be a matrix")
        self._linear(node, weight.T, None)

    def _linear(self, node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None) -> None:
        self._require(node, len(self._input_shape()) == 2, "a fully connected layer takes [batch, features]")
        out_features, in_features = weight.shape
        layer = {
            "type": "Linear",
            "in_features": int(in_features),
            "out_features": int(out_features),
            "bias": bias is not None,
        }
        if bias is None:
            self._emit(layer, weight=weight)
        else:
            self._emit(layer, weight=weight, bias=bias)

    # -- arithmetic with a constant, one value per channel ---------------------------
    def _scale(self, node: onnx.NodeProto, _: dict) -> None:
        """``x * c`` or ``x / c``: a per-channel scale, as a folded BatchNormalization leaves behind."""
        data_first = node.input[0] == self._current
        self._require(node, data_first or node.op_type == "Mul", "only x / constant is supported")
        factor = self._per_channel(node, 1 if data_first else 0)
        if node.op_type == "Div":
            self._require(node, bool(np.all(factor != 0)), "it divides by zero")
            factor = 1.0 / factor
        self._emit({"type": "ChannelAffine", "num_features": factor.size, "bias": False}, weight=factor)

    def _shift(self, node: onnx.NodeProto, _: dict) -> None:
        """``x + c``, ``x - c`` or ``c - x``: the bias of the layer before it if that has none
        (how MatMul + Add exports a Linear layer), else a per-channel affine layer of its own."""
        data_first = node.input[0] == self._current
        shift = self._per_channel(node, 1 if data_first else 0)
        negated = node.op_type == "Sub" and not data_first  # c - x
        shift = -shift if node.op_type == "Sub" and data_first else shift
        previous = self._layers[-1] if self._layers else None
        width_field = _BIAS_WIDTHS.get(previous["type"]) if previous else None
        if not negated and width_field and not previous["bias"] and previous[width_field] == shift.size:
            previous["bias"] = True
            self._weights[f"{len(self._layers) - 1}.bias"] = np.ascontiguousarray(shift, dtype=np.float32)
        else:
            weight = np.full(shift.size, -1.0 if negated else 1.0, dtype=np.float32)
            self._emit({"type": "ChannelAffine", "num_features": shift.size}, weight=weight, bias=shift)

    def _per_channel(self, node: onnx.NodeProto, position: int) -> np.ndarray:
        """The constant operand as one value per channel (axis 1) of the current tensor."""
        value = self._required(node, position, "operand")
        features = self._features(self._current)
        rank = len(features) + 1
        padded = value.reshape((1,) * max(rank - value.ndim, 0) + value.shape)
        channels = features[0]
        self._require(
            node,
            padded.ndim == rank
            and padded.shape[0] == 1
            and padded.shape[1] in (1, channels)
            and all(size == 1 for size in padded.shape[2:]),
            f"its constant of shape {list(value.shape)} is not one value per channel of "
            f"[batch, {', '.join(map(str, features))}]",
        )
        return np.broadcast_to(padded.reshape(-1), (channels,))

    def _pool(self, node: onnx.NodeProto, attrs: dict) -> None:
        kernel = self._uniform(node, attrs.get("kernel_shape", []), "kernel_shape")
        stride = self._uniform(node, attrs.get("strides", [1, 1]), "strides")
        padding = self._padding(node, attrs, kernel, stride)
        self._require(node, padding == 0, "padded pooling is not supported")
        self._require(node, attrs.get("ceil_mode", 0) == 0, "ceil_mode must be 0")
        self._require(
            node, list(attrs.get("dilations", [1, 1])) == [1, 1], "dilated pooling is not supported"
        )
        kind = "MaxPool2d" if node.op_type == "MaxPool" else "AvgPool2d"
        self._emit({"type": kind, "kernel_size": kernel, "stride": stride})

    def _global_pool(self, node: onnx.NodeProto, _: dict) -> None:
        self._require(node, len(self._input_shape()) == 4, "only images [batch, C, H, W] can be pooled")
        self._emit({"type": _GLOBAL_POOLS[node.op_type]})

    def _reduce(self, node: onnx.NodeProto, attrs: dict) -> None:
        """A mean or max over an image's two spatial axes, channels first or last, is a global pool."""
        rank = len(self._input_shape())
        axes = attrs.get("axes")
        if axes is None:  # an input from opset 18 on
            axes = self._constant(node, 1, "axes")
        axes = sorted(int(axis) % rank for axis in np.atleast_1d(axes)) if axes is not None else []
        keep = bool(attrs.get("keepdims", 1))
        pool = {"type": _GLOBAL_POOLS[node.op_type]}
        if rank == 4 and axes == [2, 3]:
            self._emit(pool)
        elif rank == 4 and axes == [1, 2]:  # [batch, H, W, C], as Keras' global pooling exports
            self._emit({"type": "Permute", "dims": [3, 1, 2]})
            self._emit(pool)
            if keep:
                self._emit({"type": "Permute", "dims": [2, 3, 1]})
        else:
            raise InvalidInput(
                f"node '{node.name}' ({node.op_type}) reduces axes {axes or 'all'} of a rank-{rank} "
                "tensor; only the two spatial axes of an image, [2, 3] or channels-last [1, 2], are supported"
            )
        if not keep:
            self._emit({"type": "Flatten"})

    def _squeeze(self, node: onnx.NodeProto, _: dict) -> None:
        """Dropping the unit axes of a globally pooled image, to [batch, channels], is a Flatten."""
        output = self._shapes.get(node.output[0], [])
        self._require(
            node,
            len(self._input_shape()) > 2 and len(output) == 2 and output[0] == self._input_shape()[0],
            f"only a squeeze to [batch, features] is supported; this gives {output}",
        )
        self._emit({"type": "Flatten"})

    def _batch_norm(self, node: onnx.NodeProto, attrs: dict) -> None:
        self._require(node, attrs.get("training_mode", 0) == 0, "training_mode must be 0")
        self._require(
            node, len([o for o in node.output if o]) == 1, "running-statistics outputs are unsupported"
        )
        scale, bias = self._required(node, 1, "scale"), self._required(node, 2, "bias")
        mean, variance = self._required(node, 3, "mean"), self._required(node, 4, "variance")
        rank = len(self._input_shape())
        self._require(node, rank in (2, 3, 4), f"inputs of rank {rank} are not supported")
        layer = {
            "type": "BatchNorm2d" if rank == 4 else "BatchNorm1d",
            "num_features": int(scale.size),
            "eps": float(attrs.get("epsilon", 1e-5)),
        }
        self._emit(layer, weight=scale, bias=bias, running_mean=mean, running_var=variance)

    def _flatten(self, node: onnx.NodeProto, attrs: dict) -> None:
        self._require(node, attrs.get("axis", 1) == 1, "only Flatten(axis=1) keeps the batch axis apart")
        self._emit({"type": "Flatten"})

    def _reshape(self, node: onnx.NodeProto, attrs: dict) -> None:
        """A reshape that is the same layer at every batch size: a Flatten, or a Permute."""
        features = self._features(self._current)
        target_name = node.input[1]
        layers = set()
        for batch in self._shape_arithmetic.batch_sizes:
            target = (
                self._shape_arithmetic.at(target_name, batch)
                if target_name in self._shape_arithmetic
                else self._required(node, 1, "target shape")
            )
            result = reshaped(target, [batch, *features], allow_zero=bool(attrs.get("allowzero", 0)))
            layer = _reshape_as_layer(batch, features, result)
            if layer is None:
                raise InvalidInput(
                    f"node '{node.name}' (Reshape) turns [{batch}, {', '.join(map(str, features))}] into "
                    f"{result}; only flattening to [batch, features], or moving axes of size 1, is supported"
                )
            layers.add(layer)
        self._require(node, len(layers) == 1, "it reshapes differently at different batch sizes")
        kind, dims = layers.pop()
        if kind == "Flatten":
            self._emit({"type": "Flatten"})
        elif list(dims) != sorted(dims):
            self._emit({"type": "Permute", "dims": list(dims)})

    def _transpose(self, node: onnx.NodeProto, attrs: dict) -> None:
        """A transpose that keeps the batch axis first, as channels-last models begin and end, is Permute."""
        rank = len(self._input_shape())
        perm = [int(axis) for axis in attrs.get("perm", range(rank - 1, -1, -1))]
        self._require(node, perm[:1] == [0], f"perm {perm} moves the batch axis; it must stay first")
        if perm != list(range(rank)):
            self._emit({"type": "Permute", "dims": perm[1:]})

    def _dropout(self, node: onnx.NodeProto, attrs: dict) -> None:
        ratio = self._constant(node, 1, "ratio")
        p = float(ratio) if ratio is not None else float(attrs.get("ratio", 0.5))
        self._emit({"type": "Dropout", "p": p})

    # -- attribute checks --------------------------------------------------------
    def _require(self, node: onnx.NodeProto, condition: bool, problem: str) -> None:
        if not condition:
            raise InvalidInput(f"node '{node.name}' ({node.op_type}): {problem}")

    def _uniform(self, node: onnx.NodeProto, values: list, what: str) -> int:
        values = [int(v) for v in values]
        self._require(node, len(values) == 2 and values[0] == values[1], f"{what} must be two equal values")
        return values[0]

    def _padding(self, node: onnx.NodeProto, attrs: dict, kernel: int, stride: int) -> int:
        """The padding, equal on every side, that the node's ``pads`` or ``auto_pad`` amount to."""
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad == "VALID":
            return 0
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # As Keras' padding="same" exports: the output keeps ceil(size / stride) positions.
            totals = {
                max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                for size in self._features(self._current)[1:]
            }
            total = totals.pop()
            self._require(
                node,
                not totals and total % 2 == 0,
                f"auto_pad {auto_pad} pads unequally here (kernel {kernel}, stride {stride}); "
                "use an odd kernel with stride 1, or export with explicit equal pads",
            )
            return total // 2
        self._require(node, auto_pad == "NOTSET", f"auto_pad {auto_pad} is unsupported")
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        self._require(node, len(pads) == 4 and len(set(pads)) == 1, "pads must be equal on every side")
        return pads[0]
