"""Small digits classifiers for the robustness-evaluation tests, trained in about a second.

Besides the plainly trained MLP there are models that hide their gradients: each wraps the trained
MLP, classifies clean digits as it does (or nearly), and is built only from layers an architecture
spec accepts, so the service must be able to see through every one of them.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn
from torch.nn import functional

from cohort.datasets import digits
from cohort.evaluation.attacks import ATTACKS, AttackSettings
from cohort.evaluation.data import EvaluationData, builtin_digits

# The adversarially trained MLP's budget: the digits' usual L∞ headline epsilon.
ADVERSARIAL_TRAINING_EPSILON = 0.1
ADVERSARIAL_TRAINING_STEPS = 7


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@cache
@torch.enable_grad()  # the first call may come from inside a no_grad block
def _trained_state(adversarial: bool) -> dict[str, torch.Tensor]:
    """The MLP trained for 20 epochs, on clean digits or on PGD adversarials of them (Madry et al.)."""
    torch.manual_seed(0)
    model = _mlp()
    train, _ = digits.load()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    attack = AttackSettings(
        steps=ADVERSARIAL_TRAINING_STEPS,
        relative_step=2.5 / ADVERSARIAL_TRAINING_STEPS,
        random_start=True,
        generator=torch.Generator().manual_seed(1),
    )
    for _ in range(20):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            x, y = train.inputs[batch], train.labels[batch]
            if adversarial:
                eps = torch.full((len(batch),), ADVERSARIAL_TRAINING_EPSILON)
                x = ATTACKS["pgd_linf"].run(model, x, y, eps, attack)
            optimizer.zero_grad()
            functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def trained_mlp() -> nn.Sequential:
    """A fresh copy each call (the engine moves and freezes the model it is given)."""
    model = _mlp()
    model.load_state_dict(_trained_state(adversarial=False))
    return model.eval()


def adversarially_trained_mlp() -> nn.Sequential:
    """The MLP trained on PGD adversarials at L∞ epsilon 0.1: less confident, and robust for real."""
    model = _mlp()
    model.load_state_dict(_trained_state(adversarial=True))
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


def scaled_logits(factor: float) -> nn.Sequential:
    """The trained MLP with its last layer multiplied by ``factor``: the same predictions, a saturated loss.

    Scaling the logits changes no prediction, so the model is exactly as robust as the trained MLP.
    But its softmax saturates: at x3, two thirds of the correctly classified digits have a
    cross-entropy of exactly 0 in float32 and nearly half an input gradient below 1e-8 (at x10, 96%
    and 94%), so attacks that follow the cross-entropy barely move and it looks more robust than it is.
    """
    model = trained_mlp()
    with torch.no_grad():
        model[-1].weight.mul_(factor)
        model[-1].bias.mul_(factor)
    return model


# Where the quantiser's steps sit: halfway between pixel values (multiples of 1/16), so no clean
# pixel lies closer than 1/32 to a step; levels 0, 0.25, ..., 1 as ``Quantised`` has them.
_THRESHOLDS = (5 / 32, 13 / 32, 21 / 32, 29 / 32)
_LEVEL = 0.25
# The staircase's slope at a pixel 1/32 from a step is 0.25 * s * sigmoid'(s / 32): 2e-5 at s = 500,
# and far less further away; it underflows to exactly 0 only above the last step, so a digit's
# gradient is tiny, yet rarely exactly zero.
_SATURATING_STEEPNESS = 500.0
# So steep that the slope underflows to exactly 0 unless a pixel is within about 1e-4 of a step.
_ZERO_GRADIENT_STEEPNESS = 1e6
# The faint smooth path's weight: it moves a pixel by less than 1e-3, too little to change a prediction,
# and it is negative, so its gradient points away from the steps the MLP is sensitive to.
_FAINT_WEIGHT = -1e-3


def _quantiser(steepness: float, faint: bool) -> nn.Sequential:
    """Each pixel rounded to 5 levels by a 1x1 convolution into steep sigmoids, then the trained MLP.

    Channel k of the first convolution is ``steepness * (x - threshold_k)``; the second sums the
    sigmoids at a level's weight each, so it outputs 0, 0.25, ..., 1: a staircase built from allowed
    layers. With ``faint``, one more channel is ``sigmoid(x - 0.5)`` at a weight of -1e-3.
    """
    steps = len(_THRESHOLDS)
    channels = steps + int(faint)
    spread, gather = nn.Conv2d(1, channels, 1), nn.Conv2d(channels, 1, 1, bias=False)
    with torch.no_grad():
        spread.weight.fill_(steepness)
        spread.bias.copy_(-steepness * torch.tensor(_THRESHOLDS + (0.5,) * int(faint)))
        gather.weight.fill_(_LEVEL)
        if faint:
            spread.weight[steps], spread.bias[steps] = 1.0, -0.5
            gather.weight[0, steps] = _FAINT_WEIGHT
    return nn.Sequential(spread, nn.Sigmoid(), gather, *trained_mlp()).eval()


def saturating_quantiser(faint: bool) -> nn.Sequential:
    """The trained MLP behind a steep staircase on each pixel: as accurate, with a vanishing gradient.

    It classifies clean digits as well as the MLP (97.3% of the test split; 7 of 450 predictions
    differ), but the staircase's slope at a clean pixel is at most 2e-5, so the input gradient is at
    least 50,000 times weaker than the MLP's: gradient attacks have almost nothing to follow, while a
    pixel moved across a step (by a gradient-free attack, or any large enough budget) changes what the
    MLP sees by a whole level. With ``faint``, a smooth channel at weight -1e-3 runs beside the
    staircase, so the gradient is never exactly zero (a check counting only exact zeros sees nothing):
    it is that channel's alone, 4,000 times weaker than the MLP's, and points the wrong way, so an
    attack following it moves pixels across the steps in the direction that makes the MLP surer.

    On 200 test digits, PGD-20 and APGD-CE together leave 68% robust at L∞ epsilon 0.1 (94% with the
    faint path; 76% at 0.3), where the APGD-CE adversarials of the plain MLP leave 42% (2% at 0.3).
    """
    return _quantiser(_SATURATING_STEEPNESS, faint)


def zero_gradient_quantiser() -> nn.Sequential:
    """The staircase so steep that the input gradient is exactly 0 at almost every input.

    The allowed-layer counterpart of ``Quantised``: the sigmoid's slope underflows to 0 unless a pixel
    lies within about 1e-4 of a step, so gradient attacks do not move at all: on 200 test digits they
    leave 99% robust at L∞ epsilon 0.1 and 96% at 0.3, where the plain MLP's adversarials leave 38% and
    3%.
    """
    return _quantiser(_ZERO_GRADIENT_STEEPNESS, faint=False)
