"""Weighted FedAvg in streaming form.

Each accepted update is folded into one running sum as it arrives, so memory
stays at one model's worth however many devices report, and the update itself
can be dropped straight after.

The sum is float64, twice the bytes of the float32 model: a float32 sum
overflows to infinity on a single value near 3e38 (even weighted by a few
samples), and loses the small reports' digits next to a large one. In float64
the sum of float32 values times sample counts can neither overflow nor lose
them, so a report's weight can also be changed exactly after it was folded in
(see :meth:`StreamingFedAvg.reweigh`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from cohort.domain.weights import WEIGHT_DTYPE, Tensors, TensorSignature, contiguous_span

SUM_DTYPE = torch.float64
# float32 values are widened into a float64 buffer this many at a time (4 MiB), then added: torch
# would otherwise widen a whole update at once, into temporaries of four times the model's size
# (measured). Larger steps mean fewer parallel passes, which matters on a busy CPU.
_CHUNK = 1 << 19


class StreamingFedAvg:
    """Running ``sum(w_i * f_i * delta_i)`` and ``sum(w_i)`` over the reports of one round: ``w_i``
    is the report's weight, ``f_i`` the factor its update is scaled by (clipping, 1 if none).

    Updates must be finite (see :func:`cohort.federated.bounds.measure`): the fold is in
    place, so it cannot take back a non-finite value.
    """

    def __init__(self, signature: TensorSignature) -> None:
        # One flat buffer in name order, the order safetensors writes tensors in.
        self._order = sorted(signature.shapes)
        sizes = [math.prod(signature.shapes[name]) for name in self._order]
        self._flat_sum = torch.zeros(sum(sizes), dtype=SUM_DTYPE)
        self._weighted_sum = {
            name: part.view(signature.shapes[name])
            for name, part in zip(self._order, self._flat_sum.split(sizes), strict=True)
        }
        self._widened = torch.empty(min(_CHUNK, self._flat_sum.numel()), dtype=SUM_DTYPE)
        self.total_weight = 0.0
        self.reports = 0

    def add(self, delta: Mapping[str, torch.Tensor], weight: float, factor: float = 1.0) -> None:
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError("an update's weight (its sample count) must be positive")
        self._fold(delta, weight * factor)
        self.total_weight += weight
        self.reports += 1

    def reweigh(
        self, delta: Mapping[str, torch.Tensor], factor: float, old_weight: float, new_weight: float
    ) -> None:
        """Change the weight of an update added earlier with this factor, from ``old_weight``."""
        if not (new_weight > 0 and math.isfinite(new_weight)):
            raise ValueError("an update's weight must stay positive")
        self._fold(delta, (new_weight - old_weight) * factor)
        self.total_weight += new_weight - old_weight

    def _fold(self, delta: Mapping[str, torch.Tensor], alpha: float) -> None:
        span = contiguous_span(delta, self._order)
        if span is not None:
            self._add_widened(self._flat_sum, span, alpha)
        else:
            for name, running in self._weighted_sum.items():
                self._add_widened(running.view(-1), delta[name].reshape(-1), alpha)

    def _add_widened(self, running: torch.Tensor, values: torch.Tensor, alpha: float) -> None:
        """``running += alpha * values``, float32 values into a flat float64 sum, in place."""
        for into, part in zip(running.split(_CHUNK), values.split(_CHUNK), strict=True):
            into.add_(self._widened[: part.numel()].copy_(part), alpha=alpha)

    def apply_to(self, global_weights: Mapping[str, torch.Tensor]) -> Tensors:
        """The next global model, in float32: ``w + sum(w_i * f_i * delta_i) / sum(w_i)``."""
        if self.reports == 0:
            raise ValueError("no update has been added")
        scale = 1.0 / self.total_weight
        result = {}
        for name, running in self._weighted_sum.items():
            # In float64, rounded once into float32, a chunk at a time like the fold.
            result[name] = out = torch.empty_like(running, dtype=WEIGHT_DTYPE)
            chunks = (t.reshape(-1).split(_CHUNK) for t in (out, global_weights[name], running))
            for target, weights, summed in zip(*chunks, strict=True):
                target.copy_(self._widened[: weights.numel()].copy_(weights).add_(summed, alpha=scale))
        return result
