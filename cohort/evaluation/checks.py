"""Gradient-masking checks: whether the attacks' numbers can be trusted, from what the engine measured.

A model can look robust because its gradients mislead the attacks rather than because no adversarial
example exists (Athalye et al. 2018; Carlini et al. 2019). Each check here looks for one symptom in
the ``Evidence`` the engine gathered and returns a ``Check`` whether it passed or not, its finding
written from the measured numbers. A check that had nothing to look at (no gradient-free attack
ran, say) is left out of the list, so the report states only what was shown.

Outcome matrices are as in ``metrics``: boolean ``[samples, epsilons]``, True where the model still
classified the sample correctly after the attack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from cohort.evaluation.attacks import GradientStats, Kind, Norm
from cohort.evaluation.metrics import significantly_more, wilson_interval
from cohort.evaluation.results import Check, CheckCode, Flag

# A share of start points with an all-zero input gradient above which the attacks cannot be trusted:
# such rows never move.
ZERO_GRADIENT_TOLERANCE = 0.01
# A correctly classified sample's loss is saturated when the cross-entropy's input gradient is below
# this L2 norm, or too small for the loss itself (see ``saturated``). The gradient is about the loss
# times the logit margin's sensitivity (10 to 70 on these models), so below 1e-10 the loss is a few
# 1e-12, over 10,000 times under the smallest cross-entropy float32 tells from 0 (6e-8): an attack
# must cut the logit margin by about 10 before the loss it reads moves off 0. The share of such
# samples above which the check fails sits between what trained and masked digits models show at the
# clean input (bench/masking_calibration.py, 450 test digits, share of the correctly classified):
#   trained MLP 0%, PGD-trained MLP 0%, the demo's CNN trained as bench/robustness.py does (3 s) 0-1%;
#   the MLP's logits x3 29% (21% on the tests' 200), x5 70%, x10 91%, the CNN's x3 75-81%; the steep
#   input quantiser, with or without its faint smooth path, and the zero-gradient one 100%.
# Saturation grows with training: the same CNN trained 4 times longer measured 8-20% (its loss is 0 in
# float32 for two thirds of the digits), so a long-trained model may fail this check on its own.
GRADIENT_FLOOR = 1e-10
SATURATED_SHARE_TOLERANCE = 0.15
# How large a share of samples a gradient-free attack may break beyond the gradient attacks, or may
# stay robust at a budget that covers the whole input range, before the check fails: a small
# practical margin, and the share's 95% interval must lie above it, so sampling noise alone does not
# fail it.
PRACTICAL_MARGIN = 0.01

_GRADIENT_KINDS: frozenset[Kind] = frozenset({"single_step", "gradient", "minimal_norm"})
_NORM_LABELS: dict[Norm, str] = {"linf": "L∞", "l2": "L2"}


@dataclass(frozen=True)
class AttackOutcome:
    """One attack's per-sample outcomes over its epsilon grid."""

    name: str
    label: str  # as people read it: "APGD-T"
    norm: Norm
    kind: Kind
    epsilons: Sequence[float]  # its norm's grid, the same for every attack of the norm
    robust: torch.Tensor  # bool [N, E]
    # True in a cascaded preset: ``robust`` is then robust against this attack and every attack of
    # its norm that ran before it, as each attack only ran on what the earlier ones had failed on.
    cumulative: bool = False


@dataclass(frozen=True)
class Coverage:
    """What the gradient attacks left robust at a budget large enough to reach any input.

    At L∞ epsilon 1, or an L2 epsilon of the unit cube's diagonal, the adversary may choose any input
    at all, so every sample can be misclassified: robust accuracy there must be 0.
    """

    norm: Norm
    epsilon: float
    robust: int
    samples: int


@dataclass(frozen=True)
class Evidence:
    """What the engine measured, for the checks to judge.

    ``clean_losses`` and ``clean_gradient_norms`` are per correctly classified sample, at the clean
    input, from ``saturation``; ``input_size`` is the number of values in one input (64 for the 8x8
    digits), which sets the L2 diameter of the input range. ``coverage`` holds one entry per norm
    measured, and is empty when it was not.
    """

    clean_losses: torch.Tensor
    clean_gradient_norms: torch.Tensor
    input_size: int
    gradient_stats: GradientStats
    attacks: Sequence[AttackOutcome]
    coverage: Sequence[Coverage] = ()


def saturation(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's cross-entropy at ``x`` and the L2 norm of its input gradient, on ``x``'s device.

    One forward and one backward pass. The loss is float32 as the model computes it, and as the attacks
    see it. The norm is taken after dividing each row by its largest entry, so a gradient of 1e-30 is
    measured as such rather than squared to 0; a row with a non-finite gradient gets NaN, which no
    threshold counts.
    """
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        losses = functional.cross_entropy(model(x), y, reduction="none")
        (gradient,) = torch.autograd.grad(losses.sum(), x)
    rows = gradient.flatten(1)
    scale = rows.abs().amax(dim=1)
    unit = rows / torch.where(scale > 0, scale, 1.0)[:, None]
    return losses.detach(), torch.linalg.vector_norm(unit, dim=1) * scale


def saturated(evidence: Evidence) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples' gradient is below ``GRADIENT_FLOOR``, and which others' is too small for their loss.

    Too small for the loss: moving the input along the gradient across the whole input range (the
    unit cube's diagonal) would, to first order, change the loss by less than the loss itself. For a
    healthy model the ratio of gradient to loss is the sensitivity of its logit margin, whatever its
    confidence (over 10 per unit of input on the digits); a quantiser makes it vanish.
    """
    losses, norms = evidence.clean_losses.double(), evidence.clean_gradient_norms.double()
    tiny = norms < GRADIENT_FLOOR
    too_small = ~tiny & (norms * math.sqrt(evidence.input_size) < losses)
    return tiny, too_small


def run_checks(evidence: Evidence) -> list[Check]:
    """Every check the evidence allows, in the order the report lists them."""
    checks = [
        _saturated_loss(evidence),
        _zero_gradients(evidence.gradient_stats),
        _non_finite_gradients(evidence.gradient_stats),
        *_gradient_free_stronger(evidence.attacks),
        *(_unbounded_budget_robust(coverage) for coverage in evidence.coverage),
        _non_monotone(evidence.attacks),
        _single_step_beats_iterative(evidence.attacks),
    ]
    return [check for check in checks if check is not None]


def flags(checks: Sequence[Check]) -> list[Flag]:
    """The failed checks as the report's warnings: what was found, then what to try."""
    return [
        Flag(code=check.code, message=f"{check.finding} {check.advice}")
        for check in checks
        if not check.passed
    ]


# What to try, in a few words, for the headline's one sentence of advice.
_MASKING_STAGE = (
    "remove or smooth any stage that saturates or blocks the gradient (a logit scale, a steep sigmoid)"
)
_MORE_EFFORT = "run more steps and restarts"
_REMEDIES: dict[CheckCode, str] = {
    "saturated_loss": _MASKING_STAGE,
    "zero_gradients": _MASKING_STAGE,
    "gradient_free_stronger": _MASKING_STAGE,
    "non_finite_gradients": "fix what makes the gradient overflow",
    "unbounded_budget_robust": _MORE_EFFORT,
    "non_monotone": _MORE_EFFORT,
    "fgsm_beats_pgd": _MORE_EFFORT,
}


def headline_advice(checks: Sequence[Check]) -> str | None:
    """One sentence for the headline when any check failed, None when all passed."""
    remedies = list(dict.fromkeys(_REMEDIES[check.code] for check in checks if not check.passed))
    if not remedies:
        return None
    steps = remedies[0] if len(remedies) == 1 else f"{'; '.join(remedies[:-1])}; then {remedies[-1]}"
    return f"The attacks may have been misled, so read this as an upper bound: {steps}."


# -- the checks --------------------------------------------------------------------------------


def _check(code: CheckCode, title: str, passed: bool, finding: str, advice: str) -> Check:
    return Check(code=code, title=title, passed=passed, finding=finding, advice=None if passed else advice)


def _saturated_loss(evidence: Evidence) -> Check | None:
    total = len(evidence.clean_losses)
    if total == 0:
        return None
    tiny, too_small = saturated(evidence)
    count = int(tiny.sum() + too_small.sum())
    share = count / total
    zero_loss = int((evidence.clean_losses == 0).sum())
    passed = share <= SATURATED_SHARE_TOLERANCE
    finding = (
        f"At the clean input, {count:,} of {total:,} correctly classified samples ({share:.1%}) had a "
        f"saturated loss: {int(tiny.sum()):,} an input gradient of the cross-entropy below "
        f"{GRADIENT_FLOOR:g}, {int(too_small.sum()):,} one too small for the loss (following it across "
        "the whole input range would change the loss by less than the loss itself). "
    )
    if zero_loss:
        finding += f"The cross-entropy was exactly 0 in float32 for {zero_loss:,}. "
    finding += (
        f"That is within the {SATURATED_SHARE_TOLERANCE:.0%} the check allows."
        if passed
        else "Gradient attacks barely move such samples, so they may look robust without being so."
    )
    return _check(
        "saturated_loss",
        "saturated loss",
        passed,
        finding,
        "A large logit scale or temperature saturates the softmax, and a steep sigmoid or quantiser on "
        "the input flattens the gradient: evaluate the model without such a stage, and rely on the "
        "margin-loss (APGD-T) and gradient-free (Square) attacks of the autoattack preset.",
    )


def _zero_gradients(stats: GradientStats) -> Check | None:
    if stats.rows == 0:
        return None
    share = stats.zero / stats.rows
    passed = share <= ZERO_GRADIENT_TOLERANCE
    finding = (
        f"The input gradient was exactly zero at the start point for {stats.zero:,} of {stats.rows:,} "
        f"attacked inputs ({share:.1%}). "
    )
    finding += (
        f"That is within the {ZERO_GRADIENT_TOLERANCE:.0%} tolerance."
        if passed
        else "Gradient attacks cannot move such inputs: their robustness is assumed, not measured."
    )
    return _check(
        "zero_gradients",
        "zero gradients",
        passed,
        finding,
        "A non-differentiable step (rounding, quantisation, a hard threshold) or saturated outputs stop "
        "the gradient: remove it, or replace it by a smooth approximation for the evaluation, and "
        "compare with the gradient-free Square attack.",
    )


def _non_finite_gradients(stats: GradientStats) -> Check | None:
    if stats.rows == 0:
        return None
    passed = stats.non_finite == 0
    finding = (
        f"The input gradient was NaN or infinite at the start point for {stats.non_finite:,} of "
        f"{stats.rows:,} attacked inputs."
    )
    if not passed:
        finding += " The attacks could not follow it there, so the robust accuracy is an overestimate."
    return _check(
        "non_finite_gradients",
        "non-finite gradients",
        passed,
        finding,
        "Look for operations that overflow or divide by zero (a square root or a log at 0, a division) "
        "and fix them before trusting this report.",
    )


def _gradient_free_stronger(attacks: Sequence[AttackOutcome]) -> list[Check]:
    """Per gradient-free attack: the samples it broke that every gradient attack of its norm left robust.

    A sample the gradient-free attack broke has an adversarial example within the budget, so the
    gradient attacks that missed it were misled. In a cascade the gradient attacks that ran before it
    are compared, whose cumulative outcome is exactly what it was given; otherwise all of its norm.
    """
    checks = []
    for position, free in enumerate(attacks):
        if free.kind != "gradient_free":
            continue
        gradient = [
            a
            for a in (attacks[:position] if free.cumulative else attacks)
            if a.norm == free.norm and a.kind in _GRADIENT_KINDS
        ]
        if not gradient:
            continue
        robust_to_gradients = torch.stack([a.robust for a in gradient]).all(dim=0)
        total = len(free.robust)
        missed = [
            (eps, int((robust_to_gradients[:, j] & ~free.robust[:, j]).sum()))
            for j, eps in enumerate(free.epsilons)
        ]
        beyond = [(eps, count) for eps, count in missed if _beyond_margin(count, total)]
        worst_eps, worst = max(missed, key=lambda item: item[1])
        names = _names(gradient)
        norm = _NORM_LABELS[free.norm]
        if beyond:
            finding = (
                f"{free.label} broke samples that every gradient attack ({names}) had left robust: "
                + "; ".join(
                    f"at {norm} epsilon {eps:g}, {count:,} of {total:,} ({count / total:.1%})"
                    for eps, count in beyond
                )
                + ". An adversarial example exists for each of them, so the gradient attacks were misled "
                "into missing it."
            )
        elif worst == 0:
            finding = (
                f"{free.label} broke no sample that every gradient attack ({names}) had left robust, at any "
                f"{norm} epsilon."
            )
        else:
            finding = (
                f"{free.label} broke at most {worst:,} of {total:,} samples ({worst / total:.1%}, at {norm} "
                f"epsilon {worst_eps:g}) that every gradient attack ({names}) had left robust: within the "
                f"{PRACTICAL_MARGIN:.0%} margin and sampling noise."
            )
        checks.append(
            _check(
                "gradient_free_stronger",
                "gradient-free attack stronger",
                not beyond,
                finding,
                "The gradient attacks are misled, so even the worst case may be optimistic: look for a "
                "stage that hides the gradient (a saturating or non-differentiable layer) and evaluate "
                "without it.",
            )
        )
    return checks


def _unbounded_budget_robust(coverage: Coverage) -> Check:
    share = coverage.robust / coverage.samples if coverage.samples else 0.0
    passed = not _beyond_margin(coverage.robust, coverage.samples)
    finding = (
        f"At {_NORM_LABELS[coverage.norm]} epsilon {coverage.epsilon:g}, a budget that reaches any input, "
        f"the gradient attacks left {coverage.robust:,} of {coverage.samples:,} samples ({share:.1%}) "
        "correctly classified. "
    )
    finding += (
        "Every sample can be turned into an input of another class there, and the attacks found that."
        if passed
        else "Every sample can be turned into an input of another class there, so robust accuracy must "
        "be 0: the attacks are failing, not meeting real robustness."
    )
    return _check(
        "unbounded_budget_robust",
        "robust beyond the input range",
        passed,
        finding,
        "Run more steps and restarts; if that does not bring it to 0, a stage of the model hides the "
        "gradient: evaluate without it.",
    )


def _non_monotone(attacks: Sequence[AttackOutcome]) -> Check | None:
    """Robust accuracy can only fall as epsilon grows: a larger budget contains every smaller one."""
    curves = [(a.label, a.epsilons, a.robust) for a in attacks]
    for norm in dict.fromkeys(a.norm for a in attacks):
        same = [a for a in attacks if a.norm == norm]
        if len(same) == 1:
            continue  # its worst case is that attack's curve
        curves.append(
            (
                f"worst case {_NORM_LABELS[norm]}",
                same[0].epsilons,
                torch.stack([a.robust for a in same]).all(0),
            )
        )
    curves = [curve for curve in curves if len(curve[1]) > 1]
    if not curves:
        return None
    rises = [
        f"{name} from {_share(robust[:, j])} at epsilon {epsilons[j]:g} to {_share(robust[:, j + 1])} at "
        f"{epsilons[j + 1]:g}"
        for name, epsilons, robust in curves
        for j in range(len(epsilons) - 1)
        if significantly_more(
            int((robust[:, j + 1] & ~robust[:, j]).sum()), int((~robust[:, j + 1] & robust[:, j]).sum())
        )
    ]
    if rises:
        finding = (
            f"Robust accuracy rose with a larger epsilon, beyond sampling noise: {'; '.join(rises)}. Every "
            "perturbation allowed at a smaller epsilon is allowed at a larger one, so the attack failed "
            "to find adversarial examples that exist."
        )
    else:
        checked = ", ".join(name for name, _, _ in curves)
        finding = (
            f"On {_each(len(curves), 'curve')} ({checked}), robust accuracy never rose with a larger "
            "epsilon beyond sampling noise."
        )
    return _check(
        "non_monotone",
        "accuracy rising with the budget",
        not rises,
        finding,
        "Rerun with more steps or restarts; until then, read the lowest accuracy at or below an epsilon "
        "as the estimate there.",
    )


def _single_step_beats_iterative(attacks: Sequence[AttackOutcome]) -> Check | None:
    """Where a single-step attack such as FGSM clearly beat an iterative gradient attack of its norm.

    Many steps can take that one step and more, so they should never do worse. Only attacks that ran
    on every sample are compared: in a cascade, a later attack's outcome includes the earlier ones'.
    The check keeps the code it was first published under, ``fgsm_beats_pgd``.
    """
    independent = [a for a in attacks if not a.cumulative]
    pairs = [
        (single, iterative)
        for single in independent
        if single.kind == "single_step"
        for iterative in independent
        if iterative.kind == "gradient" and iterative.norm == single.norm
    ]
    compared, beaten = 0, []
    for single, iterative in pairs:
        for j, eps in enumerate(single.epsilons):
            if eps == 0 or eps not in iterative.epsilons:
                continue
            k = list(iterative.epsilons).index(eps)
            single_wins = int((~single.robust[:, j] & iterative.robust[:, k]).sum())
            iterative_wins = int((single.robust[:, j] & ~iterative.robust[:, k]).sum())
            compared += 1
            if significantly_more(single_wins, iterative_wins):
                beaten.append(
                    f"at epsilon {eps:g}, {single.label} broke {single_wins:,} samples that "
                    f"{iterative.label} left robust, and {iterative.label} {iterative_wins:,} that "
                    f"{single.label} left robust"
                )
    if compared == 0:
        return None
    if beaten:
        finding = (
            f"A single gradient step did clearly better than an iterative attack: {'; '.join(beaten)}. Many "
            "steps should be at least as strong as one, so their steps are being misled."
        )
    else:
        finding = (
            f"In {_each(compared, 'comparison')} of a single-step and an iterative attack of one norm at "
            "one epsilon, the single step did not break clearly more samples than the iterative attack."
        )
    return _check(
        "fgsm_beats_pgd",
        "single step beating many",
        not beaten,
        finding,
        "Treat the iterative attacks' numbers as optimistic; rerun with more steps, more restarts or a "
        "larger step size.",
    )


def _beyond_margin(count: int, total: int) -> bool:
    """Whether a share of ``count`` in ``total`` lies above ``PRACTICAL_MARGIN`` beyond sampling noise."""
    return total > 0 and wilson_interval(count, total).low > PRACTICAL_MARGIN


def _each(count: int, noun: str) -> str:
    return f"the one {noun}" if count == 1 else f"each of the {count} {noun}s"


def _share(outcomes: torch.Tensor) -> str:
    return f"{float(outcomes.double().mean()):.1%}"


def _names(attacks: Sequence[AttackOutcome]) -> str:
    return ", ".join(a.label for a in attacks)
