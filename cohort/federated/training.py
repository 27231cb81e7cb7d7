"""Local training on a device, and evaluation on held-out data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from cohort.datasets.digits import Split
from cohort.domain.training import ClientConfig
from cohort.domain.weights import Tensors, load_into, trainable_state


@dataclass(frozen=True)
class LocalResult:
    delta: Tensors  # trained minus received
    num_samples: int
    loss: float  # mean training loss over the last local epoch
    accuracy: float  # training accuracy over the last local epoch


def train_locally(
    model: nn.Module, weights: Mapping[str, torch.Tensor], data: Split, config: ClientConfig, seed: int
) -> LocalResult:
    load_into(model, weights)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    generator = torch.Generator().manual_seed(seed)
    loss_sum, correct = 0.0, 0
    for _ in range(config.local_epochs):
        loss_sum, correct = 0.0, 0
        for batch in torch.randperm(len(data), generator=generator).split(config.batch_size):
            inputs, labels = data.inputs[batch], data.labels[batch]
            if len(batch) == 1 and _has_batch_norm(model):
                continue  # BatchNorm cannot train on a single sample
            optimizer.zero_grad(set_to_none=True)
            logits = model(inputs)
            loss = functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
            correct += int((logits.argmax(dim=1) == labels).sum())
    trained = trainable_state(model)
    delta = {name: trained[name] - weights[name] for name in weights}
    return LocalResult(delta, len(data), loss_sum / len(data), correct / len(data))


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def accuracy(model: nn.Module, data: Split) -> float:
    model.eval()
    predictions = model(data.inputs).argmax(dim=1)
    return float((predictions == data.labels).float().mean())
