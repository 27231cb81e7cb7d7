"""White-box attacks on a batch, every row with its own epsilon.

Rows are (sample, epsilon) pairs, so one pass attacks a whole epsilon grid:
``eps`` is a ``[R]`` tensor. Inputs live in [0, 1] and every iterate is
projected back onto the intersection of the epsilon-ball and [0, 1].

Gradients are taken with ``torch.autograd.grad`` on the input alone (the
caller freezes the parameters, see ``engine.attack_mode``), and every update is
in place on one buffer: a PGD step costs one forward, one input backward and
a few elementwise passes over the input, which is what the benchmark holds
it to. Non-finite gradient entries are zeroed so a broken model cannot push
an iterate out of the ball; they are counted in ``GradientStats`` first.

Loss: cross-entropy summed over rows, so each row's gradient is its own
(a mean would scale it by the batch size; sign and L2-normalised steps do
not care, but the zero-gradient test would).

``ATTACKS`` at the end is the registry: each attack is declared once there, and
the spec, the engine, the work budget and the API read it from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import torch
from torch import nn
from torch.nn import functional

# APGD-CE constants from Croce & Hein (2020), section 3.2.
_APGD_MOMENTUM = 0.75
_APGD_RHO = 0.75
_APGD_FIRST_CHECKPOINT = 0.22
_APGD_MIN_INTERVAL = 0.06
_APGD_INTERVAL_DECREASE = 0.03


@dataclass
class GradientStats:
    """How many attacked rows had an all-zero or a non-finite input gradient at their start point."""

    rows: int = 0
    zero: int = 0
    non_finite: int = 0

    def record(self, grad: torch.Tensor) -> None:
        flat = grad.flatten(1)
        self.rows += len(flat)
        self.non_finite += int((~torch.isfinite(flat)).any(dim=1).sum())
        self.zero += int((flat == 0).all(dim=1).sum())


@dataclass
class AttackSettings:
    steps: int
    relative_step: float  # alpha = relative_step * eps
    random_start: bool
    generator: torch.Generator
    stats: GradientStats = field(default_factory=GradientStats)


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row ``[R]`` tensor shaped to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, stats: GradientStats | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of each row's cross-entropy w.r.t. ``x``, the logits and the rows' losses."""
    x.requires_grad_(True)
    logits = model(x)
    losses = functional.cross_entropy(logits, y, reduction="none")
    (grad,) = torch.autograd.grad(losses.sum(), x)
    x.requires_grad_(False)
    if stats is not None:
        stats.record(grad)
    return grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0), logits.detach(), losses.detach()


def _box(x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The L∞ ball around ``x`` intersected with [0, 1], as elementwise bounds."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """One signed-gradient step of size eps (Goodfellow et al. 2015)."""
    grad, _, _ = input_gradient(model, x, y, settings.stats)
    return grad.sign_().mul_(_rows(eps, x)).add_(x).clamp_(0.0, 1.0)


def pgd_linf(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """Projected gradient ascent in L∞ (Madry et al. 2018); returns the last iterate."""
    e = _rows(eps, x)
    low, high = _box(x, e)
    alpha = e * settings.relative_step
    adv = x.clone()
    if settings.random_start:
        noise = torch.empty_like(x).uniform_(-1.0, 1.0, generator=settings.generator)
        adv.addcmul_(noise, e).clamp_(low, high)
    for step in range(settings.steps):
        grad, _, _ = input_gradient(model, adv, y, settings.stats if step == 0 else None)
        adv.addcmul_(grad.sign_(), alpha).clamp_(low, high)
    return adv


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    return _rows(torch.linalg.vector_norm(t.flatten(1), dim=1), t)


def _project_l2(adv: torch.Tensor, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    delta = adv.sub_(x)
    delta.mul_((e / _l2_norms(delta).clamp_(min=1e-12)).clamp_(max=1.0))
    return delta.add_(x).clamp_(0.0, 1.0)


def pgd_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """Projected gradient ascent in L2 with normalised steps; returns the last iterate.

    The random start is a uniformly random direction at a radius drawn uniformly in [0, eps].
    """
    e = _rows(eps, x)
    alpha = e * settings.relative_step
    adv = x.clone()
    if settings.random_start:
        direction = torch.randn(x.shape, generator=settings.generator, device=x.device, dtype=x.dtype)
        radius = torch.rand(len(x), generator=settings.generator, device=x.device, dtype=x.dtype)
        direction.mul_(_rows(radius, x) * e / _l2_norms(direction).clamp_(min=1e-12))
        adv = _project_l2(adv.add_(direction), x, e)
    for step in range(settings.steps):
        grad, _, _ = input_gradient(model, adv, y, settings.stats if step == 0 else None)
        adv.addcmul_(grad, alpha / _l2_norms(grad).clamp_(min=1e-12))
        adv = _project_l2(adv, x, e)
    return adv


def _apgd_checkpoints(steps: int) -> set[int]:
    """Iterations after which APGD may halve a row's step: p0 = 0, p1 = 0.22, then shrinking gaps."""
    points, previous, current = set(), 0.0, _APGD_FIRST_CHECKPOINT
    while current <= 1.0:
        points.add(max(1, round(current * steps)))
        previous, current = (
            current,
            current + max(current - previous - _APGD_INTERVAL_DECREASE, _APGD_MIN_INTERVAL),
        )
    return points


def apgd_ce(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
) -> torch.Tensor:
    """APGD with cross-entropy in L∞ (Croce & Hein 2020, Algorithm 1).

    Step size starts at 2·eps per row; each step mixes the projected signed step
    with the previous move (momentum 0.75). At each checkpoint a row halves its
    step and restarts from its best point if its loss rose in fewer than 75% of
    the steps since the last checkpoint, or if its step was not halved last time
    and its best loss has not improved since. Returns, per row, the first
    misclassifying iterate found, else the highest-loss one.
    """
    e = _rows(eps, x)
    low, high = _box(x, e)
    step = 2.0 * e
    adv = x.clone()
    if settings.random_start:
        noise = torch.empty_like(x).uniform_(-1.0, 1.0, generator=settings.generator)
        adv.addcmul_(noise, e).clamp_(low, high)
    grad, logits, loss = input_gradient(model, adv, y, settings.stats)
    best, best_loss, best_grad = adv.clone(), loss.clone(), grad.clone()
    found, broken = adv.clone(), logits.argmax(dim=1) != y
    checkpoints = _apgd_checkpoints(settings.steps)
    increases = torch.zeros(len(x), device=x.device)
    best_at_checkpoint, halved = best_loss.clone(), torch.zeros_like(broken)
    previous, since_checkpoint = adv.clone(), 0
    for iteration in range(settings.steps):
        momentum = _APGD_MOMENTUM if iteration > 0 else 1.0
        z = (adv + step * grad.sign_()).clamp_(low, high)
        moved = adv - previous
        previous.copy_(adv)
        adv.add_(z.sub_(adv), alpha=momentum).add_(moved, alpha=1.0 - momentum).clamp_(low, high)
        last_loss = loss
        grad, logits, loss = input_gradient(model, adv, y)
        wrong = logits.argmax(dim=1) != y
        found[wrong & ~broken] = adv[wrong & ~broken]
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
            stalled = increases < _APGD_RHO * since_checkpoint
            stalled |= ~halved & (best_loss <= best_at_checkpoint)
            step[stalled] /= 2.0
            adv[stalled], grad[stalled] = best[stalled], best_grad[stalled]
            halved, best_at_checkpoint = stalled, best_loss.clone()
            increases.zero_()
            since_checkpoint = 0
    return torch.where(_rows(broken, x), found, best)


Norm = Literal["linf", "l2"]
AttackFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, AttackSettings], torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """One attack as the platform offers it: all that the spec, the engine, the budget and the API read.

    ``run`` takes the model, the rows, their labels, each row's epsilon and the settings, and returns
    the adversarial rows. An attack that does not iterate takes one input gradient per row and
    ignores ``steps``, ``restarts`` and ``random_start``; one that does takes ``steps`` of them per run.
    """

    name: str  # what a spec lists and the report's curves are keyed by
    label: str  # what people read: in the flags and on the website's form
    norm: Norm
    iterates: bool
    run: AttackFunction
    summary: str  # what it does, in one line, published with the API's schema


def attack_registry(*attacks: Attack) -> Mapping[str, Attack]:
    """The attacks by name, in the order given: the spec's default and the API's enum keep it."""
    repeated = sorted(name for name, count in Counter(a.name for a in attacks).items() if count > 1)
    if repeated:
        raise ValueError(f"each attack name may be registered once; repeated: {', '.join(repeated)}")
    return MappingProxyType({attack.name: attack for attack in attacks})


ATTACKS = attack_registry(
    Attack(
        name="fgsm",
        label="FGSM",
        norm="linf",
        iterates=False,
        run=fgsm,
        summary="one signed gradient step: fast, and a check on the others",
    ),
    Attack(
        name="pgd_linf",
        label="PGD",
        norm="linf",
        iterates=True,
        run=pgd_linf,
        summary="projected gradient descent, the standard L∞ attack",
    ),
    Attack(
        name="pgd_l2",
        label="PGD L2",
        norm="l2",
        iterates=True,
        run=pgd_l2,
        summary="projected gradient descent inside an L2 ball",
    ),
    Attack(
        name="apgd_ce",
        label="APGD-CE",
        norm="linf",
        iterates=True,
        run=apgd_ce,
        summary="auto-PGD with a step size that adapts itself",
    ),
)

# The attack the minimal-perturbation search runs, once per bisection round. The search brackets each
# sample's boundary between points of the L∞ grid, so this has to be an iterating L∞ attack.
SEARCH_ATTACK = ATTACKS["pgd_linf"]
