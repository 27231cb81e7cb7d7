"""The attacks the evaluation runs, and ``ATTACKS``, their registry.

Each attack is declared once here; the spec, the engine, the work budget and the API read it from
here. Each method lives in its own module: ``pgd`` (FGSM, PGD), ``apgd`` (APGD on cross-entropy,
DLR and targeted DLR), ``fmn`` (minimal norm) and ``square`` (gradient-free); ``base`` holds what
they share.
"""

from __future__ import annotations

from cohort.evaluation.attacks.apgd import apgd, apgd_targeted, dlr
from cohort.evaluation.attacks.base import (
    Attack,
    AttackFunction,
    AttackSettings,
    Effort,
    GradientStats,
    Kind,
    Norm,
    attack_registry,
    cross_entropy,
    input_gradient,
    loss_gradient,
    per_step_and_target,
)
from cohort.evaluation.attacks.fmn import fmn
from cohort.evaluation.attacks.pgd import fgsm, one_pass, per_step, pgd_l2, pgd_linf
from cohort.evaluation.attacks.square import per_query, square

__all__ = [
    "ATTACKS",
    "SEARCH_ATTACK",
    "Attack",
    "AttackFunction",
    "AttackSettings",
    "Effort",
    "GradientStats",
    "Kind",
    "Norm",
    "attack_registry",
    "fgsm",
    "input_gradient",
    "loss_gradient",
    "pgd_l2",
    "pgd_linf",
]

_APGD_T = "targeted auto-PGD on the DLR loss, towards each of the top runner-up classes in turn"
_FMN = "targeted fast minimum-norm attack, as FAB-T in AutoAttack: the smallest adversarial within the budget"
_SQUARE = "random search with square updates: forward passes only, so hidden gradients cannot stop it"

ATTACKS = attack_registry(
    Attack(
        name="fgsm",
        label="FGSM",
        norm="linf",
        kind="single_step",
        run=fgsm,
        passes=one_pass,
        summary="one signed gradient step: fast, and a check on the others",
    ),
    Attack(
        name="pgd_linf",
        label="PGD",
        norm="linf",
        kind="gradient",
        run=pgd_linf,
        passes=per_step,
        summary="projected gradient descent, the standard L∞ attack",
        fixed_step=True,
    ),
    Attack(
        name="pgd_l2",
        label="PGD L2",
        norm="l2",
        kind="gradient",
        run=pgd_l2,
        passes=per_step,
        summary="projected gradient descent inside an L2 ball",
        fixed_step=True,
    ),
    Attack(
        name="apgd_ce",
        label="APGD-CE",
        norm="linf",
        kind="gradient",
        run=apgd("linf", cross_entropy),
        passes=per_step,
        summary="auto-PGD on the cross-entropy, with a step size that adapts itself",
    ),
    Attack(
        name="apgd_dlr",
        label="APGD-DLR",
        norm="linf",
        kind="gradient",
        run=apgd("linf", dlr),
        passes=per_step,
        summary="auto-PGD on the difference-of-logits ratio, which no scaling of the logits saturates",
    ),
    Attack(
        name="apgd_t",
        label="APGD-T",
        norm="linf",
        kind="gradient",
        run=apgd_targeted("linf"),
        passes=per_step_and_target,
        summary=_APGD_T,
        targeted=True,
    ),
    Attack(
        name="fmn_linf",
        label="FMN",
        norm="linf",
        kind="minimal_norm",
        run=fmn("linf"),
        passes=per_step_and_target,
        summary=_FMN,
        targeted=True,
    ),
    Attack(
        name="square_linf",
        label="Square",
        norm="linf",
        kind="gradient_free",
        run=square("linf"),
        passes=per_query,
        summary=_SQUARE,
    ),
    Attack(
        name="apgd_ce_l2",
        label="APGD-CE L2",
        norm="l2",
        kind="gradient",
        run=apgd("l2", cross_entropy),
        passes=per_step,
        summary="auto-PGD on the cross-entropy inside an L2 ball",
    ),
    Attack(
        name="apgd_dlr_l2",
        label="APGD-DLR L2",
        norm="l2",
        kind="gradient",
        run=apgd("l2", dlr),
        passes=per_step,
        summary="auto-PGD on the difference-of-logits ratio inside an L2 ball",
    ),
    Attack(
        name="apgd_t_l2",
        label="APGD-T L2",
        norm="l2",
        kind="gradient",
        run=apgd_targeted("l2"),
        passes=per_step_and_target,
        summary=f"{_APGD_T}, inside an L2 ball",
        targeted=True,
    ),
    Attack(
        name="fmn_l2",
        label="FMN L2",
        norm="l2",
        kind="minimal_norm",
        run=fmn("l2"),
        passes=per_step_and_target,
        summary=f"{_FMN}, in L2",
        targeted=True,
    ),
    Attack(
        name="square_l2",
        label="Square L2",
        norm="l2",
        kind="gradient_free",
        run=square("l2"),
        passes=per_query,
        summary=f"{_SQUARE}, in L2",
    ),
)

# The attack the minimal-perturbation search runs, once per bisection round. The search brackets each
# sample's boundary between points of the L∞ grid, so this has to be an iterating L∞ attack.
SEARCH_ATTACK = ATTACKS["pgd_linf"]
