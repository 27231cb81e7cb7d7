"""FGSM and PGD: fixed steps along the cross-entropy's input gradient.

Goodfellow et al. 2015 (FGSM); Madry et al. 2018 (PGD).
"""

from __future__ import annotations

import torch
from torch import nn

from cohort.evaluation.attacks import base
from cohort.evaluation.attacks.base import AttackSettings, Effort, L2Ball, LinfBall, l2_norms, rows


def one_pass(effort: Effort) -> float:
    return 1.0


def per_step(effort: Effort) -> float:
    return float(effort.steps)


def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """One signed-gradient step of size eps."""
    grad, _, _ = base.input_gradient(model, x, y, settings.stats)
    return grad.sign_().mul_(rows(eps, x)).add_(x).clamp_(0.0, 1.0)


def pgd_linf(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """Projected signed-gradient ascent in L∞ with step ``relative_step * eps``; the last iterate.

    The random start is uniform in the ball.
    """
    e = rows(eps, x)
    ball = LinfBall(x, e)
    alpha = e * settings.relative_step
    adv = x.clone()
    if settings.random_start:
        noise = torch.empty_like(x).uniform_(-1.0, 1.0, generator=settings.generator)
        ball.project_(adv.addcmul_(noise, e))
    for step in range(settings.steps):
        grad, _, _ = base.input_gradient(model, adv, y, settings.stats if step == 0 else None)
        ball.project_(adv.addcmul_(ball.ascent_(grad), alpha))
    return adv


def pgd_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """Projected ascent in L2 with steps of length ``relative_step * eps``; the last iterate.

    Every non-zero gradient gives a full-length step, however small it is (see ``unit_l2_``). The
    random start is a uniformly random direction at a radius drawn uniformly in [0, eps].
    """
    e = rows(eps, x)
    ball = L2Ball(x, e)
    alpha = e * settings.relative_step
    adv = x.clone()
    if settings.random_start:
        direction = torch.randn(x.shape, generator=settings.generator, device=x.device, dtype=x.dtype)
        radius = torch.rand(len(x), generator=settings.generator, device=x.device, dtype=x.dtype)
        direction.mul_(rows(radius, x) * e / l2_norms(direction).clamp_(min=1e-12))
        ball.project_(adv.add_(direction))
    for step in range(settings.steps):
        grad, _, _ = base.input_gradient(model, adv, y, settings.stats if step == 0 else None)
        ball.project_(adv.addcmul_(ball.ascent_(grad), alpha))
    return adv
