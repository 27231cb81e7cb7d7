"""Our PGD against an independent implementation, torchattacks (a test-only dependency).

On the same model, data, epsilon, step size and step count, robust accuracy
must agree within one percentage point. Without a random start both are
deterministic, so they must agree sample for sample up to float rounding; with
one, the random draws differ and only the accuracy can be compared.
"""

from __future__ import annotations

import pytest
import torch
import torchattacks

from cohort.evaluation.engine import run_evaluation
from cohort.evaluation.spec import EvaluationSpec
from tests.unit.robustness_models import digits_test, trained_mlp

STEPS = 10
RELATIVE_STEP = 0.25
SAMPLES = 450  # the whole test split: one sample is 0.22 points


def _ours(eps: float, random_start: bool) -> float:
    spec = EvaluationSpec(
        preset="custom",
        attacks=["pgd_linf"],
        epsilons_linf=[eps],
        samples=SAMPLES,
        steps=STEPS,
        step_size=RELATIVE_STEP,
        random_start=random_start,
        minimal_perturbation=False,
        seed=1,
    )
    result, _ = run_evaluation(trained_mlp(), digits_test(SAMPLES), spec, device=torch.device("cpu"))
    return result.curves[0].robust_accuracy


def _theirs(eps: float, random_start: bool) -> float:
    model, data = trained_mlp(), digits_test(SAMPLES)
    torch.manual_seed(1)
    attack = torchattacks.PGD(
        model, eps=eps, alpha=RELATIVE_STEP * eps, steps=STEPS, random_start=random_start
    )
    adversarial = attack(data.inputs, data.labels)
    with torch.no_grad():
        return float((model(adversarial).argmax(dim=1) == data.labels).double().mean())


@pytest.mark.parametrize("eps", [0.05, 0.1])
@pytest.mark.parametrize("random_start", [False, True], ids=["fixed-start", "random-start"])
def test_pgd_robust_accuracy_agrees_with_torchattacks_within_one_point(
    eps: float, random_start: bool
) -> None:
    # Given the same trained model, the digits test split and the same PGD settings
    # When both implementations attack
    ours, theirs = _ours(eps, random_start), _theirs(eps, random_start)

    # Then their robust accuracies differ by at most one percentage point, on a curve that is not trivial
    assert 0.05 < theirs < 0.95
    assert abs(ours - theirs) <= 0.01
