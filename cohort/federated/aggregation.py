"""Weighted FedAvg in streaming form.

Each accepted update is folded into one running sum as it arrives, so memory
stays at one model's worth however many devices report, and the update itself
can be dropped straight after.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from cohort.domain.weights import WEIGHT_DTYPE, Tensors, TensorSignature, contiguous_span


class StreamingFedAvg:
    """Running ``sum(n_i * delta_i)`` and ``sum(n_i)`` over the reports of one round.

    Updates must have been validated by :func:`cohort.domain.weights.decode`:
    the fold is in place, so it cannot take back a non-finite value.
    """

    def __init__(self, signature: TensorSignature) -> None:
        # One flat buffer in name order, the order safetensors writes tensors in.
        self._order = sorted(signature.shapes)
        sizes = [math.prod(signature.shapes[name]) for name in self._order]
        self._flat_sum = torch.zeros(sum(sizes), dtype=WEIGHT_DTYPE)
        self._weighted_sum = {
            name: part.view(signature.shapes[name])
            for name, part in zip(self._order, self._flat_sum.split(sizes), strict=True)
        }
        self.total_weight = 0
        self.reports = 0

    def add(self, delta: Mapping[str, torch.Tensor], weight: int) -> None:
        if weight <= 0:
            raise ValueError("an update's weight (its sample count) must be positive")
        span = contiguous_span(delta, self._order)
        if span is not None:
            self._flat_sum.add_(span, alpha=weight)  # in place: no temporary copy
        else:
            for name, running in self._weighted_sum.items():
                running.add_(delta[name], alpha=weight)
        self.total_weight += weight
        self.reports += 1

    def apply_to(self, global_weights: Mapping[str, torch.Tensor]) -> Tensors:
        """The next global model: ``w + sum(n_i * delta_i) / sum(n_i)``."""
        if self.total_weight == 0:
            raise ValueError("no update has been added")
        scale = 1.0 / self.total_weight
        return {
            name: global_weights[name].add(running, alpha=scale)
            for name, running in self._weighted_sum.items()
        }
