"""Shared pieces of the protocol tests: a tiny model and a ready-made setting."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cohort.sdk import CohortClient

TINY_MLP = {
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "layers": [
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 64, "out_features": 32},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 32, "out_features": 10},
    ],
}


@dataclass
class Setting:
    scientist: CohortClient
    dataset_id: str
    api_key: str
    model_id: str
    initial_weights: dict[str, torch.Tensor]

    def start(self, **server_config: object) -> dict:
        client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 2, "momentum": 0.9}
        return self.scientist.start_training(self.model_id, self.dataset_id, client_config, server_config)
