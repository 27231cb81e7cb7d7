"""Shape arithmetic in ONNX graphs, such as ``x.view(x.size(0), -1)``, evaluated rather than run.

Exporters write a flatten that keeps the batch axis as ``Shape``, ``Gather``, ``Unsqueeze`` and
``Concat`` feeding a ``Reshape``. These nodes compute small integer vectors from shapes alone,
so they are evaluated here with numpy, once for each batch size the check uses; a ``Reshape``
is then a Flatten only if its target flattens every feature axis at every one of them.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping

import numpy as np
import onnx

from cohort.domain.errors import InvalidInput

SHAPE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast"})


class ShapeArithmetic:
    """The values a graph computes from tensor shapes, at each batch size of the check."""

    def __init__(self, batch_sizes: tuple[int, ...]) -> None:
        self.batch_sizes = batch_sizes
        self._values: dict[str, dict[int, np.ndarray]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def takes(self, node: onnx.NodeProto, chain: Container[str], constants: Mapping[str, np.ndarray]) -> bool:
        """Whether the node is shape arithmetic: the Shape of a tensor on the chain of layers (each
        keeps the batch axis first), or an op over such values."""
        if node.op_type not in SHAPE_OPS:
            return False
        if node.op_type == "Shape":
            return node.input[0] in chain
        names = [name for name in node.input if name]
        return any(name in self._values for name in names) and all(
            name in self._values or name in constants for name in names
        )

    def evaluate(
        self, node: onnx.NodeProto, features: list[int], constants: Mapping[str, np.ndarray]
    ) -> None:
        """The node's output at every batch size; ``features``: a Shape's tensor's shape past the batch."""
        try:
            self._values[node.output[0]] = {
                batch: np.asarray(self._apply(node, batch, features, constants)) for batch in self.batch_sizes
            }
        except (IndexError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"node '{node.name}' ({node.op_type}): its shape arithmetic fails: {exc}"
            ) from None

    def at(self, name: str, batch: int) -> np.ndarray:
        return self._values[name][batch]

    def _apply(
        self, node: onnx.NodeProto, batch: int, features: list[int], constants: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Shape":  # of a tensor on the chain, whose features are known
            return np.array([batch, *features], dtype=np.int64)[attrs.get("start", 0) : attrs.get("end")]
        arguments = [
            None if not name else self._values[name][batch] if name in self._values else constants[name]
            for name in node.input
        ]
        return _OPERATIONS[node.op_type](arguments, attrs)


def _axes(arguments: list, attrs: dict) -> tuple[int, ...] | None:
    """Unsqueeze's and Squeeze's axes: an input since opset 13, an attribute before."""
    axes = arguments[1] if len(arguments) > 1 and arguments[1] is not None else attrs.get("axes")
    return None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))


def _slice(
    data: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    axes: np.ndarray | None,
    steps: np.ndarray | None,
) -> np.ndarray:
    axes = range(len(starts)) if axes is None else axes
    steps = np.ones(len(starts), dtype=np.int64) if steps is None else steps
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(end), int(step))  # numpy clamps as ONNX does
    return data[tuple(index)]


def _argument(arguments: list, position: int) -> np.ndarray | None:
    return arguments[position] if position < len(arguments) else None


_OPERATIONS = {
    "Gather": lambda args, attrs: np.take(args[0], args[1], axis=attrs.get("axis", 0)),
    "Unsqueeze": lambda args, attrs: np.expand_dims(args[0], _axes(args, attrs)),
    "Squeeze": lambda args, attrs: np.squeeze(args[0], axis=_axes(args, attrs)),
    "Concat": lambda args, attrs: np.concatenate([np.atleast_1d(a) for a in args], axis=attrs.get("axis", 0)),
    "Slice": lambda args, _: _slice(*(_argument(args, i) for i in range(5))),
    "Cast": lambda args, attrs: args[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"])),
}


def reshaped(target: np.ndarray, shape: list[int], *, allow_zero: bool) -> list[int]:
    """What ``Reshape`` makes of ``shape`` for ``target``: 0 copies a dimension, -1 is inferred."""
    dims = [int(d) for d in np.atleast_1d(target)]
    if not allow_zero:
        dims = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(dims)]
    if dims.count(-1) == 1:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(shape) // known if known else 0
    return dims
