"""Turning per-sample attack outcomes into the report's numbers: intervals, curves, the worst case,
per-class scores and the minimal perturbation. The gradient-masking checks are in ``checks``.

Outcomes are boolean matrices ``[samples, epsilons]``: True where the model
still classified the sample correctly after the attack. Comparisons between
two attacks, or two epsilons, are paired (the same samples face both), so
"beyond noise" is a McNemar-style sign test on the samples where they differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cohort.evaluation.attacks import ATTACKS, Norm
from cohort.evaluation.results import (
    ClassScore,
    CleanScore,
    CurvePoint,
    Interval,
    MinimalPerturbation,
    WorstCasePoint,
)
from cohort.evaluation.spec import AttackName

_Z95 = 1.959964


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
    attack: AttackName,
    epsilons: Sequence[float],
    robust: torch.Tensor,
    confidence: torch.Tensor,
    cumulative: bool = False,
) -> list[CurvePoint]:
    """One attack's points; ``cumulative`` when, in a cascade, ``robust`` includes the earlier attacks'."""
    total = robust.shape[0]
    return [
        CurvePoint(
            attack=attack,
            norm=ATTACKS[attack].norm,
            epsilon=eps,
            robust_accuracy=float(robust[:, j].double().mean()),
            ci95=wilson_interval(int(robust[:, j].sum()), total),
            mean_adversarial_confidence=float(confidence[:, j].mean()),
            cumulative=cumulative,
        )
        for j, eps in enumerate(epsilons)
    ]


def worst_case(robust_by_attack: Sequence[torch.Tensor]) -> torch.Tensor:
    """Robust only where every attack failed."""
    return torch.stack(list(robust_by_attack)).all(dim=0)


def worst_case_points(norm: Norm, epsilons: Sequence[float], robust: torch.Tensor) -> list[WorstCasePoint]:
    return [
        WorstCasePoint(
            norm=norm,
            epsilon=eps,
            robust_accuracy=float(robust[:, j].double().mean()),
            ci95=wilson_interval(int(robust[:, j].sum()), robust.shape[0]),
        )
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
