"""The attack registry: the spec, the API's schema and the engine all read it, so one entry adds an attack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from cohort.evaluation.attacks import ATTACKS, SEARCH_ATTACK, attack_registry
from cohort.evaluation.spec import PRESETS, EvaluationSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_the_spec_accepts_every_registered_attack(name: str) -> None:
    # Given a custom spec that asks for one registered attack, then it validates and keeps it
    assert EvaluationSpec(preset="custom", attacks=[name]).attacks == [name]


def test_the_spec_offers_every_registered_attack_and_no_more() -> None:
    # Given the spec's published schema
    schema = EvaluationSpec.model_json_schema()["properties"]["attacks"]

    # Then its enum is the registry, in the registry's order, and a request may list as many as it holds
    assert schema["items"]["enum"] == list(ATTACKS)
    assert schema["maxItems"] == len(ATTACKS)
    # And the words the website shows for each are the registry's
    assert schema["x-attacks"] == {
        attack.name: {"label": attack.label, "norm": attack.norm, "summary": attack.summary}
        for attack in ATTACKS.values()
    }


def test_the_spec_refuses_an_unknown_attack_naming_the_registered_ones() -> None:
    # When a spec asks for an attack nobody registered
    with pytest.raises(ValidationError) as refused:
        EvaluationSpec(preset="custom", attacks=["fgsm", "cw"])

    # Then the one error points at that entry and lists every attack there is, as the API's 422 will
    (error,) = refused.value.errors()
    assert (error["loc"], error["type"]) == (("attacks", 1), "literal_error")
    assert all(f"'{name}'" in error["msg"] for name in ATTACKS)


def test_the_spec_refuses_more_attacks_than_are_registered() -> None:
    # Given every registered attack and one of them again, then the list is too long as well as repeated
    with pytest.raises(ValidationError) as refused:
        EvaluationSpec(preset="custom", attacks=[*ATTACKS, next(iter(ATTACKS))])
    assert refused.value.errors()[0]["type"] == "too_long"


def test_a_registry_refuses_a_name_registered_twice() -> None:
    # Given two entries under one name, then building the registry fails and names it
    fgsm = ATTACKS["fgsm"]
    with pytest.raises(ValueError, match="repeated: fgsm"):
        attack_registry(fgsm, ATTACKS["pgd_linf"], fgsm)


def test_the_search_attack_is_a_registered_iterating_linf_attack() -> None:
    # The search bisects between points of the L∞ grid, one run of its attack per round
    assert ATTACKS[SEARCH_ATTACK.name] is SEARCH_ATTACK
    assert (SEARCH_ATTACK.norm, SEARCH_ATTACK.iterates) == ("linf", True)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_runs_registered_attacks(preset: str) -> None:
    # The presets are the one place outside the registry that names attacks: each name is registered
    assert set(PRESETS[preset].attacks) <= set(ATTACKS)


@pytest.mark.parametrize("module", ["engine", "work", "jobs", "metrics"])
def test_no_module_but_the_registry_and_the_presets_spells_an_attack_name(module: str) -> None:
    # Given a module that reads attacks, then it branches on their properties and never on a name
    source = (REPO / "cohort" / "evaluation" / f"{module}.py").read_text()
    assert [name for name in ATTACKS if f'"{name}"' in source or f"'{name}'" in source] == []


# A fresh interpreter registers the toy before anything else is imported, as an entry in attacks.py
# would be: the spec's Literal and the report's schema are built from the registry on import.
_TOY_EVALUATION = """
import json

from cohort.evaluation import attacks


def fast_gradient_l2(model, x, y, eps, settings):
    '''One input-gradient step of L2 length eps: FGSM's sibling in L2.'''
    grad, _, _ = attacks.input_gradient(model, x, y, settings.stats)
    shape = (-1, *([1] * (x.dim() - 1)))
    length = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
    return (x + grad * (eps / length).view(shape)).clamp(0.0, 1.0)


toy = attacks.Attack(
    name="fgm_l2",
    label="FGM L2",
    norm="l2",
    kind="single_step",
    run=fast_gradient_l2,
    passes=lambda effort: 1.0,
    summary="one gradient step of L2 length epsilon",
)
attacks.ATTACKS = attacks.attack_registry(*attacks.ATTACKS.values(), toy)

from cohort.evaluation.engine import run_evaluation
from cohort.evaluation.jobs import gradient_passes
from cohort.evaluation.spec import PRESETS, EvaluationSpec
from tests.unit.robustness_models import digits_test, trained_mlp

# PGD crippled to one short step, so the single-step toy clearly beats it
spec = EvaluationSpec.model_validate(
    {"preset": "custom", "attacks": ["fgm_l2", "pgd_l2"], "samples": 40, "steps": 1, "step_size": 0.05,
     "random_start": False, "epsilons_l2": [0.0, 1.0, 2.0]}
)
progress = []
result, _ = run_evaluation(trained_mlp(), digits_test(40), spec, progress=progress.append)
print(json.dumps({
    "curves": [[p.attack, p.norm, p.epsilon, p.robust_accuracy] for p in result.curves],
    "clean": result.clean.accuracy,
    "flags": [flag.model_dump() for flag in result.flags],
    "budget": gradient_passes(spec),
    "enum": EvaluationSpec.model_json_schema()["properties"]["attacks"]["items"]["enum"],
    "progress": progress[-1],
}))
"""


@pytest.mark.slow  # a fresh interpreter, which imports torch and trains the model again
def test_an_attack_added_to_the_registry_is_run_costed_and_flagged_with_no_other_change() -> None:
    # Given a toy single-step L2 attack added to a copy of the registry, and nothing else changed
    run = subprocess.run(
        [sys.executable, "-c", _TOY_EVALUATION],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)

    # When a spec asks for it beside PGD L2, then the spec accepts it and the API's enum lists it
    assert outcome["enum"] == [*ATTACKS, "fgm_l2"]
    # And the engine runs it over the L2 grid: the clean accuracy at 0, lower at the larger budgets
    toy = {epsilon: accuracy for attack, norm, epsilon, accuracy in outcome["curves"] if attack == "fgm_l2"}
    assert {norm for attack, norm, _, _ in outcome["curves"] if attack == "fgm_l2"} == {"l2"}
    assert toy[0.0] == outcome["clean"]
    assert toy[2.0] < outcome["clean"]
    # And the budget counts it as one pass per non-zero ε, beside PGD's single step at each and the
    # coverage check's single step on every sample
    assert outcome["budget"] == 40 * (2 * 1 + 2 * 1) + 40 * 1
    assert outcome["progress"] == 1.0
    # And beating the crippled iterative attack of its norm raises the single-step flag, naming it
    (flag,) = [flag for flag in outcome["flags"] if flag["code"] == "fgsm_beats_pgd"]
    assert "FGM L2" in flag["message"]
