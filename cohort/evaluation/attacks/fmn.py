"""Fast Minimum-Norm attack (Pintor et al. 2021), targeted, its norm constraint capped at each row's budget.

FMN walks along the normalised gradient of a logit margin while adapting the radius of the ball it
projects onto: towards the first-order distance to the boundary until it finds an adversarial, then
shrinking it to look for a smaller one. Step length and radius factor follow cosine schedules (from
1 to 0.01, and from 0.05 to 0.001, the published defaults).

Three choices of ours:

- Targeted, towards each of the top runner-up classes in turn, as FAB-T is in AutoAttack: on the
  digits MLP at L∞ 0.1 the untargeted run leaves 5 points more robust accuracy than FAB-T does, the
  targeted one the same to within a point. It costs ``steps`` per target class.
- The radius never passes the row's epsilon: in an ensemble a row counts as broken only within its
  own budget, so the search spends its steps inside the ball that matters. The attack returns the
  smallest adversarial it found there, or the clean input if it found none.
- The distance to the boundary and the step use the gradient without the pixels that sit at 0 or 1
  and are pushed further out, which cannot move. The published rule counts them, so on images with
  many saturated pixels (the digits) it underestimates the distance and the radius stalls short of
  the boundary: at L2 epsilon 0.5 untargeted FMN with the published rule broke 7 of the 438 digits
  the MLP gets right, APGD-CE 247.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cohort.evaluation.attacks import base
from cohort.evaluation.attacks.base import (
    BALLS,
    AttackFunction,
    AttackSettings,
    GradientStats,
    Norm,
    margin,
    rows,
    unit_l2_,
)

_STEP_FIRST, _STEP_LAST = 1.0, 0.01
_RADIUS_FACTOR_FIRST, _RADIUS_FACTOR_LAST = 0.05, 0.001
# The norm of the perturbation, and the dual one the gradient is measured in to estimate the
# distance to the boundary.
_ORDERS: dict[Norm, tuple[float, float]] = {"linf": (math.inf, 1.0), "l2": (2.0, 2.0)}


def _cosine(first: float, last: float, step: int, steps: int) -> float:
    return last + (first - last) * (1 + math.cos(math.pi * step / steps)) / 2


def _run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    target: torch.Tensor,
    norm: Norm,
    steps: int,
    stats: GradientStats | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FMN run towards ``target``: per row the smallest misclassified iterate (any wrong class
    counts), else the clean input, and whether one was found."""
    order, dual = _ORDERS[norm]
    adv, best = x.clone(), x.clone()
    radius = eps.clone()
    best_norm = torch.full_like(eps, math.inf)
    found = torch.zeros_like(eps, dtype=torch.bool)
    for step in range(steps):
        step_length = _cosine(_STEP_FIRST, _STEP_LAST, step, steps)
        radius_factor = _cosine(_RADIUS_FACTOR_FIRST, _RADIUS_FACTOR_LAST, step, steps)
        grad, logits, target_margin = base.loss_gradient(
            model, adv, lambda z: margin(z, target), stats if step == 0 else None
        )
        distance = torch.linalg.vector_norm((adv - x).flatten(1), ord=order, dim=1)
        wrong = logits.argmax(dim=1) != y
        smaller = wrong & (distance < best_norm)
        best[smaller], best_norm[smaller] = adv[smaller], distance[smaller]
        found |= wrong
        grad[((adv <= 0.0) & (grad < 0)) | ((adv >= 1.0) & (grad > 0))] = 0.0
        # A linear model of the margin puts the boundary |margin| / ||grad||_dual away.
        grad_size = torch.linalg.vector_norm(grad.flatten(1), ord=dual, dim=1)
        to_boundary = torch.where(grad_size > 0, target_margin.abs() / grad_size, math.inf)
        radius = torch.where(
            wrong,
            torch.minimum(radius * (1 - radius_factor), best_norm),
            torch.where(found, radius * (1 + radius_factor), distance + to_boundary),
        ).minimum(eps)
        BALLS[norm](x, rows(radius, x)).project_(adv.add_(unit_l2_(grad), alpha=step_length))
    return torch.where(rows(found, x), best, x), found


def fmn(norm: Norm) -> AttackFunction:
    """FMN-T in ``norm``: ``settings.steps`` iterations towards each of the top ``target_classes``
    runner-up classes in turn, within each row's epsilon."""

    def towards(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        target: torch.Tensor,
        settings: AttackSettings,
        stats: GradientStats | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _run(model, x, y, eps, target, norm, settings.steps, stats)

    return base.toward_runner_ups(towards)
