"""Weighted FedAvg in streaming form.

Each accepted update is folded into one running sum as it arrives, so memory
stays at one model's worth however many devices report, and the update itself
can be dropped straight after.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cohort.domain.weights import Tensors, TensorSignature


class StreamingFedAvg:
    """Running ``sum(n_i * delta_i)`` and ``sum(n_i)`` over the reports of one round.

    Updates must have been validated by :func:`cohort.domain.weights.decode`:
    the fold is in place, so it cannot take back a non-finite value.
    """

    def __init__(self, signature: TensorSignature) -> None:
        self._weighted_sum = signature.zeros()
        self.total_weight = 0
        self.reports = 0

    def add(self, delta: Mapping[str, torch.Tensor], weight: int) -> None:
        if weight <= 0:
            raise ValueError("an update's weight (its sample count) must be positive")
        for name, running in self._weighted_sum.items():
            running.add_(delta[name], alpha=weight)  # in place: no temporary copy
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
