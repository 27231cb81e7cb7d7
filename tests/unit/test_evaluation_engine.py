"""A whole evaluation: the curves, the worst case, the minimal perturbation, the flags and the gallery."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from cohort.domain.errors import InvalidInput
from cohort.evaluation.engine import GALLERY_SIZE, Artifacts, run_evaluation
from cohort.evaluation.results import EvaluationResult
from cohort.evaluation.spec import EvaluationSpec
from tests.unit.robustness_models import Quantised, SquareRooted, digits_test, trained_mlp

SPEC = EvaluationSpec(
    preset="custom",
    samples=120,
    steps=10,
    epsilons_linf=[0.0, 0.05, 0.1, 0.2],
    epsilons_l2=[0.0, 0.5, 1.0],
    batch_size=200,
)


Evaluated = tuple[EvaluationResult, Artifacts, list[float]]


def _changed(spec: EvaluationSpec, update: dict) -> EvaluationSpec:
    """The spec with some fields changed, validated again (a custom spec's norms follow its attacks)."""
    return EvaluationSpec.model_validate({**spec.model_dump(exclude={"norms"}), **update})


@pytest.fixture(scope="module")
def evaluation() -> Evaluated:
    reported: list[float] = []
    result, gallery = run_evaluation(trained_mlp(), digits_test(), SPEC, progress=reported.append)
    return result, gallery, reported


def test_epsilon_zero_gives_the_clean_accuracy_for_every_attack(evaluation: Evaluated) -> None:
    # Given a finished evaluation of a trained model
    result, _, _ = evaluation

    # Then at epsilon 0 every curve and the worst case equal the clean accuracy
    zero = [p.robust_accuracy for p in result.curves if p.epsilon == 0.0]
    zero += [p.robust_accuracy for p in result.worst_case if p.epsilon == 0.0]
    assert len(zero) == 6
    assert all(value == pytest.approx(result.clean.accuracy) for value in zero)
    assert result.clean.accuracy > 0.85


def test_worst_case_is_at_most_every_attack_of_its_norm(evaluation: Evaluated) -> None:
    # Given a finished evaluation
    result, _, _ = evaluation

    # Then at every epsilon the worst case is no higher than any attack of the same norm
    for worst in result.worst_case:
        same = [p for p in result.curves if p.norm == worst.norm and p.epsilon == worst.epsilon]
        assert same
        assert all(worst.robust_accuracy <= p.robust_accuracy for p in same)


def test_headline_is_the_linf_worst_case_at_the_digits_standard_budget(evaluation: Evaluated) -> None:
    # Given an evaluation of a digits model, whose declared standard L∞ budget is 0.1
    result, _, _ = evaluation

    # Then the headline reads the L∞ worst case at 0.1, and says where that budget comes from
    worst = {p.epsilon: p.robust_accuracy for p in result.worst_case if p.norm == "linf"}
    assert (result.headline.norm, result.headline.epsilon) == ("linf", 0.1)
    assert result.headline.robust_accuracy == worst[0.1]
    assert result.headline.robust_accuracy < result.clean.accuracy
    assert "standard budget for 8x8 grey digits" in result.headline.budget_source
    low, high = result.headline.ci95.low, result.headline.ci95.high
    assert low < result.headline.robust_accuracy < high


def test_minimal_perturbation_lies_within_the_searched_bracket(evaluation: Evaluated) -> None:
    # Given a finished evaluation with the minimal-perturbation search on
    result, _, _ = evaluation
    minimal = result.minimal_perturbation
    assert minimal is not None

    # Then its percentiles are ordered, inside (0, max epsilon], and the search was fine-grained
    known = [v for v in (minimal.p10, minimal.p25, minimal.median, minimal.p75, minimal.p90) if v is not None]
    assert known == sorted(known)
    assert all(0.0 < v <= minimal.max_epsilon for v in known)
    assert minimal.precision <= 0.1 / 2**6 + 1e-9
    # And the samples it never broke are exactly those the worst case leaves robust at the largest epsilon
    worst = {p.epsilon: p.robust_accuracy for p in result.worst_case if p.norm == "linf"}
    assert minimal.unbroken_fraction == pytest.approx(worst[0.2] / result.clean.accuracy)


def test_per_class_scores_cover_every_label_and_add_up(evaluation: Evaluated) -> None:
    # Given a finished evaluation
    result, _, _ = evaluation

    # Then every sample is in one class, and the class scores average to the overall ones
    assert sum(c.samples for c in result.per_class) == result.samples
    weighted = sum(c.samples * c.robust_accuracy for c in result.per_class) / result.samples
    assert weighted == pytest.approx(result.headline.robust_accuracy)


def test_gallery_pairs_are_aligned_broken_and_within_budget(evaluation: Evaluated) -> None:
    # Given a finished evaluation
    result, artifacts, _ = evaluation
    clean, adversarial = artifacts.gallery_clean, artifacts.gallery_adversarial

    # Then it holds up to 8 aligned pairs, each misclassified after a perturbation within the headline epsilon
    assert 0 < len(result.gallery) <= GALLERY_SIZE
    assert clean.shape == adversarial.shape == (len(result.gallery), 1, 8, 8)
    moved = (adversarial - clean).abs().flatten(1).amax(dim=1)
    assert torch.all(moved <= result.headline.epsilon + 1e-6)
    assert all(item.adversarial_prediction != item.label for item in result.gallery)
    assert len({item.label for item in result.gallery}) > 1


def test_progress_rises_to_one(evaluation: Evaluated) -> None:
    # Given the fractions reported during the run
    _, _, reported = evaluation

    # Then there were many, they never fell, and the last was 1
    assert len(reported) > 10
    assert reported == sorted(reported)
    assert reported[-1] == 1.0


def test_result_is_json_and_round_trips(evaluation: Evaluated) -> None:
    # Given a finished evaluation, when it is serialised and read back, then nothing changes
    result, _, _ = evaluation
    assert EvaluationResult.model_validate(json.loads(result.model_dump_json())) == result


def test_a_normal_model_raises_no_flag(evaluation: Evaluated) -> None:
    # Given a plainly trained model, then every check that ran passed and the headline is reliable
    result, _, _ = evaluation
    assert result.checks
    assert result.flags == []
    assert all(check.passed for check in result.checks)
    assert (result.headline.reliable, result.headline.advice) == (True, None)


def test_the_per_sample_rows_agree_with_the_worst_case(evaluation: Evaluated) -> None:
    # Given a finished evaluation's per-sample rows
    result, artifacts, _ = evaluation
    rows = artifacts.per_sample

    # Then there is one per sample, and each worst-case column averages to its point of the curve
    assert [row["index"] for row in rows] == list(range(result.samples))
    for point in result.worst_case:
        column = [bool(row[f"robust_{point.norm}_{point.epsilon:g}"]) for row in rows]
        assert sum(column) / len(rows) == pytest.approx(point.robust_accuracy)
    # And a sample the model got wrong is robust nowhere and has no minimal perturbation
    wrong = [row for row in rows if not row["clean_correct"]]
    assert all(row["minimal_linf"] is None for row in wrong)
    assert all(not row["robust_linf_0.05"] for row in wrong)


def test_the_manifest_records_how_every_attack_ran(evaluation: Evaluated) -> None:
    # Given a finished evaluation, then the manifest has each attack's settings and the libraries
    result, _, _ = evaluation
    runs = {run.attack: run for run in result.manifest.attacks}
    assert list(runs) == SPEC.attacks
    assert (runs["pgd_linf"].steps, runs["pgd_linf"].relative_step) == (10, pytest.approx(0.25))
    assert (runs["fgsm"].steps, runs["fgsm"].restarts) == (None, 1)
    assert not any(run.cascaded for run in runs.values())
    assert {"cohort", "torch", "numpy", "python"} <= result.manifest.libraries.keys()
    assert (result.manifest.seed, result.manifest.samples) == (SPEC.seed, 120)


def test_a_cascade_attacks_only_what_the_attacks_before_it_left_robust() -> None:
    # Given the fast preset, whose attacks run one after the other on what the earlier ones missed
    spec = EvaluationSpec(preset="fast", norms=["linf"], samples=80, minimal_perturbation=False)

    # When it evaluates the trained model
    result, _ = run_evaluation(trained_mlp(), digits_test(80), spec, device=torch.device("cpu"))

    # Then each attack's curve is cumulative and never above the one before it, and the last is the worst case
    curves: dict[str, dict[float, float]] = {}
    for point in result.curves:
        assert point.cumulative
        curves.setdefault(point.attack, {})[point.epsilon] = point.robust_accuracy
    names = list(curves)
    assert names == spec.attacks
    for earlier, later in itertools.pairwise(names):
        assert all(curves[later][eps] <= curves[earlier][eps] for eps in curves[later])
    worst = {p.epsilon: p.robust_accuracy for p in result.worst_case}
    assert curves[names[-1]] == worst
    # And where the first attack broke every sample, the later ones keep its adversarials' confidence
    confidence = {(p.attack, p.epsilon): p.mean_adversarial_confidence for p in result.curves}
    assert curves[names[0]][0.3] == 0.0
    assert all(confidence[(name, 0.3)] == confidence[(names[0], 0.3)] for name in names)
    # And the headline says which preset and attacks it stands on, and that it is not the standard
    assert (result.headline.preset, result.headline.standard, result.headline.attacks) == (
        "fast",
        False,
        names,
    )


def test_the_headline_budget_joins_a_grid_that_lacks_it() -> None:
    # Given a grid without the digits' standard budget of 0.1
    spec = _changed(SPEC, {"epsilons_linf": [0.0, 0.05, 0.2], "minimal_perturbation": False})

    # When the evaluation runs
    result, _ = run_evaluation(trained_mlp(), digits_test(60), _changed(spec, {"samples": 60}))

    # Then 0.1 was attacked too, and the headline is read there
    assert result.headline.epsilon == 0.1
    assert sorted({p.epsilon for p in result.worst_case if p.norm == "linf"}) == [0.0, 0.05, 0.1, 0.2]


def test_a_quantising_model_is_flagged_for_zero_gradients() -> None:
    # Given a model whose input rounding has a zero gradient everywhere
    model = Quantised(trained_mlp())
    spec = _changed(SPEC, {"attacks": ["pgd_linf"], "minimal_perturbation": False, "samples": 60})

    # When it is evaluated
    result, _ = run_evaluation(model, digits_test(60), spec)

    # Then the zero-gradient flag explains that the robustness is not measured
    codes = {flag.code: flag.message for flag in result.flags}
    assert "zero_gradients" in codes
    assert "exactly zero" in codes["zero_gradients"]
    assert result.headline.reliable is False


def test_a_model_with_infinite_gradients_is_flagged_and_attacks_stay_in_budget() -> None:
    # Given a model whose square root has an infinite gradient at 0-valued pixels
    model = SquareRooted(trained_mlp())
    spec = _changed(SPEC, {"attacks": ["fgsm", "pgd_linf"], "minimal_perturbation": False, "samples": 60})

    # When it is evaluated
    result, artifacts = run_evaluation(model, digits_test(60), spec)

    # Then the non-finite flag is raised, and the gallery's adversarials are still finite and in budget
    assert "non_finite_gradients" in {flag.code for flag in result.flags}
    clean, adversarial = artifacts.gallery_clean, artifacts.gallery_adversarial
    assert torch.isfinite(adversarial).all()
    assert torch.all((adversarial - clean).abs() <= result.headline.epsilon + 1e-6)


def test_fgsm_beating_pgd_is_flagged() -> None:
    # Given PGD crippled to one tiny step, against FGSM's full-epsilon step
    spec = _changed(
        SPEC, {"attacks": ["fgsm", "pgd_linf"], "steps": 1, "step_size": 0.05, "random_start": False}
    )

    # When the model is evaluated
    result, _ = run_evaluation(trained_mlp(), digits_test(), _changed(spec, {"minimal_perturbation": False}))

    # Then FGSM's clear lead is flagged
    assert "fgsm_beats_pgd" in {flag.code for flag in result.flags}


def test_restarts_never_make_the_attack_weaker() -> None:
    # Given one and three restarts of PGD with the same seed
    one = _changed(SPEC, {"attacks": ["pgd_linf"], "minimal_perturbation": False, "steps": 3})
    three = _changed(one, {"restarts": 3})

    # When each evaluates the model
    single, _ = run_evaluation(trained_mlp(), digits_test(), one)
    multiple, _ = run_evaluation(trained_mlp(), digits_test(), three)

    # Then the worst over restarts leaves no more samples robust at any epsilon
    for a, b in zip(single.curves, multiple.curves, strict=True):
        assert b.robust_accuracy <= a.robust_accuracy


def test_evaluation_runs_on_the_requested_device_and_only_the_requested_samples() -> None:
    # Given an explicit CPU device and fewer samples than the data holds
    spec = _changed(SPEC, {"attacks": ["fgsm"], "samples": 30, "minimal_perturbation": False})

    # When the evaluation runs
    result, _ = run_evaluation(trained_mlp(), digits_test(100), spec, device=torch.device("cpu"))

    # Then it reports that device and that sample count, and no minimal perturbation
    assert (result.device, result.samples, result.clean.total) == ("cpu", 30, 30)
    assert result.minimal_perturbation is None


def test_a_model_that_gets_everything_wrong_yields_zero_curves_and_no_gallery() -> None:
    # Given a model that always answers 0, on samples none of which is a 0
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    torch.nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.arange(10, 0, -1, dtype=torch.float32))
    data = digits_test(200)
    keep = data.labels != 0
    data = type(data)(data.inputs[keep], data.labels[keep], data.name)

    # When it is evaluated
    result, artifacts = run_evaluation(model, data, SPEC)

    # Then nothing is attacked: every figure is zero, nothing is searched and the gallery is empty
    assert result.clean.correct == 0
    assert all(p.robust_accuracy == 0.0 for p in [*result.curves, *result.worst_case])
    assert result.minimal_perturbation is not None
    assert result.minimal_perturbation.median is None
    assert (result.gallery, len(artifacts.gallery_clean)) == ([], 0)


class _MemoryBound(torch.nn.Module):
    """Runs out of memory, as an accelerator does, on passes of more than ``max_rows`` rows."""

    def __init__(self, inner: torch.nn.Module, max_rows: int) -> None:
        super().__init__()
        self.inner, self.max_rows = inner, max_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > self.max_rows:
            raise torch.OutOfMemoryError(f"out of memory: tried to allocate for {len(x)} rows")
        return self.inner(x)


def test_running_out_of_memory_fails_at_once_naming_the_batch_size_to_lower() -> None:
    # Given a model and a device that hold at most 64 rows per pass
    spec = _changed(SPEC, {"attacks": ["fgsm"], "samples": 40, "minimal_perturbation": False})

    # When the evaluation asks for 128 rows per pass
    with pytest.raises(InvalidInput) as refused:
        run_evaluation(_MemoryBound(trained_mlp(), 64), digits_test(40), _changed(spec, {"batch_size": 128}))

    # Then it fails as no retry can mend, saying what to change; and with that change it runs
    assert "ran out of CPU memory at batch_size 128" in refused.value.message
    assert "smaller batch_size" in refused.value.message
    result, _ = run_evaluation(
        _MemoryBound(trained_mlp(), 64), digits_test(40), _changed(spec, {"batch_size": 64})
    )
    assert result.clean.total == 40
