"""The standard perturbation budgets: where a headline number is read, fixed per input domain.

A headline at "the middle of the grid" moves whenever someone edits the grid, so two reports of one
model would quote different numbers. Instead each input domain declares its budget once, as the
field does for its benchmarks (RobustBench's threat models, the AutoAttack paper's MNIST settings),
and every evaluation of a model in that domain is read there. A spec may still declare its own
``headline_epsilon``; the report then says so.

Inputs are scaled to [0, 1], so an L∞ budget is a share of the pixel range and an L2 budget a
Euclidean distance in that unit. The domain is recognised from the model's input shape (channels
first or last): the same pixels, uploaded or built in, get the same budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from cohort.domain.errors import InvalidInput
from cohort.evaluation.attacks import Norm
from cohort.evaluation.spec import EvaluationSpec


@dataclass(frozen=True)
class StandardBudget:
    domain: str  # what the inputs are, as the report names them
    linf: float
    l2: float
    reason: str  # why these values, for the documentation and the report

    def epsilon(self, norm: Norm) -> float:
        return self.linf if norm == "linf" else self.l2


# (channels, height, width) -> budget. Digits are scikit-learn's 8x8 scans with 17 grey levels, so
# L∞ 0.1 is 1.6 levels per pixel, a change a reader sees as noise; L2 0.5 spreads about as much
# change over the 64 pixels as L∞ 0.06 would over all of them.
STANDARD_BUDGETS: dict[tuple[int, int, int], StandardBudget] = {
    (1, 8, 8): StandardBudget(
        "8x8 grey digits",
        linf=0.1,
        l2=0.5,
        reason="1.6 of the 17 grey levels per pixel in L∞; the same visible change spread thinly in L2",
    ),
    (1, 28, 28): StandardBudget(
        "28x28 grey images (MNIST-like)",
        linf=0.3,
        l2=2.0,
        reason="the MNIST budgets of the AutoAttack and FAB papers",
    ),
    (3, 32, 32): StandardBudget(
        "32x32 colour images (CIFAR-like)",
        linf=8 / 255,
        l2=0.5,
        reason="RobustBench's CIFAR-10 and CIFAR-100 threat models",
    ),
    (3, 224, 224): StandardBudget(
        "224x224 colour images (ImageNet-like)",
        linf=4 / 255,
        l2=3.0,
        reason="RobustBench's ImageNet L∞ threat model; L2 3.0 as in Salman et al. (2020)",
    ),
}


def _channels_first(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[0] not in (1, 3) and shape[-1] in (1, 3):
        return (shape[-1], *shape[:-1])
    if len(shape) == 2:  # a grey image without a channel axis
        return (1, *shape)
    if len(shape) == 1 and shape[0] == 64:  # digits flattened for an MLP
        return (1, 8, 8)
    return shape


def standard_budget(input_shape: Sequence[int]) -> StandardBudget | None:
    """The declared budget of the domain whose inputs have this shape, if one is declared."""
    return STANDARD_BUDGETS.get(_channels_first(input_shape))


def headline_budget(input_shape: Sequence[int], norm: Norm, declared: float | None) -> tuple[float, str]:
    """The headline's epsilon and where it comes from: the spec's own value, else the domain's standard."""
    if declared is not None:
        return declared, "declared in the evaluation's spec (headline_epsilon)"
    budget = standard_budget(input_shape)
    if budget is None:
        raise InvalidInput(
            f"spec.headline_epsilon: no standard budget is declared for inputs of shape {list(input_shape)}; "
            "set headline_epsilon to the perturbation a human would not notice in your data (see "
            "docs/evaluation.md#standard-budgets for how to choose one)"
        )
    return budget.epsilon(norm), f"the standard budget for {budget.domain}: {budget.reason}"


def resolve(spec: EvaluationSpec, input_shape: Sequence[int]) -> tuple[EvaluationSpec, str]:
    """The spec with its headline budget filled in (and on its grid), and where that budget comes from."""
    epsilon, source = headline_budget(input_shape, spec.headline_norm, spec.headline_epsilon)
    if spec.headline_epsilon is None:
        try:
            spec = EvaluationSpec.model_validate({**spec.model_dump(), "headline_epsilon": epsilon})
        except ValidationError as exc:
            raise InvalidInput(f"spec: {exc.errors()[0]['msg']}") from None
    return spec, source
