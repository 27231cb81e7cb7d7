"""Turning per-sample attack outcomes into the report's numbers and flags.

Outcomes are boolean matrices ``[samples, epsilons]``: True where the model
still classified the sample correctly after the attack. Comparisons between
two attacks, or two epsilons, are paired (the same samples face both), so
"beyond noise" is a McNemar-style sign test on the samples where they differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from cohort.evaluation.attacks import ATTACKS, GradientStats, Norm
from cohort.evaluation.results import (
    ClassScore,
    CleanScore,
    CurvePoint,
    Flag,
    Interval,
    MinimalPerturbation,
    WorstCasePoint,
)
from cohort.evaluation.spec import AttackName

_Z95 = 1.959964
# A share of start points with an all-zero input gradient above which PGD
# cannot be trusted: such rows never move.
ZERO_GRADIENT_TOLERANCE = 0.01


def wilson_interval(successes: int, total: int, z: float = _Z95) -> Interval:
    """The Wilson score interval: unlike p ± z·se it stays in [0, 1] and is sound near 0 and 1."""
    if total == 0:
        return Interval(low=0.0, high=1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))


def significantly_more(more: int, fewer: int) -> bool:
    """Whether ``more`` discordant pairs beat ``fewer`` beyond chance (95% sign test, normal form)."""
    return more > fewer and (more - fewer) > _Z95 * math.sqrt(more + fewer)


def clean_score(correct: torch.Tensor) -> CleanScore:
    hits, total = int(correct.sum()), len(correct)
    return CleanScore(
        accuracy=hits / max(total, 1), ci95=wilson_interval(hits, total), correct=hits, total=total
    )


def curve(
    attack: AttackName, epsilons: Sequence[float], robust: torch.Tensor, confidence: torch.Tensor
) -> list[CurvePoint]:
    total = robust.shape[0]
    return [
        CurvePoint(
            attack=attack,
            norm=ATTACKS[attack].norm,
            epsilon=eps,
            robust_accuracy=float(robust[:, j].double().mean()),
            ci95=wilson_interval(int(robust[:, j].sum()), total),
            mean_adversarial_confidence=float(confidence[:, j].mean()),
        )
        for j, eps in enumerate(epsilons)
    ]


def worst_case(robust_by_attack: Sequence[torch.Tensor]) -> torch.Tensor:
    """Robust only where every attack failed."""
    return torch.stack(list(robust_by_attack)).all(dim=0)


def worst_case_points(norm: Norm, epsilons: Sequence[float], robust: torch.Tensor) -> list[WorstCasePoint]:
    return [
        WorstCasePoint(norm=norm, epsilon=eps, robust_accuracy=float(robust[:, j].double().mean()))
        for j, eps in enumerate(epsilons)
    ]


def per_class(labels: torch.Tensor, clean: torch.Tensor, robust: torch.Tensor) -> list[ClassScore]:
    """Clean and robust accuracy for each label present; ``robust`` is one column, per sample."""
    scores = []
    for label in torch.unique(labels).tolist():
        members = labels == label
        scores.append(
            ClassScore(
                label=int(label),
                samples=int(members.sum()),
                clean_accuracy=float(clean[members].double().mean()),
                robust_accuracy=float(robust[members].double().mean()),
            )
        )
    return scores


def minimal_perturbation_summary(
    estimates: torch.Tensor, precision: float, max_epsilon: float
) -> MinimalPerturbation:
    """Nearest-rank percentiles of per-sample estimates; ``inf`` marks a sample never broken.

    The q-th percentile is the smallest epsilon that breaks at least a share q
    of the samples. When fewer than that share were ever broken within
    ``max_epsilon`` it is unknown (None) rather than invented.
    """
    ordered = torch.sort(estimates.double()).values

    def percentile(q: float) -> float | None:
        if len(ordered) == 0:
            return None
        value = float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])
        return None if math.isinf(value) else value

    return MinimalPerturbation(
        norm="linf",
        median=percentile(0.5),
        p10=percentile(0.1),
        p25=percentile(0.25),
        p75=percentile(0.75),
        p90=percentile(0.9),
        unbroken_fraction=float(torch.isinf(ordered).double().mean()) if len(ordered) else 0.0,
        precision=precision,
        max_epsilon=max_epsilon,
    )


def gradient_flags(stats: GradientStats) -> list[Flag]:
    flags = []
    if stats.rows and stats.non_finite:
        flags.append(
            Flag(
                code="non_finite_gradients",
                message=(
                    f"The model's input gradient was NaN or infinite for {stats.non_finite:,} of "
                    f"{stats.rows:,} attacked inputs, so the attacks could not follow it there and the "
                    "robust accuracy is an overestimate. Look for operations that overflow or divide by "
                    "zero (a log or a division in the model); fix them before trusting this report."
                ),
            )
        )
    if stats.rows and stats.zero / stats.rows > ZERO_GRADIENT_TOLERANCE:
        flags.append(
            Flag(
                code="zero_gradients",
                message=(
                    f"The model's input gradient was exactly zero for {stats.zero / stats.rows:.0%} of "
                    "attacked inputs, so gradient attacks could not move them: their robustness is not "
                    "measured, only assumed. This is the mark of gradient masking (a non-differentiable "
                    "step, quantisation, or saturated outputs). Do not read the robust accuracy as real; "
                    "check with a gradient-free attack or remove the masking component."
                ),
            )
        )
    return flags


def single_step_flag(
    label: str,
    epsilons: Sequence[float],
    single_step: torch.Tensor,
    iterative: Mapping[AttackName, torch.Tensor],
) -> Flag | None:
    """Where a single-step attack such as FGSM clearly beat an iterative attack of its norm.

    Many steps can take that one step and more, so they should never do worse. The flag keeps the
    code it was first published under, ``fgsm_beats_pgd``, whichever single-step attack it is about.
    """
    beaten = sorted(
        {
            eps
            for attack, robust in iterative.items()
            for j, eps in enumerate(epsilons)
            if significantly_more(
                int((~single_step[:, j] & robust[:, j]).sum()), int((single_step[:, j] & ~robust[:, j]).sum())
            )
        }
    )
    if not beaten:
        return None
    return Flag(
        code="fgsm_beats_pgd",
        message=(
            f"At epsilon {_listing(beaten)}, the single-step {label} broke clearly more samples than the "
            "iterative attacks. A many-step attack should be at least as strong, so their gradient "
            "steps are being misled: a sign of gradient masking. Treat the iterative attacks' numbers "
            "as optimistic; rerun with more steps, more restarts or a larger step size."
        ),
    )


def monotonicity_flag(
    robust_by_attack: Mapping[AttackName, tuple[Sequence[float], torch.Tensor]],
) -> Flag | None:
    """A larger budget contains every smaller one, so robust accuracy can only fall as epsilon grows."""
    rises = [
        f"{attack} from {epsilons[j]:g} to {epsilons[j + 1]:g}"
        for attack, (epsilons, robust) in robust_by_attack.items()
        for j in range(len(epsilons) - 1)
        if significantly_more(
            int((robust[:, j + 1] & ~robust[:, j]).sum()), int((~robust[:, j + 1] & robust[:, j]).sum())
        )
    ]
    if not rises:
        return None
    return Flag(
        code="non_monotone",
        message=(
            f"Robust accuracy rose with a larger epsilon ({'; '.join(rises)}), beyond sampling noise. "
            "Every perturbation allowed at a small epsilon is also allowed at a larger one, so the "
            "attack is failing to find what exists: a sign of gradient masking or too few steps. "
            "Rerun with more steps or restarts; until then, read the lowest accuracy as the estimate."
        ),
    )


def _listing(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)
