"""What a scientist may ask for: presets, their fixed settings, the norms and the headline's budget."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cohort.domain.errors import InvalidInput
from cohort.evaluation import budgets
from cohort.evaluation.attacks import ATTACKS
from cohort.evaluation.spec import PRESETS, EvaluationSpec


def test_the_default_is_the_standard_autoattack_ensemble_in_both_norms() -> None:
    # Given a spec that asks for nothing in particular
    spec = EvaluationSpec()

    # Then it runs AutoAttack's four attacks per norm, in its order, at its settings, cascaded
    assert spec.preset == "autoattack"
    assert spec.attacks_of("linf") == ["apgd_ce", "apgd_t", "fmn_linf", "square_linf"]
    assert spec.attacks_of("l2") == ["apgd_ce_l2", "apgd_t_l2", "fmn_l2", "square_l2"]
    assert (spec.steps, spec.restarts, spec.target_classes, spec.queries) == (100, 1, 9, 5000)
    assert spec.cascade
    assert spec.plan.standard
    assert spec.headline_norm == "linf"


def test_a_preset_in_one_norm_runs_only_that_norms_attacks() -> None:
    # Given the autoattack preset asked for in L2 only, then only its L2 attacks run and the headline is L2
    spec = EvaluationSpec(norms=["l2"])
    assert spec.attacks == ["apgd_ce_l2", "apgd_t_l2", "fmn_l2", "square_l2"]
    assert spec.headline_norm == "l2"


@pytest.mark.parametrize(
    "change",
    [{"steps": 50}, {"attacks": ["pgd_linf"]}, {"queries": 100}, {"restarts": 2}, {"target_classes": 3}],
)
def test_a_preset_refuses_a_change_to_what_it_fixes_and_says_how_to_choose(change: dict) -> None:
    # When a request changes what the autoattack preset fixes
    with pytest.raises(ValidationError) as refused:
        EvaluationSpec(**change)

    # Then it is refused, naming the field and the way out
    message = refused.value.errors()[0]["msg"]
    assert next(iter(change)) in message
    assert "preset to custom" in message


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_survives_being_stored_and_read_again(preset: str) -> None:
    # Given a spec as the API stores it, then reading it back gives the same spec
    spec = EvaluationSpec(preset=preset, headline_epsilon=0.1)
    assert EvaluationSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_custom_takes_the_chosen_attacks_and_settings_and_its_norms_follow_them() -> None:
    # Given a custom spec with one L∞ attack and its own settings
    spec = EvaluationSpec(preset="custom", attacks=["pgd_linf"], steps=7, restarts=2)

    # Then they are kept, each attack runs on every sample, and the norms are those of the attacks
    assert (spec.attacks, spec.steps, spec.restarts, spec.norms) == (["pgd_linf"], 7, 2, ["linf"])
    assert not spec.cascade
    assert spec.alpha == pytest.approx(2.5 / 7)
    # And norms that contradict the attacks are refused
    with pytest.raises(ValidationError, match="attacks you choose decide the norms"):
        EvaluationSpec(preset="custom", attacks=["pgd_linf"], norms=["l2"])


def test_every_preset_names_only_registered_attacks_of_both_norms() -> None:
    for plan in PRESETS.values():
        assert set(plan.attacks) <= set(ATTACKS)
        assert {ATTACKS[name].norm for name in plan.attacks} == {"linf", "l2"}


def test_a_declared_headline_epsilon_joins_its_grid() -> None:
    # Given a headline budget that is not on the L∞ grid, then the grid gains it, in order
    spec = EvaluationSpec(epsilons_linf=[0.0, 0.3], headline_epsilon=0.05)
    assert spec.epsilons_linf == [0.0, 0.05, 0.3]
    # And an L∞ budget beyond the pixel range is refused
    with pytest.raises(ValidationError, match="at most 1"):
        EvaluationSpec(headline_epsilon=2.0)


@pytest.mark.parametrize(
    ("shape", "linf", "l2"),
    [
        ([1, 8, 8], 0.1, 0.5),
        ([64], 0.1, 0.5),
        ([8, 8, 1], 0.1, 0.5),
        ([1, 28, 28], 0.3, 2.0),
        ([32, 32, 3], 8 / 255, 0.5),
        ([3, 224, 224], 4 / 255, 3.0),
    ],
)
def test_each_input_domain_has_its_declared_budget(shape: list[int], linf: float, l2: float) -> None:
    # Given a model's input shape, channels first or last, then the domain's budgets are found
    budget = budgets.standard_budget(shape)
    assert budget is not None
    assert (budget.epsilon("linf"), budget.epsilon("l2")) == (linf, l2)


def test_the_headline_budget_is_the_domains_unless_the_spec_declares_one() -> None:
    # Given a digits model, then the default headline is the digits' budget and joins the grid
    resolved, source = budgets.resolve(EvaluationSpec(epsilons_linf=[0.0, 0.2]), [1, 8, 8])
    assert (resolved.headline_epsilon, resolved.epsilons_linf) == (0.1, [0.0, 0.1, 0.2])
    assert "8x8 grey digits" in source
    # And a declared one wins, and says so
    resolved, source = budgets.resolve(EvaluationSpec(headline_epsilon=0.05), [1, 8, 8])
    assert resolved.headline_epsilon == 0.05
    assert "declared" in source


def test_a_domain_without_a_standard_budget_must_declare_one() -> None:
    # Given inputs of a shape no domain declares, when the spec leaves the budget out
    with pytest.raises(InvalidInput) as refused:
        budgets.resolve(EvaluationSpec(), [5, 17])

    # Then it is refused, saying which field to set and where to read how to choose it
    assert "headline_epsilon" in refused.value.message
    assert "docs/evaluation.md#standard-budgets" in refused.value.message
    # And declaring it is enough
    assert budgets.resolve(EvaluationSpec(headline_epsilon=0.2), [5, 17])[0].headline_epsilon == 0.2


@pytest.mark.parametrize(
    "update",
    [
        {"preset": "strongest"},
        {"norms": []},
        {"norms": ["linf", "linf"]},
        {"preset": "custom", "attacks": []},
        {"preset": "custom", "attacks": ["fgsm", "fgsm"]},
        {"preset": "custom", "attacks": ["cw"]},
        {"epsilons_linf": [0.1, 0.05]},
        {"epsilons_linf": [0.1, 0.1]},
        {"epsilons_linf": [1.5]},
        {"epsilons_l2": [float(i) for i in range(13)]},
        {"headline_epsilon": 0},
        {"samples": 0},
        {"preset": "custom", "steps": 201},
        {"preset": "custom", "queries": 0},
        {"surprise": 1},
    ],
)
def test_spec_refuses_invalid_requests(update: dict) -> None:
    # Given one invalid field, then the spec does not validate
    with pytest.raises(ValidationError):
        EvaluationSpec.model_validate(update)
