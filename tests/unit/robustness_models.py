"""Small digits classifiers for the robustness-evaluation tests, trained in about a second."""

from __future__ import annotations

from functools import cache

import torch
from torch import nn
from torch.nn import functional

from cohort.datasets import digits
from cohort.evaluation.data import EvaluationData, builtin_digits


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@cache
def _trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = _mlp()
    train, _ = digits.load()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            optimizer.zero_grad()
            functional.cross_entropy(model(train.inputs[batch]), train.labels[batch]).backward()
            optimizer.step()
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def trained_mlp() -> nn.Sequential:
    """A fresh copy each call (the engine moves and freezes the model it is given)."""
    model = _mlp()
    model.load_state_dict(_trained_state())
    return model.eval()


def digits_test(samples: int = 200) -> EvaluationData:
    return builtin_digits(list(digits.IMAGE_SHAPE), samples, seed=0)


class Quantised(nn.Module):
    """Rounds pixels to 4 levels before classifying: the rounding has a zero gradient everywhere."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class SquareRooted(nn.Module):
    """Takes the square root of each pixel first: its gradient is infinite at the many 0 pixels."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.sqrt(x))
