"""Weighted FedAvg in streaming form.

Each accepted update is folded into one running sum as it arrives, so memory
stays at one model's worth (three, in bytes) however many devices report, and
the update itself can be dropped straight after.

The sum has two levels. The total is float64: in it the sum of a round's
weighted float32 values can neither overflow nor lose a small report's digits
next to a large one, so a report's weight can be changed after it was folded in
(see :meth:`StreamingFedAvg.reweigh`). But widening each float32 update into
float64 before adding costs three to four float32 adds (torch has no fused
widening add), which made the node's report path about twice as slow as the
float32 fold it replaced. So each update is first added to a float32 partial
sum, at the cost of the old fold, and the partial is added to the float64 total
every ``flush_every`` reports and before the total is read; a heavy report goes
straight into the total (see ``HEAVY_WEIGHT``). The partial cannot
overflow, because what goes into it is bounded: see :class:`StreamingFedAvg`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from cohort.domain.weights import WEIGHT_DTYPE, Tensors, TensorSignature, contiguous_span

SUM_DTYPE = torch.float64
# The largest bounds a job may set (cohort/domain/training.py): max_update_norm, which bounds every
# value of an accepted update, since no value exceeds the L2 norm; and max_samples_per_report.
MAX_UPDATE_VALUE = 1e6
MAX_WEIGHT = 1e7
# Reports per float32 partial sum. Each adds at most MAX_WEIGHT x MAX_UPDATE_VALUE = 1e13 to a value,
# so the partial stays below 16 x 1e13 = 1.6e14, far from float32's 3.4e38. Measured on a
# 2,000,000-value model (bench/aggregation.py): a flush costs about four float32 adds, so 16 reports
# share one for about a quarter of an add each.
FLUSH_EVERY = 16
# A report whose weight times factor exceeds this is folded straight into the float64 total instead.
# In a float32 partial a report keeps its digits only to 2^-24 of the partial's largest values, and
# the reports the share cap lowers are mostly the heavy ones: folded in float64, taking their excess
# out leaves no float32 rounding of theirs next to the light reports. Within one partial the weights
# differ by at most 2^12, so a light report keeps all but 12 + 4 of its float32 digits there, and
# honest phones, with hundreds to a few thousand samples, stay on the fast path.
HEAVY_WEIGHT = 4096.0
# The partial is widened into float64 this many values at a time (512 KiB): a buffer that stays in
# cache, where torch would otherwise widen the whole partial into temporaries several times its size.
_CHUNK = 1 << 16


class StreamingFedAvg:
    """Running ``sum(w_i * f_i * delta_i)`` and ``sum(w_i)`` over the reports of one round: ``w_i``
    is the report's weight, ``f_i`` the factor its update is scaled by (clipping, 1 if none).

    What :meth:`add` folds must be bounded, so that the float32 partial cannot overflow: weights at
    most ``max_weight`` and factors at most 1 are checked here; every value of an update must be at
    most ``max_value`` in magnitude, which an update measured against the job's max_update_norm
    (:func:`cohort.federated.bounds.measure`, which also proves it finite) is. The fold is in place,
    so it cannot take back a non-finite value: one would make the aggregate non-finite.
    """

    def __init__(
        self,
        signature: TensorSignature,
        *,
        max_value: float = MAX_UPDATE_VALUE,
        max_weight: float = MAX_WEIGHT,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        # Whatever the bounds, flush_every reports must fit in float32 with room for rounding.
        if not 0 < flush_every * max_weight * max_value <= torch.finfo(torch.float32).max / 1e6:
            raise ValueError(
                f"{flush_every} reports of weight {max_weight:g} and values up to {max_value:g} could "
                "overflow the float32 partial sum: lower the bounds or flush_every"
            )
        self.max_value, self.max_weight, self.flush_every = max_value, max_weight, flush_every
        # Flat buffers in name order, the order safetensors writes tensors in.
        self._order = sorted(signature.shapes)
        self._sizes = [math.prod(signature.shapes[name]) for name in self._order]
        self._shapes = signature.shapes
        self._flat_sum = torch.zeros(sum(self._sizes), dtype=SUM_DTYPE)
        self._flat_partial = torch.zeros(sum(self._sizes), dtype=WEIGHT_DTYPE)
        self._widened = torch.empty(min(_CHUNK, self._flat_sum.numel()), dtype=SUM_DTYPE)
        self._pending = 0  # reports in the partial
        self.total_weight = 0.0
        self.reports = 0

    def add(self, delta: Mapping[str, torch.Tensor], weight: float, factor: float = 1.0) -> None:
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError("an update's weight (its sample count) must be positive")
        if weight > self.max_weight:
            raise ValueError(f"an update's weight must be at most {self.max_weight:g}, not {weight:g}")
        if not 0 < factor <= 1:
            raise ValueError(f"a clipping factor must lie in (0, 1], not {factor:g}")
        if weight * factor > HEAVY_WEIGHT:
            self._fold(self._flat_sum, delta, weight * factor)
        else:
            self._fold(self._flat_partial, delta, weight * factor)
            self._pending += 1
            if self._pending == self.flush_every:
                self._flush()
        self.total_weight += weight
        self.reports += 1

    def reweigh(
        self, delta: Mapping[str, torch.Tensor], factor: float, old_weight: float, new_weight: float
    ) -> None:
        """Change the weight of an update added earlier with this factor, from ``old_weight``.

        The change is folded straight into the float64 total, exact to float64 rounding: the
        update's earlier fold keeps only its float32 partial sum's rounding.
        """
        if not (new_weight > 0 and math.isfinite(new_weight)):
            raise ValueError("an update's weight must stay positive")
        self._fold(self._flat_sum, delta, (new_weight - old_weight) * factor)
        self.total_weight += new_weight - old_weight

    def _fold(self, flat: torch.Tensor, delta: Mapping[str, torch.Tensor], alpha: float) -> None:
        """``flat += alpha * delta``, into the float32 partial or the float64 total."""
        add = self._add_widened if flat.dtype == SUM_DTYPE else _add
        span = contiguous_span(delta, self._order)
        if span is not None:
            add(flat, span, alpha)
        else:
            for name, part in zip(self._order, flat.split(self._sizes), strict=True):
                add(part, delta[name].reshape(-1), alpha)

    def _flush(self) -> None:
        """Add the float32 partial to the float64 total, and empty it."""
        if self._pending:
            self._add_widened(self._flat_sum, self._flat_partial, 1.0)
            self._flat_partial.zero_()
            self._pending = 0

    def _add_widened(self, total: torch.Tensor, values: torch.Tensor, alpha: float) -> None:
        """``total += alpha * values``, float32 values into a flat float64 sum, in place."""
        for into, part in zip(total.split(_CHUNK), values.split(_CHUNK), strict=True):
            into.add_(self._widened[: part.numel()].copy_(part), alpha=alpha)

    def apply_to(self, global_weights: Mapping[str, torch.Tensor]) -> Tensors:
        """The next global model, in float32: ``w + sum(w_i * f_i * delta_i) / sum(w_i)``."""
        if self.reports == 0:
            raise ValueError("no update has been added")
        self._flush()
        scale = 1.0 / self.total_weight
        result = {}
        for name, total in zip(self._order, self._flat_sum.split(self._sizes), strict=True):
            # In float64, rounded once into float32, a chunk at a time like the flush.
            result[name] = out = torch.empty(self._shapes[name], dtype=WEIGHT_DTYPE)
            chunks = (t.reshape(-1).split(_CHUNK) for t in (out, global_weights[name], total))
            for target, weights, summed in zip(*chunks, strict=True):
                target.copy_(self._widened[: weights.numel()].copy_(weights).add_(summed, alpha=scale))
        return result


def _add(flat: torch.Tensor, values: torch.Tensor, alpha: float) -> None:
    flat.add_(values, alpha=alpha)
