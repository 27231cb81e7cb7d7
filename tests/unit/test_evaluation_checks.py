"""The gradient-masking checks: each on made-up evidence, then the saturated loss on real models, and
proof that the masked test models do hide robustness that is not there."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional

from cohort.evaluation.attacks import ATTACKS, AttackSettings, GradientStats
from cohort.evaluation.checks import (
    GRADIENT_FLOOR,
    AttackOutcome,
    Coverage,
    Evidence,
    Kind,
    flags,
    headline_advice,
    run_checks,
    saturation,
)
from cohort.evaluation.results import Check
from tests.unit.robustness_models import (
    adversarially_trained_mlp,
    digits_test,
    saturating_quantiser,
    scaled_logits,
    trained_mlp,
    zero_gradient_quantiser,
)

SAMPLES = 100


def evidence(
    losses: torch.Tensor | None = None,
    norms: torch.Tensor | None = None,
    stats: GradientStats | None = None,
    attacks: tuple[AttackOutcome, ...] = (),
    coverage: tuple[Coverage, ...] = (),
) -> Evidence:
    """Healthy evidence on 100 samples (losses 1e-3, gradients 0.1, no zero rows), with what is given."""
    return Evidence(
        clean_losses=torch.full((SAMPLES,), 1e-3) if losses is None else losses,
        clean_gradient_norms=torch.full((SAMPLES,), 0.1) if norms is None else norms,
        input_size=64,
        gradient_stats=stats or GradientStats(rows=1000),
        attacks=attacks,
        coverage=coverage,
    )


def outcome(
    label: str,
    kind: Kind,
    robust: list[list[bool]],
    epsilons: tuple[float, ...] = (0.1,),
    cumulative: bool = False,
) -> AttackOutcome:
    return AttackOutcome(
        name=label.lower(),
        label=label,
        norm="linf",
        kind=kind,
        epsilons=epsilons,
        robust=torch.tensor(robust),
        cumulative=cumulative,
    )


def robust_except(broken: int, total: int = SAMPLES) -> list[list[bool]]:
    """One epsilon's outcomes: the first ``broken`` samples misclassified, the rest robust."""
    return [[i >= broken] for i in range(total)]


def the(code: str, checks: list[Check]) -> Check:
    (check,) = [c for c in checks if c.code == code]
    return check


def test_a_check_with_nothing_to_look_at_is_left_out() -> None:
    # Given evidence with no correct samples, no attacked rows, no attack outcomes and no coverage
    empty = evidence(losses=torch.empty(0), norms=torch.empty(0), stats=GradientStats())

    # Then no check claims anything
    assert run_checks(empty) == []


def test_healthy_evidence_passes_and_states_what_was_measured() -> None:
    # Given a healthy model's evidence with a PGD curve and the coverage measured
    pgd = outcome("PGD", "gradient", [[True, i < 40] for i in range(SAMPLES)], epsilons=(0.1, 0.2))
    checks = run_checks(
        evidence(attacks=(pgd,), coverage=(Coverage(norm="linf", epsilon=1.0, robust=0, samples=50),))
    )

    # Then every check that could run passed, with its finding and no advice, and there is no headline advice
    assert [c.code for c in checks] == [
        "saturated_loss",
        "zero_gradients",
        "non_finite_gradients",
        "unbounded_budget_robust",
        "non_monotone",
    ]
    assert all(c.passed and c.advice is None for c in checks)
    assert "0 of 100 correctly classified samples (0.0%)" in the("saturated_loss", checks).finding
    assert "0 of 50 samples" in the("unbounded_budget_robust", checks).finding
    assert flags(checks) == []
    assert headline_advice(checks) is None


@pytest.mark.parametrize(("saturated", "passed"), [(10, True), (30, False)])
def test_saturated_loss_fails_when_many_gradients_are_below_the_floor(saturated: int, passed: bool) -> None:
    # Given samples of which some have a zero loss and a gradient far below the floor
    losses = torch.tensor([0.0] * saturated + [1e-3] * (SAMPLES - saturated))
    norms = torch.tensor([GRADIENT_FLOOR / 100] * saturated + [0.1] * (SAMPLES - saturated))

    # When checked
    check = the("saturated_loss", run_checks(evidence(losses, norms)))

    # Then 10% passes and 30% fails, and the finding counts them
    assert check.passed is passed
    assert f"{saturated} of 100 correctly classified samples ({saturated:.1f}%)" in check.finding
    assert f"exactly 0 in float32 for {saturated}" in check.finding
    assert (check.advice is None) is passed


def test_a_gradient_too_small_for_its_loss_counts_as_saturated() -> None:
    # Given losses of 0.01 with gradients of 1e-4, which across the input's diagonal (8) move it by 8e-4
    losses = torch.full((SAMPLES,), 1e-2)
    norms = torch.tensor([1e-4] * 50 + [1e-1] * 50)

    # Then those samples count as saturated, though their gradient is far above the floor
    check = the("saturated_loss", run_checks(evidence(losses, norms)))
    assert not check.passed
    assert (
        f"0 an input gradient of the cross-entropy below {GRADIENT_FLOOR:g}, 50 one too small"
        in check.finding
    )


def test_gradient_checks_count_zero_and_non_finite_start_points() -> None:
    # Given healthy statistics, then both pass; given masking symptoms, then both fail with the counts
    healthy = run_checks(evidence(stats=GradientStats(rows=1000, zero=5, non_finite=0)))
    assert the("zero_gradients", healthy).passed
    assert the("non_finite_gradients", healthy).passed
    assert "5 of 1,000 attacked inputs (0.5%)" in the("zero_gradients", healthy).finding

    masked = run_checks(evidence(stats=GradientStats(rows=1000, zero=400, non_finite=2)))
    zero, non_finite = the("zero_gradients", masked), the("non_finite_gradients", masked)
    assert not zero.passed
    assert "400 of 1,000 attacked inputs (40.0%)" in zero.finding
    assert not non_finite.passed
    assert "for 2 of 1,000 attacked inputs" in non_finite.finding


@pytest.mark.parametrize(("broken", "passed"), [(1, True), (10, False)])
def test_gradient_free_attack_breaking_what_gradients_left_is_flagged(broken: int, passed: bool) -> None:
    # Given PGD and APGD-CE leaving every sample robust, each run on every sample, and Square breaking some
    attacks = (
        outcome("PGD", "gradient", robust_except(0)),
        outcome("APGD-CE", "gradient", robust_except(0)),
        outcome("Square", "gradient_free", robust_except(broken)),
    )

    # When checked
    check = the("gradient_free_stronger", run_checks(evidence(attacks=attacks)))

    # Then one sample in 100 is within the margin and noise, ten are not; the finding names attacks and counts
    assert check.passed is passed
    assert f"{broken} of 100" in check.finding
    assert "(PGD, APGD-CE)" in check.finding


def test_gradient_free_attack_breaking_nothing_more_is_said_plainly() -> None:
    # Given Square breaking nothing the gradient attacks had left robust
    attacks = (
        outcome("PGD", "gradient", robust_except(3)),
        outcome("Square", "gradient_free", robust_except(3)),
    )

    # Then the check passes and says so, without naming an epsilon at which nothing happened
    check = the("gradient_free_stronger", run_checks(evidence(attacks=attacks)))
    assert check.passed
    assert "broke no sample that every gradient attack (PGD) had left robust" in check.finding
    assert "epsilon 0" not in check.finding


def test_gradient_free_check_reads_a_cascade_against_the_attacks_before_it() -> None:
    # Given a cascade: APGD-CE leaves 60 of 100 robust, Square (cumulative) leaves 45 of them, and a
    # gradient attack after Square (whose cumulative outcome includes Square's) leaves 40
    attacks = (
        outcome("APGD-CE", "gradient", robust_except(40), cumulative=True),
        outcome("Square", "gradient_free", robust_except(55), cumulative=True),
        outcome("APGD-T", "gradient", robust_except(60), cumulative=True),
    )

    # Then Square is credited with the 15 it broke among the 60 APGD-CE had left
    check = the("gradient_free_stronger", run_checks(evidence(attacks=attacks)))
    assert not check.passed
    assert "at L∞ epsilon 0.1, 15 of 100 (15.0%)" in check.finding
    assert "(APGD-CE)" in check.finding


def test_gradient_free_check_needs_both_kinds_of_attack() -> None:
    # Given only a gradient-free attack, or only gradient attacks, then the check does not run
    square = outcome("Square", "gradient_free", robust_except(10))
    pgd = outcome("PGD", "gradient", robust_except(0))
    for attacks in [(square,), (pgd,)]:
        assert "gradient_free_stronger" not in {c.code for c in run_checks(evidence(attacks=attacks))}


@pytest.mark.parametrize(("robust", "passed"), [(0, True), (2, True), (12, False)])
def test_robust_accuracy_must_vanish_at_a_budget_covering_the_input_range(robust: int, passed: bool) -> None:
    # Given the gradient attacks' outcome at L∞ epsilon 1 on 100 samples
    coverage = Coverage(norm="linf", epsilon=1.0, robust=robust, samples=100)

    # Then a few robust samples are within noise and the margin, twelve are not
    check = the("unbounded_budget_robust", run_checks(evidence(coverage=(coverage,))))
    assert check.passed is passed
    assert f"At L∞ epsilon 1, a budget that reaches any input, the gradient attacks left {robust} of 100" in (
        check.finding
    )


def test_a_curve_rising_with_epsilon_fails_and_is_named() -> None:
    # Given an attack that breaks 30 of 40 samples at 0.1 but none at 0.2, beside one that breaks none
    rising = outcome("PGD", "gradient", [[i >= 30, True] for i in range(40)], (0.1, 0.2))
    flat = outcome("FGSM", "single_step", [[True, True]] * 40, (0.1, 0.2))

    # Then the rise is named with its accuracies, for the attack and for the worst case of the norm
    check = the("non_monotone", run_checks(evidence(attacks=(rising, flat))))
    assert not check.passed
    assert "PGD from 25.0% at epsilon 0.1 to 100.0% at 0.2" in check.finding
    assert "worst case L∞ from 25.0% at epsilon 0.1 to 100.0% at 0.2" in check.finding
    assert "FGSM from" not in check.finding


def test_a_falling_curve_passes_and_says_what_was_checked() -> None:
    # Given one attack whose accuracy falls from 100% to 25%
    falling = outcome("PGD", "gradient", [[True, i >= 30] for i in range(40)], (0.1, 0.2))

    # Then the check passes on its one curve (a single attack is its norm's worst case)
    check = the("non_monotone", run_checks(evidence(attacks=(falling,))))
    assert check.passed
    assert "On the one curve (PGD)" in check.finding


def test_single_step_beating_iterative_is_flagged_only_where_both_ran() -> None:
    # Given 40 samples at one epsilon: FGSM breaks 20 that PGD leaves robust
    fgsm = outcome("FGSM", "single_step", robust_except(20, 40))
    pgd = outcome("PGD", "gradient", robust_except(0, 40))

    # Then the check fails and names the epsilon and the counts
    check = the("fgsm_beats_pgd", run_checks(evidence(attacks=(fgsm, pgd))))
    assert not check.passed
    assert "at epsilon 0.1, FGSM broke 20 samples that PGD left robust, and PGD 0" in check.finding

    # And with the roles swapped it passes
    swapped = (
        outcome("FGSM", "single_step", robust_except(0, 40)),
        outcome("PGD", "gradient", robust_except(20, 40)),
    )
    assert the("fgsm_beats_pgd", run_checks(evidence(attacks=swapped))).passed

    # And without an iterative attack that ran on every sample there is no such check
    cascaded = outcome("PGD", "gradient", robust_except(0, 40), cumulative=True)
    for attacks in [(fgsm,), (fgsm, cascaded)]:
        assert "fgsm_beats_pgd" not in {c.code for c in run_checks(evidence(attacks=attacks))}


def test_failed_checks_become_flags_and_one_sentence_of_advice() -> None:
    # Given a saturated loss and a rising curve
    losses, norms = torch.zeros(SAMPLES), torch.zeros(SAMPLES)
    rising = outcome("PGD", "gradient", [[i >= 30, True] for i in range(40)], (0.1, 0.2))
    checks = run_checks(evidence(losses, norms, attacks=(rising,)))

    # Then each failed check is a flag that reads its finding and then its advice
    failed = [c for c in checks if not c.passed]
    assert [f.code for f in flags(checks)] == ["saturated_loss", "non_monotone"]
    assert [f.message for f in flags(checks)] == [f"{c.finding} {c.advice}" for c in failed]

    # And the headline gets one sentence naming what to try for both
    advice = headline_advice(checks)
    assert advice is not None
    assert advice.count(".") == 1
    assert advice.endswith(".")
    assert "saturates or blocks the gradient" in advice
    assert "more steps and restarts" in advice


def test_saturation_measures_a_gradient_too_small_to_square() -> None:
    # Given a linear classifier whose input gradient is about 1e-30, whose square underflows in float32
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1e-30, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        model.bias.copy_(torch.tensor([0.0, 0.0]))
    x, y = torch.ones(3, 4), torch.tensor([0, 1, 0])

    # When measured
    losses, norms = saturation(model, x, y)

    # Then the loss is the model's cross-entropy and the norm is 0.5e-30, not 0
    assert torch.equal(losses, functional.cross_entropy(model(x), y, reduction="none").detach())
    assert norms.tolist() == pytest.approx([0.5e-30] * 3, rel=1e-5)


def saturated_loss_of(model: nn.Module) -> Check:
    """The saturated-loss check on 200 digits test images, from the model's real losses and gradients."""
    data = digits_test(200)
    with torch.no_grad():
        correct = model(data.inputs).argmax(dim=1) == data.labels
    losses, norms = saturation(model, data.inputs[correct], data.labels[correct])
    return the("saturated_loss", run_checks(evidence(losses, norms)))


@pytest.mark.parametrize(
    "masked",
    [
        lambda: scaled_logits(3),
        lambda: scaled_logits(5),
        lambda: scaled_logits(10),
        lambda: saturating_quantiser(faint=False),
        lambda: saturating_quantiser(faint=True),
        zero_gradient_quantiser,
    ],
    ids=["logits x3", "logits x5", "logits x10", "steep quantiser", "faint quantiser", "zero gradients"],
)
def test_saturated_loss_fails_on_every_masked_model(masked: Callable[[], nn.Module]) -> None:
    # Given a model that hides its gradients behind a saturated softmax or a steep input stage,
    # then the saturated-loss check fails on its clean digits
    assert not saturated_loss_of(masked()).passed


@pytest.mark.parametrize("trained", [trained_mlp, adversarially_trained_mlp], ids=["trained", "PGD-trained"])
def test_saturated_loss_passes_on_trained_models(trained: Callable[[], nn.Module]) -> None:
    # Given a plainly or adversarially trained model, then the check passes
    assert saturated_loss_of(trained()).passed


@pytest.mark.parametrize(
    "masked",
    [
        lambda: saturating_quantiser(faint=False),
        lambda: saturating_quantiser(faint=True),
        zero_gradient_quantiser,
    ],
    ids=["steep quantiser", "faint quantiser", "zero gradients"],
)
def test_the_quantisers_hide_robustness_that_is_not_there(masked: Callable[[], nn.Module]) -> None:
    # Given a quantiser and those of 200 test digits it classifies correctly
    model, data = masked(), digits_test(200)
    with torch.no_grad():
        correct = model(data.inputs).argmax(dim=1) == data.labels
    x, y = data.inputs[correct], data.labels[correct]
    eps = torch.full((len(x),), 0.1)

    def robust(adversarial: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(adversarial).argmax(dim=1) == y).double().mean())

    def attack(name: str, target: nn.Module) -> torch.Tensor:
        settings = AttackSettings(
            steps=20, relative_step=2.5 / 20, random_start=True, generator=torch.Generator().manual_seed(0)
        )
        return ATTACKS[name].run(target, x.clone(), y, eps, settings)

    # When PGD attacks it at L∞ epsilon 0.1, and when the plain MLP's APGD-CE adversarials are replayed on it
    followed, transferred = robust(attack("pgd_linf", model)), robust(attack("apgd_ce", trained_mlp()))

    # Then following its own gradient leaves at least 20 points more robust than the transferred attack
    assert followed > transferred + 0.2
