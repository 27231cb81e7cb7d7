"""Operations that exporters write out as several nodes, fused back into the one node they are.

TensorFlow has no GELU kernel, so tf2onnx writes Keras' exact GELU as arithmetic that reads its
input twice: ``Mul(x, 0.5) · Erfc(Mul(Neg(x), 1/√2))``. Left as it is, that is a branch, which
the import refuses; fused, it is the one ``Gelu`` node it computes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper

_HALF, _RSQRT2 = 0.5, 1 / math.sqrt(2)


def fuse_written_out_gelus(
    nodes: list[onnx.NodeProto], constants: Mapping[str, np.ndarray]
) -> tuple[list[onnx.NodeProto], set[str]]:
    """The nodes with each written-out exact GELU replaced by a Gelu node, and those nodes' outputs."""
    producers = {name: node for node in nodes for name in node.output}
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            readers[name].append(node)
    dropped, fused = set(), {}
    for erfc in (node for node in nodes if node.op_type == "Erfc"):
        match = _gelu_around(erfc, producers, readers, constants)
        if match is not None:
            x, product, parts = match
            dropped.update(id(part) for part in parts)
            fused[id(product)] = helper.make_node("Gelu", [x], list(product.output), name=product.name)
    rewritten = [fused.get(id(node), node) for node in nodes if id(node) not in dropped]
    return rewritten, {node.output[0] for node in fused.values()}


def _gelu_around(
    erfc: onnx.NodeProto,
    producers: Mapping[str, onnx.NodeProto],
    readers: Mapping[str, list[onnx.NodeProto]],
    constants: Mapping[str, np.ndarray],
) -> tuple[str, onnx.NodeProto, list[onnx.NodeProto]] | None:
    """``(x, the final Mul, the other nodes)`` if ``erfc`` is the heart of 0.5·x·erfc(-x/√2)."""
    scaled = producers.get(erfc.input[0])
    negated = _binary_partner(scaled, "Mul", _RSQRT2, constants, producers, "Neg")
    if negated is None:
        return None
    x = negated.input[0]
    (product, *others) = readers.get(erfc.output[0], [None])
    if product is None or others or product.op_type != "Mul":
        return None
    halved = producers.get(next((name for name in product.input if name != erfc.output[0]), ""))
    if halved is None or halved.op_type != "Mul" or x not in halved.input:
        return None
    if not _is_scalar(next((name for name in halved.input if name != x), ""), _HALF, constants):
        return None
    parts = [halved, negated, scaled, erfc]
    # Each intermediate feeds only the next step, so nothing else needs what the fusion removes.
    if any(len(readers.get(part.output[0], [])) != 1 for part in parts):
        return None
    return x, product, parts


def _binary_partner(
    node: onnx.NodeProto | None,
    op_type: str,
    value: float,
    constants: Mapping[str, np.ndarray],
    producers: Mapping[str, onnx.NodeProto],
    partner_op: str,
) -> onnx.NodeProto | None:
    """The ``partner_op`` node that ``node`` (an ``op_type`` with a scalar ``value``) combines, if so."""
    if node is None or node.op_type != op_type or len(node.input) != 2:
        return None
    for mine, theirs in (node.input, reversed(node.input)):
        partner = producers.get(mine)
        if partner is not None and partner.op_type == partner_op and _is_scalar(theirs, value, constants):
            return partner
    return None


def _is_scalar(name: str, value: float, constants: Mapping[str, np.ndarray]) -> bool:
    array = constants.get(name)
    return array is not None and array.size == 1 and math.isclose(float(array.item()), value, rel_tol=1e-6)
