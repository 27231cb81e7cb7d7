"""What every attack shares: the registry's entry, the settings, input gradients and the balls.

Rows are (sample, epsilon) pairs, so one pass attacks a whole epsilon grid: ``eps`` is a ``[R]``
tensor. Inputs live in [0, 1] and every iterate is kept in the intersection of its row's
epsilon-ball and [0, 1].

Gradients are taken with ``torch.autograd.grad`` on the input alone (the caller freezes the
parameters, see ``engine.attack_mode``), and updates are in place on one buffer: a step costs one
forward, one input backward and a few elementwise passes over the input. Non-finite gradient
entries are zeroed so a broken model cannot push an iterate out of the ball; they are counted in
``GradientStats`` first.

Losses are per row and summed over the rows before the backward pass, so each row's gradient is its
own (a mean would scale it by the batch size; sign and L2-normalised steps do not care, but the
zero-gradient count would).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

import torch
from torch import nn
from torch.nn import functional

Norm = Literal["linf", "l2"]
# single_step: one gradient, no iterations (FGSM). gradient: iterated input gradients (PGD, APGD).
# minimal_norm: looks for the smallest adversarial perturbation and succeeds within the row's budget
# or not at all (FMN). gradient_free: forward passes only, so a model that hides its gradients cannot
# hide from it (Square).
Kind = Literal["single_step", "gradient", "minimal_norm", "gradient_free"]
# Per-row losses from logits, [R, classes] -> [R]; the attacks ascend them.
Objective = Callable[[torch.Tensor], torch.Tensor]


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
    steps: int  # iterations of an iterating attack (per target class for a targeted one)
    relative_step: float  # PGD's alpha = relative_step * eps; APGD, FMN and Square set their own steps
    random_start: bool
    generator: torch.Generator  # every random draw of an attack, so a seed reproduces its run
    stats: GradientStats = field(default_factory=GradientStats)
    target_classes: int = 9  # runner-up classes a targeted attack tries, one after another
    queries: int = 5000  # forward passes per row a gradient-free attack may make


class Effort(Protocol):
    """What an attack's cost depends on: both ``AttackSettings`` and ``EvaluationSpec`` have it."""

    @property
    def steps(self) -> int: ...

    @property
    def target_classes(self) -> int: ...

    @property
    def queries(self) -> int: ...


AttackFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, AttackSettings], torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """One attack as the platform offers it: all that the spec, the engine, the budget and the API read.

    ``run`` takes the model, the rows, their labels, each row's epsilon and the settings, and returns
    the adversarial rows. ``passes`` is its cost per row and run, in gradient passes (one forward and
    one input backward), for a given effort: the work budget and the progress are built from it.
    """

    name: str  # what a spec lists and the report's curves are keyed by
    label: str  # what people read: in the flags and on the website's form
    norm: Norm
    kind: Kind
    run: AttackFunction
    passes: Callable[[Effort], float]
    summary: str  # what it does, in one line, published with the API's schema
    fixed_step: bool = False  # steps of the spec's step_size times eps (PGD); others choose their own
    targeted: bool = False  # tries the top ``target_classes`` runner-up classes in turn

    @property
    def iterates(self) -> bool:
        """Whether ``steps`` (and with a random start, restarts) apply to it."""
        return self.kind != "single_step"


def attack_registry(*attacks: Attack) -> Mapping[str, Attack]:
    """The attacks by name, in the order given: the spec's enum and the API keep it."""
    repeated = sorted(name for name, count in Counter(a.name for a in attacks).items() if count > 1)
    if repeated:
        raise ValueError(f"each attack name may be registered once; repeated: {', '.join(repeated)}")
    return MappingProxyType({attack.name: attack for attack in attacks})


def rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row ``[R]`` tensor shaped to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Each row's L2 norm, shaped to broadcast against ``t``."""
    return rows(torch.linalg.vector_norm(t.flatten(1), dim=1), t)


def unit_l2_(t: torch.Tensor) -> torch.Tensor:
    """Scales each row to L2 norm 1 in place; an all-zero row stays zero.

    Dividing by the row's largest magnitude first keeps tiny rows exact: the gradient of a saturated
    cross-entropy can be 1e-30, whose squares vanish in float32, so dividing by a norm clamped at
    some floor would leave it a step of almost nothing.
    """
    peak = rows(t.flatten(1).abs().amax(dim=1), t)
    t.div_(torch.where(peak > 0, peak, 1.0))
    # A non-zero row now has norm in [1, sqrt(size)], so the clamp only keeps zero rows at zero.
    return t.div_(l2_norms(t).clamp_(min=1.0))


def loss_gradient(
    model: nn.Module, x: torch.Tensor, objective: Objective, stats: GradientStats | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of each row's loss w.r.t. ``x``, the logits and the rows' losses.

    ``stats``, when given, counts the rows whose gradient is all zero or not finite.
    """
    x.requires_grad_(True)
    logits = model(x)
    losses = objective(logits)
    (grad,) = torch.autograd.grad(losses.sum(), x)
    x.requires_grad_(False)
    if stats is not None:
        stats.record(grad)
    return grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0), logits.detach(), losses.detach()


def cross_entropy(y: torch.Tensor) -> Objective:
    return lambda logits: functional.cross_entropy(logits, y, reduction="none")


def input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, stats: GradientStats | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of each row's cross-entropy w.r.t. ``x``, the logits and the rows' losses."""
    return loss_gradient(model, x, cross_entropy(y), stats)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each row's true-class logit minus its largest other logit: negative once misclassified.

    It scales with the logits but never saturates, unlike the cross-entropy of a confident model.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def per_step_and_target(effort: Effort) -> float:
    """The cost of a targeted attack: ``steps`` iterations for each of its target classes."""
    return float(effort.steps * effort.target_classes)


# One targeted run on some rows: (x, y, eps, target classes, stats) -> (adversarial rows, broken).
# One targeted run on some rows: (model, x, y, eps, target classes, settings, stats) -> (adversarial
# rows, broken).
TargetedRun = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, AttackSettings, GradientStats | None],
    tuple[torch.Tensor, torch.Tensor],
]


def toward_runner_ups(run: TargetedRun) -> AttackFunction:
    """A targeted attack that runs ``run`` towards each of the top ``target_classes`` runner-up classes
    in turn.

    The runner-ups are ranked by the clean logits. Each target's run attacks only the rows no earlier
    one broke, and a row keeps the first adversarial it got; an unbroken row gets the last run's point.
    The gradient census counts each row once, at its start against the first target.
    """

    def attack(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
    ) -> torch.Tensor:
        with torch.no_grad():
            ranked = model(x).argsort(dim=1, descending=True)
        adversarial, broken = x.clone(), ranked[:, 0] != y
        for rank in range(1, min(settings.target_classes, ranked.shape[1] - 1) + 1):
            active = torch.nonzero(~broken).flatten()
            if len(active) == 0:
                break
            stats = settings.stats if rank == 1 else None
            adversarial[active], broken[active] = run(
                model, x[active], y[active], eps[active], ranked[active, rank], settings, stats
            )
        return adversarial

    return attack


class LinfBall:
    """Per-row L∞ balls around ``centre`` intersected with [0, 1], held as elementwise bounds."""

    def __init__(self, centre: torch.Tensor, radius: torch.Tensor) -> None:
        self.low = (centre - radius).clamp_(min=0.0)
        self.high = (centre + radius).clamp_(max=1.0)

    def project_(self, point: torch.Tensor) -> torch.Tensor:
        return point.clamp_(self.low, self.high)

    @staticmethod
    def ascent_(grad: torch.Tensor) -> torch.Tensor:
        """The steepest ascent direction of unit L∞ norm, in place."""
        return grad.sign_()


class L2Ball:
    """Per-row L2 balls around ``centre`` (radius broadcast per row) intersected with [0, 1]."""

    def __init__(self, centre: torch.Tensor, radius: torch.Tensor) -> None:
        self.centre, self.radius = centre, radius

    def project_(self, point: torch.Tensor) -> torch.Tensor:
        # Shrinking onto the sphere, then clipping to [0, 1], which only moves pixels towards the
        # centre (itself in [0, 1]), so the point stays inside the ball.
        delta = point.sub_(self.centre)
        delta.mul_((self.radius / l2_norms(delta).clamp_(min=1e-12)).clamp_(max=1.0))
        return delta.add_(self.centre).clamp_(0.0, 1.0)

    @staticmethod
    def ascent_(grad: torch.Tensor) -> torch.Tensor:
        """The steepest ascent direction of unit L2 norm, in place."""
        return unit_l2_(grad)


BALLS: dict[Norm, type[LinfBall] | type[L2Ball]] = {"linf": LinfBall, "l2": L2Ball}
