"""The ``autoattack`` preset against the reference AutoAttack, as a whole ensemble.

The reference is Croce and Hein's own code (``pyautoattack``, test-only: their repository's attack
modules repackaged unchanged), run in its standard version: APGD-CE, APGD-T, FAB-T and Square, worst
case per sample. Cohort's preset runs the same ensemble with FMN in FAB-T's place. On the same model,
samples and budget, the two robust accuracies must agree within one point, in L∞ and in L2, for a
standard and an adversarially trained model. The seeds differ in what they draw, so only the
accuracies are compared, not the samples.
"""

from __future__ import annotations

import pytest
import torch
from pyautoattack import AutoAttack
from torch import nn

from cohort.evaluation.engine import run_evaluation
from cohort.evaluation.spec import EvaluationSpec
from tests.unit.robustness_models import adversarially_trained_mlp, digits_test, trained_mlp

SAMPLES = 450  # the whole digits test split: one sample is 0.22 points
BUDGETS = {"linf": 0.1, "l2": 0.5}
MODELS = {"standard": trained_mlp, "adversarially-trained": adversarially_trained_mlp}


def _ours(model: nn.Module, norm: str, eps: float) -> float:
    spec = EvaluationSpec(
        norms=[norm],
        epsilons_linf=[0.0],
        epsilons_l2=[0.0],
        headline_epsilon=eps,
        samples=SAMPLES,
        minimal_perturbation=False,
        seed=0,
    )
    result, _ = run_evaluation(model, digits_test(SAMPLES), spec, device=torch.device("cpu"))
    return result.headline.robust_accuracy


def _reference(model: nn.Module, norm: str, eps: float) -> float:
    data = digits_test(SAMPLES)
    reference = AutoAttack(
        model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, version="standard", seed=0
    )
    adversarial, _ = reference.run_standard_evaluation(data.inputs, data.labels, batch_size=SAMPLES)
    with torch.no_grad():
        return float((model(adversarial).argmax(dim=1) == data.labels).double().mean())


@pytest.mark.slow
@pytest.mark.parametrize("norm", list(BUDGETS))
@pytest.mark.parametrize("trained", list(MODELS))
def test_the_autoattack_preset_agrees_with_the_reference_within_one_point(norm: str, trained: str) -> None:
    # Given one model, the digits test split and the budget, attacked by both ensembles
    eps = BUDGETS[norm]
    ours = _ours(MODELS[trained](), norm, eps)
    theirs = _reference(MODELS[trained](), norm, eps)

    # Then the robust accuracies differ by at most one point, on a curve that is not trivial
    assert 0.02 < theirs < 0.98
    assert abs(ours - theirs) <= 0.01, f"ours {ours:.4f}, reference {theirs:.4f}"
