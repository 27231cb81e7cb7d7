"""Auto-PGD (Croce & Hein 2020): PGD whose step size adapts itself, on three losses, in L∞ and L2.

One implementation serves APGD-CE, APGD-DLR and the targeted APGD-T. The step size starts at
2·eps per row; each step mixes the projected ascent step with the previous move (momentum 0.75).
At each checkpoint a row halves its step and restarts from its best point if its loss rose in at
most 75% of the steps since the last checkpoint, or if its step was not halved last time and its
best loss has not improved since. The checkpoints, the random start (a point on the ball's
surface) and these rules follow the reference code (fra31/auto-attack) step for step, with one
exception: in the first interval the reference counts the first step's loss as a rise when it is
above 0 (it compares it with an entry not yet written); here it is compared with the start's loss,
as the paper defines it. Its L2 steps are normalised as ``unit_l2_`` does, so a tiny gradient still
gets a full step where the reference's would barely move.

The DLR losses divide the logit margin by the spread of the top logits, so multiplying the logits
by any factor changes nothing: a model cannot look robust to them by saturating its softmax.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cohort.evaluation.attacks import base
from cohort.evaluation.attacks.base import (
    BALLS,
    AttackFunction,
    AttackSettings,
    GradientStats,
    Norm,
    Objective,
    rows,
    unit_l2_,
)

_MOMENTUM = 0.75
_RHO = 0.75  # the share of steps whose loss must rise for a row to keep its step size
_FIRST_CHECKPOINT = 0.22
_MIN_INTERVAL = 0.06
_INTERVAL_DECREASE = 0.03

# The per-row loss APGD ascends, built from the labels (and, for APGD-T, the target classes).
Loss = Callable[[torch.Tensor], Objective]


def apgd_checkpoints(steps: int) -> set[int]:
    """Iterations after which APGD may halve a row's step: 22% of the run, then shrinking intervals.

    As the reference counts them: intervals of whole iterations, the first 22% of the run, each next
    one 3% shorter, down to 6%.
    """
    interval = max(int(_FIRST_CHECKPOINT * steps), 1)
    shortest, decrease = max(int(_MIN_INTERVAL * steps), 1), max(int(_INTERVAL_DECREASE * steps), 1)
    points, current = set(), interval
    while current <= steps:
        points.add(current)
        interval = max(interval - decrease, shortest)
        current += interval
    return points


def _dlr_spread(sorted_logits: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The DLR denominator: the top logit minus the third (targeted: the mean of the third and fourth).

    With fewer classes than that the spread falls back to 1, a plain margin: with two classes the
    ratio would be a constant ±1 and have no gradient.
    """
    classes = sorted_logits.shape[1]
    if classes < 3:
        return torch.ones_like(sorted_logits[:, 0])
    lower = sorted_logits[:, 2]
    if targeted and classes >= 4:
        lower = (lower + sorted_logits[:, 3]) / 2
    return sorted_logits[:, 0] - lower + 1e-12


def dlr(y: torch.Tensor) -> Objective:
    """Difference of logits ratio: -(z_y - max_{i != y} z_i) / (z_1 - z_3), sorted logits z_1 >= z_2 >= ..."""

    def objective(logits: torch.Tensor) -> torch.Tensor:
        ordered = logits.sort(dim=1, descending=True).values
        return -base.margin(logits, y) / _dlr_spread(ordered, targeted=False)

    return objective


def targeted_dlr(y: torch.Tensor, target: torch.Tensor) -> Objective:
    """Targeted DLR: -(z_y - z_t) / (z_1 - (z_3 + z_4) / 2), rising as the target overtakes the label."""

    def objective(logits: torch.Tensor) -> torch.Tensor:
        ordered = logits.sort(dim=1, descending=True).values
        gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
        return -gap / _dlr_spread(ordered, targeted=True)

    return objective


def _start(x: torch.Tensor, eps: torch.Tensor, norm: Norm, settings: AttackSettings) -> torch.Tensor:
    """The clean point, or with a random start a random point at distance eps (on the ball's surface),
    clipped to [0, 1], as the reference draws it."""
    if not settings.random_start:
        return x.clone()
    generator = settings.generator
    if norm == "linf":
        noise = torch.empty_like(x).uniform_(-1.0, 1.0, generator=generator)
        noise.div_(rows(noise.flatten(1).abs().amax(dim=1), x))
    else:
        noise = unit_l2_(torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
    return noise.mul_(rows(eps, x)).add_(x).clamp_(0.0, 1.0)


def _run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    objective: Objective,
    norm: Norm,
    settings: AttackSettings,
    stats: GradientStats | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run of ``settings.steps`` iterations: per row, the first misclassifying iterate, else
    the highest-loss one, and whether the row was misclassified."""
    e = rows(eps, x)
    ball = BALLS[norm](x, e)
    step = 2.0 * e
    adv = _start(x, eps, norm, settings)
    grad, logits, loss = base.loss_gradient(model, adv, objective, stats)
    best, best_loss, best_grad = adv.clone(), loss.clone(), grad.clone()
    found, broken = adv.clone(), logits.argmax(dim=1) != y
    checkpoints = apgd_checkpoints(settings.steps)
    increases = torch.zeros_like(loss)
    # As in the reference, no row counts as halved before the first checkpoint, so the second rule
    # (no improvement since the last checkpoint) waits for it.
    best_at_checkpoint, halved = best_loss.clone(), torch.ones_like(broken)
    previous, since_checkpoint = adv.clone(), 0
    for iteration in range(settings.steps):
        momentum = _MOMENTUM if iteration > 0 else 1.0
        z = ball.project_(ball.ascent_(grad).mul_(step).add_(adv))
        moved = adv - previous
        previous.copy_(adv)
        ball.project_(adv.add_(z.sub_(adv), alpha=momentum).add_(moved, alpha=1.0 - momentum))
        last_loss = loss
        grad, logits, loss = base.loss_gradient(model, adv, objective)
        wrong = logits.argmax(dim=1) != y
        first = wrong & ~broken
        found[first] = adv[first]
        broken |= wrong
        increases += loss > last_loss
        improved = loss > best_loss
        best[improved], best_loss[improved], best_grad[improved] = (
            adv[improved],
            loss[improved],
            grad[improved],
        )
        since_checkpoint += 1
        if iteration + 1 in checkpoints:
            stalled = increases <= _RHO * since_checkpoint
            stalled |= ~halved & (best_loss <= best_at_checkpoint)
            step[stalled] /= 2.0
            adv[stalled], grad[stalled] = best[stalled], best_grad[stalled]
            halved, best_at_checkpoint = stalled, best_loss.clone()
            increases.zero_()
            since_checkpoint = 0
    return torch.where(rows(broken, x), found, best), broken


def apgd(norm: Norm, loss: Loss) -> AttackFunction:
    """Untargeted APGD on ``loss`` in ``norm``: one run of ``settings.steps`` iterations."""

    def attack(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
    ) -> torch.Tensor:
        adversarial, _ = _run(model, x, y, eps, loss(y), norm, settings, settings.stats)
        return adversarial

    return attack


def apgd_targeted(norm: Norm) -> AttackFunction:
    """APGD-T: targeted DLR towards each of the top ``target_classes`` runner-up classes in turn, each
    for ``steps`` iterations on the rows no earlier target broke."""

    def towards(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        target: torch.Tensor,
        settings: AttackSettings,
        stats: GradientStats | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _run(model, x, y, eps, targeted_dlr(y, target), norm, settings, stats)

    return base.toward_runner_ups(towards)
