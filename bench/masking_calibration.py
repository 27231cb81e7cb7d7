"""Calibrate the saturated-loss check: how many samples each model saturates, trained and masked.

The check (``cohort.evaluation.checks``) counts the correctly classified samples whose input
gradient of the cross-entropy at the clean input is below ``GRADIENT_FLOOR``, or too small for the
loss, and fails above ``SATURATED_SHARE_TOLERANCE``. Its thresholds have to sit between what
ordinary trained models show and what masked ones do; this prints both, on 450 digits test images:

- trained: the tests' MLP, the same MLP trained on PGD adversarials, and the demo's small CNN trained
  as ``bench/robustness.py`` trains it (for 3 seconds, and 4 times as long, as a faster machine would);
- masked: the CNN with its logits scaled x3 (the issue's example), and, wrapping the trained MLP
  (``tests/unit/robustness_models.py``), logits scaled x3, x5, x10, a steep input quantiser with and
  without a faint smooth path, and one with exactly zero gradients.

Per model: clean accuracy; among correctly classified samples, the share with a cross-entropy of
exactly 0 in float32, with a gradient below the floor, with one too small for the loss, and the
check's share (the last two together); the median gradient norm; and whether the check fails.

Run: PYTHONPATH=. .venv/bin/python bench/masking_calibration.py
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from robustness import trained_model
from torch import nn

from cohort.evaluation.attacks import GradientStats
from cohort.evaluation.checks import (
    GRADIENT_FLOOR,
    SATURATED_SHARE_TOLERANCE,
    Evidence,
    run_checks,
    saturated,
    saturation,
)
from cohort.evaluation.engine import attack_mode
from tests.unit.robustness_models import (
    adversarially_trained_mlp,
    digits_test,
    saturating_quantiser,
    scaled_logits,
    trained_mlp,
    zero_gradient_quantiser,
)

SAMPLES = 450


def scaled(model: nn.Sequential, factor: float) -> nn.Sequential:
    with torch.no_grad():
        model[-1].weight.mul_(factor)
        model[-1].bias.mul_(factor)
    return model


def models() -> dict[str, Callable[[], nn.Module]]:
    return {
        "trained MLP": trained_mlp,
        "PGD-trained MLP (L∞ 0.1)": adversarially_trained_mlp,
        "demo CNN, 3 s": lambda: trained_model(3.0),
        "demo CNN, 12 s": lambda: trained_model(12.0),
        "demo CNN, 3 s, logits x3": lambda: scaled(trained_model(3.0), 3),
        "MLP, logits x3": lambda: scaled_logits(3),
        "MLP, logits x5": lambda: scaled_logits(5),
        "MLP, logits x10": lambda: scaled_logits(10),
        "steep quantiser": lambda: saturating_quantiser(faint=False),
        "steep quantiser, faint path": lambda: saturating_quantiser(faint=True),
        "zero-gradient quantiser": zero_gradient_quantiser,
    }


def row(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    with attack_mode(model):
        correct = model(x).argmax(dim=1) == y
        losses, norms = saturation(model, x[correct], y[correct])
    evidence = Evidence(losses, norms, x[0].numel(), GradientStats(), attacks=())
    tiny, too_small = saturated(evidence)
    (check,) = run_checks(evidence)
    total = len(losses)
    return [
        name,
        f"{float(correct.double().mean()):.1%}",
        f"{int((losses == 0).sum()) / total:.0%}",
        f"{int(tiny.sum()) / total:.0%}",
        f"{int(too_small.sum()) / total:.0%}",
        f"{int((tiny | too_small).sum()) / total:.0%}",
        f"{statistics.median(norms.tolist()):.1e}",
        "fails" if not check.passed else "passes",
    ]


def main() -> None:
    torch.set_num_threads(1)
    data = digits_test(SAMPLES)
    header = [
        "model",
        "clean accuracy",
        "loss 0",
        f"gradient < {GRADIENT_FLOOR:g}",
        "too small for loss",
        "saturated",
        "median gradient",
        f"check (> {SATURATED_SHARE_TOLERANCE:.0%})",
    ]
    rows = [row(name, build(), data.inputs, data.labels) for name, build in models().items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
