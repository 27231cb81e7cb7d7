"""What an evaluation costs, in per-sample gradient passes (one forward and one input backward).

One model of the work serves twice: the API refuses a request that would need more than
``jobs.MAX_GRADIENT_PASSES``, and the engine reports its progress as the share of this work done.
It reads every attack's cost from its registry entry (``Attack.passes``: steps for PGD and APGD,
steps per target class for APGD-T and FMN, a third of a pass per query for Square), so a new attack
is costed by its entry alone.
"""

from __future__ import annotations

import math

from cohort.evaluation.attacks import ATTACKS, SEARCH_ATTACK, Attack, Norm
from cohort.evaluation.spec import EvaluationSpec

# Bisection rounds of the minimal-perturbation search: each halves the bracket
# between two grid epsilons, so the estimate is within (grid gap) / 2**6.
SEARCH_ITERATIONS = 6
# The coverage check runs each norm's first gradient attack once more, on up to this many samples,
# at a budget that reaches every input.
COVERAGE_SAMPLES = 100


def attacked_columns(grid: list[float]) -> list[int]:
    """The positions of a grid's epsilons that are attacked: at epsilon 0 every attack is the identity."""
    return [j for j, eps in enumerate(grid) if eps > 0]


def runs(attack: Attack, spec: EvaluationSpec) -> int:
    """How many times the attack runs on each row; the engine keeps the worst run."""
    # A restart differs from the first run only by its random draws: a gradient attack has them only
    # with a random start, Square always; FMN starts from the clean input and a single step from
    # nowhere, so a restart would repeat their run.
    random = attack.kind == "gradient_free" or (attack.kind == "gradient" and spec.random_start)
    return spec.restarts if random else 1


def passes_per_run(attack: Attack, spec: EvaluationSpec) -> float:
    return attack.passes(spec)


def passes_per_row(attack: Attack, spec: EvaluationSpec) -> float:
    """Gradient passes per attacked (sample, epsilon) row: the engine's unit of progress."""
    return passes_per_run(attack, spec) * runs(attack, spec)


def searches(spec: EvaluationSpec) -> bool:
    """Whether the minimal-perturbation search runs: asked for, with a non-zero L∞ epsilon to bracket."""
    return spec.minimal_perturbation and spec.uses("linf") and max(spec.epsilons_linf) > 0


def search_passes_per_round(spec: EvaluationSpec) -> float:
    """Gradient passes per searched sample in one bisection round: one run of the search attack."""
    return passes_per_run(SEARCH_ATTACK, spec)


def coverage_attack(spec: EvaluationSpec, norm: Norm) -> Attack | None:
    """The attack the coverage check runs in a norm: the spec's first gradient attack of it, if any."""
    return next((ATTACKS[name] for name in spec.attacks_of(norm) if ATTACKS[name].kind == "gradient"), None)


def coverage_passes(spec: EvaluationSpec, samples: int) -> float:
    """Gradient passes of the coverage check on an evaluation that attacks ``samples`` samples."""
    attacks = [coverage_attack(spec, norm) for norm in ("linf", "l2")]
    return min(samples, COVERAGE_SAMPLES) * sum(passes_per_run(a, spec) for a in attacks if a is not None)


def gradient_passes(spec: EvaluationSpec, samples: int) -> int:
    """The work of an evaluation that attacks ``samples`` samples, the coverage check and the search
    included.

    The search bisects only the samples some attack broke within the grid, and targeted attacks and
    Square stop on a row once it is broken, so a run may do less. A forward pass counts as a third of
    a gradient pass, so the total is rounded up.
    """
    chosen = [ATTACKS[name] for name in spec.attacks]
    per_sample = sum(
        len(attacked_columns(spec.epsilons(attack.norm))) * passes_per_row(attack, spec) for attack in chosen
    )
    if searches(spec):
        per_sample += SEARCH_ITERATIONS * search_passes_per_round(spec)
    return math.ceil(samples * per_sample + coverage_passes(spec, samples))
