"""One cost model: the API's work budget is the work the engine does and reports as its progress."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cohort.evaluation import attacks, jobs, work
from cohort.evaluation.attacks import base
from cohort.evaluation.engine import run_evaluation
from cohort.evaluation.spec import EvaluationSpec
from tests.unit.robustness_models import digits_test, trained_mlp

SAMPLES = 40
# At ε 0.5 every sample the model gets right is broken, so the search bisects all of them.
BASE = {
    "preset": "custom",
    "samples": SAMPLES,
    "steps": 3,
    "epsilons_linf": [0.0, 0.1, 0.5],
    "epsilons_l2": [0.0, 0.5, 4.0],
    "batch_size": 64,
    "minimal_perturbation": False,
}


def _spec(**changes: object) -> EvaluationSpec:
    """The base spec with some fields changed, validated as a request would be."""
    return EvaluationSpec.model_validate({**BASE, **changes})


@pytest.fixture
def gradient_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A running count of the rows every attack has taken an input gradient of."""
    counted = [0]
    original = base.loss_gradient

    def counting(
        model: nn.Module, x: torch.Tensor, objective: base.Objective, stats: base.GradientStats | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        counted[0] += len(x)
        return original(model, x, objective, stats)

    monkeypatch.setattr(base, "loss_gradient", counting)
    return counted


def _run(spec: EvaluationSpec, gradient_rows: list[int]) -> tuple[int, list[tuple[float, int]]]:
    """The samples attacked, and each progress report beside the gradient rows counted by then."""
    reported: list[tuple[float, int]] = []
    result, _ = run_evaluation(
        trained_mlp(), digits_test(SAMPLES), spec, progress=lambda f: reported.append((f, gradient_rows[0]))
    )
    if spec.minimal_perturbation:
        assert result.minimal_perturbation is not None
        assert result.minimal_perturbation.unbroken_fraction == 0.0  # every attacked sample was searched
    return result.clean.correct, reported


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({"attacks": ["fgsm"], "restarts": 3}, id="single-step, restarts do not apply"),
        pytest.param({"attacks": ["pgd_linf"], "restarts": 3}, id="iterative, restarts from random starts"),
        pytest.param(
            {"attacks": ["pgd_linf"], "restarts": 3, "random_start": False}, id="iterative, no random start"
        ),
        pytest.param({"attacks": ["pgd_l2"], "restarts": 2}, id="iterative L2"),
        pytest.param({"attacks": ["fgsm", "pgd_l2"], "minimal_perturbation": True}, id="search on"),
        pytest.param({"attacks": ["fgsm", "pgd_linf"], "minimal_perturbation": True}, id="search on, two"),
    ],
)
def test_progress_is_the_share_of_the_budgeted_gradient_work_done(
    update: dict, gradient_rows: list[int]
) -> None:
    # Given a spec, and the budget the cost model gives it for the samples the model gets right
    spec = _spec(**update)

    # When the engine runs it, counting every row it takes an input gradient of
    attacked, reported = _run(spec, gradient_rows)
    budget = work.gradient_passes(spec, attacked)

    # Then every progress report is the gradient work done so far over that budget, which it ends on
    assert budget > 0
    assert [fraction for fraction, _ in reported] == pytest.approx([rows / budget for _, rows in reported])
    assert reported[-1] == (1.0, budget)
    # And the API's budget, which counts every sample as attacked, bounds it
    assert jobs.gradient_passes(spec) == work.gradient_passes(spec, SAMPLES) >= budget


@pytest.mark.parametrize(
    ("name", "per_row"),
    [
        pytest.param("fgsm", 1, id="single step: one pass"),
        pytest.param("apgd_ce", 10 * 2, id="gradient: steps, per restart"),
        pytest.param("apgd_t", 10 * 3 * 2, id="targeted: steps per target class, per restart"),
        pytest.param("fmn_l2", 10 * 3, id="minimal norm: steps per target class, deterministic"),
        pytest.param("square_linf", 300 / 3 * 2, id="gradient free: a third of a pass per query"),
    ],
)
def test_each_attack_is_costed_by_its_effort(name: str, per_row: float) -> None:
    # Given 10 steps, 3 target classes, 300 queries and two restarts from random starts
    spec = _spec(steps=10, target_classes=3, queries=300, restarts=2)

    # Then each attack costs what its registry entry says of that effort, restarted where a restart
    # draws something new
    assert work.passes_per_row(attacks.ATTACKS[name], spec) == pytest.approx(per_row)


def test_the_search_is_budgeted_only_when_it_can_run() -> None:
    # Given an L∞ attack with the search asked for and without it, and an L2 attack with it asked for
    searching = _spec(attacks=["pgd_linf"], minimal_perturbation=True)
    without = _spec(attacks=["pgd_linf"])
    l2_only = _spec(attacks=["pgd_l2"], minimal_perturbation=True)

    # Then the search costs its bisection rounds of one run each, and nothing where there is no L∞ ε
    # to bracket
    search = SAMPLES * work.SEARCH_ITERATIONS * searching.steps
    assert jobs.gradient_passes(searching) == jobs.gradient_passes(without) + search
    assert not work.searches(l2_only)
    assert jobs.gradient_passes(l2_only) == jobs.gradient_passes(_spec(attacks=["pgd_l2"]))
    # And the engine agrees: it reports no minimal perturbation for an L2 evaluation
    result, _ = run_evaluation(trained_mlp(), digits_test(SAMPLES), l2_only)
    assert result.minimal_perturbation is None


def test_apgd_takes_one_gradient_per_run_at_its_start_beyond_its_budgeted_steps(
    gradient_rows: list[int],
) -> None:
    # Given APGD alone, with two restarts from random starts
    spec = _spec(attacks=["apgd_ce"], restarts=2)

    # When the engine runs it
    attacked, reported = _run(spec, gradient_rows)

    # Then it took `steps` gradients per run, as budgeted, plus one at each run's start point (the
    # coverage check's run included), which the budget (kept as published) leaves out; the progress
    # still ends at 1
    budget = work.gradient_passes(spec, attacked)
    rows = attacked * len(work.attacked_columns(spec.epsilons_linf))
    starts = rows * work.runs(attacks.ATTACKS["apgd_ce"], spec) + min(attacked, work.COVERAGE_SAMPLES)
    assert gradient_rows[0] == budget + starts
    assert reported[-1][0] == 1.0
