"""Models that hide their gradients do not get a reassuring headline.

Each masked model wraps the trained digits MLP in layers the architecture spec accepts, so the true
robustness is at most the MLP's, yet gradient attacks on the cross-entropy see a model that looks
robust (the issue's cases: scaled logits, a steep input quantiser with and without a faint smooth
path, exactly zero gradients). A whole evaluation must mark the headline unreliable, name the checks
that failed and say what to try; the trained and the adversarially trained MLP must pass every check.
The ``fast`` preset in L∞ keeps this quick; it has the gradient-free attack the checks compare with.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from cohort.evaluation.engine import run_evaluation
from cohort.evaluation.results import EvaluationResult
from cohort.evaluation.spec import EvaluationSpec
from tests.unit import robustness_models as models

SAMPLES = 150
SPEC = EvaluationSpec(preset="fast", norms=["linf"], samples=SAMPLES, minimal_perturbation=False)


def _evaluate(model: nn.Module) -> EvaluationResult:
    result, _ = run_evaluation(model, models.digits_test(SAMPLES), SPEC, device=torch.device("cpu"))
    return result


MASKED: dict[str, tuple[Callable[[], nn.Module], set[str]]] = {
    "logits-x3": (lambda: models.scaled_logits(3), {"saturated_loss"}),
    "logits-x10": (lambda: models.scaled_logits(10), {"saturated_loss"}),
    "quantiser": (
        lambda: models.saturating_quantiser(faint=False),
        {"saturated_loss", "gradient_free_stronger"},
    ),
    "quantiser-with-faint-path": (
        lambda: models.saturating_quantiser(faint=True),
        {"saturated_loss", "gradient_free_stronger"},
    ),
    "zero-gradients": (
        models.zero_gradient_quantiser,
        {"saturated_loss", "zero_gradients", "gradient_free_stronger", "unbounded_budget_robust"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MASKED))
def test_a_model_that_hides_its_gradients_gets_an_unreliable_headline(name: str) -> None:
    # Given a masked model built from allowed layers
    build, expected = MASKED[name]

    # When it is evaluated
    result = _evaluate(build())

    # Then the checks that see its masking fail, and the headline says it is not reliable and what to try
    failed = {check.code for check in result.checks if not check.passed}
    assert expected <= failed
    assert {flag.code for flag in result.flags} == failed
    assert result.headline.reliable is False
    assert "upper bound" in (result.headline.advice or "")


@pytest.mark.slow
@pytest.mark.parametrize(
    "build", [models.trained_mlp, models.adversarially_trained_mlp], ids=["trained", "pgd-trained"]
)
def test_an_honest_model_passes_every_check_and_keeps_a_reliable_headline(
    build: Callable[[], nn.Module],
) -> None:
    # Given an ordinary and an adversarially trained model, when each is evaluated
    result = _evaluate(build())

    # Then every check ran and passed, and the headline stands
    assert {check.code for check in result.checks} >= {
        "saturated_loss",
        "zero_gradients",
        "gradient_free_stronger",
        "unbounded_budget_robust",
        "non_monotone",
    }
    assert all(check.passed for check in result.checks), [c.finding for c in result.checks if not c.passed]
    assert (result.headline.reliable, result.headline.advice, result.flags) == (True, None, [])


@pytest.mark.slow
def test_scaling_the_logits_does_not_raise_the_headline() -> None:
    # Given the trained MLP and the same MLP with its logits times 5: the same predictions everywhere
    honest, scaled = _evaluate(models.trained_mlp()), _evaluate(models.scaled_logits(5))

    # Then the ensemble (its DLR-based attacks are blind to the scale) finds the same robust accuracy,
    # within two samples, where cross-entropy PGD alone reported far more
    assert abs(scaled.headline.robust_accuracy - honest.headline.robust_accuracy) <= 2 / SAMPLES
