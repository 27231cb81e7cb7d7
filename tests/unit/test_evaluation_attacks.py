"""The attacks: budgets respected, strength ordered as theory says, restarts and devices handled."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cohort.evaluation.attacks import ATTACKS, AttackSettings, GradientStats, _apgd_checkpoints
from cohort.evaluation.engine import attack_mode, pick_device
from tests.unit.robustness_models import digits_test, trained_mlp


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_mlp()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = digits_test(120)
    return data.inputs, data.labels


def _settings(steps: int = 10, seed: int = 0, random_start: bool = True) -> AttackSettings:
    return AttackSettings(
        steps=steps,
        relative_step=2.5 / steps,
        random_start=random_start,
        generator=torch.Generator().manual_seed(seed),
    )


def _robust_accuracy(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    with attack_mode(model):
        adversarial = ATTACKS[name].run(model, x, y, torch.full((len(x),), eps), _settings())
        return float((model(adversarial).argmax(dim=1) == y).double().mean())


@pytest.mark.parametrize("name", ["fgsm", "pgd_linf", "apgd_ce"])
def test_linf_attacks_stay_inside_the_epsilon_ball_and_the_unit_box(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a different epsilon on every row
    x, y = batch
    eps = torch.linspace(0.0, 0.3, len(x))

    # When the attack runs
    with attack_mode(model):
        adversarial = ATTACKS[name].run(model, x, y, eps, _settings())

    # Then no pixel moved more than its row's epsilon, and every pixel is in [0, 1]
    moved = (adversarial - x).abs().flatten(1).amax(dim=1)
    assert torch.all(moved <= eps + 1e-6)
    assert adversarial.min() >= 0.0
    assert adversarial.max() <= 1.0


def test_pgd_l2_stays_inside_the_l2_ball_and_the_unit_box(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given L2 budgets up to 2
    x, y = batch
    eps = torch.linspace(0.0, 2.0, len(x))

    # When PGD-L2 runs
    with attack_mode(model):
        adversarial = ATTACKS["pgd_l2"].run(model, x, y, eps, _settings())

    # Then each row's L2 distance is within its budget and the pixels within [0, 1]
    distance = torch.linalg.vector_norm((adversarial - x).flatten(1), dim=1)
    assert torch.all(distance <= eps + 1e-5)
    assert adversarial.min() >= 0.0
    assert adversarial.max() <= 1.0


def test_pgd_is_at_least_as_strong_as_fgsm_on_a_normal_model(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a trained model and a moderate budget
    x, y = batch

    # When FGSM and PGD attack the same samples
    fgsm = _robust_accuracy(model, "fgsm", x, y, 0.1)
    pgd = _robust_accuracy(model, "pgd_linf", x, y, 0.1)

    # Then PGD leaves no more samples correct than FGSM does, and it does break some
    assert pgd <= fgsm
    assert pgd < 0.9


def test_apgd_is_at_least_as_strong_as_pgd_on_average(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given the same step budget for both
    x, y = batch

    # When each attacks at several budgets
    gaps = [
        _robust_accuracy(model, "pgd_linf", x, y, eps) - _robust_accuracy(model, "apgd_ce", x, y, eps)
        for eps in (0.05, 0.08, 0.1, 0.15)
    ]

    # Then APGD's robust accuracy is, on average, no higher than PGD's
    assert sum(gaps) / len(gaps) >= 0.0


def test_attacks_at_epsilon_zero_leave_inputs_unchanged(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a zero budget
    x, y = batch

    # When every attack runs at it
    with attack_mode(model):
        outputs = {
            name: attack.run(model, x, y, torch.zeros(len(x)), _settings())
            for name, attack in ATTACKS.items()
        }

    # Then every attack returns the inputs themselves
    for name, adversarial in outputs.items():
        assert torch.equal(adversarial, x), name


def test_gradient_stats_count_rows_with_zero_and_non_finite_gradients() -> None:
    # Given a gradient batch: one normal row, one all-zero row, one with a NaN
    grad = torch.tensor([[0.5, -1.0], [0.0, 0.0], [float("nan"), 1.0]])
    stats = GradientStats()

    # When it is recorded
    stats.record(grad)

    # Then the zero and the non-finite rows are counted once each
    assert (stats.rows, stats.zero, stats.non_finite) == (3, 1, 1)


def test_apgd_checkpoints_follow_the_papers_schedule() -> None:
    # Given 100 iterations, when the checkpoints are computed
    points = sorted(_apgd_checkpoints(100))

    # Then they are p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of the run (Croce & Hein 2020)
    assert points == [22, 41, 57, 70, 80, 87, 93, 99]


def test_attack_mode_freezes_parameters_and_restores_them(model: nn.Module) -> None:
    # Given a model in training mode with trainable parameters
    model.train()

    # When it is put in attack mode, then it is in eval mode with frozen parameters
    with attack_mode(model):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())

    # And afterwards it is as it was
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    model.eval()


def test_pick_device_is_cuda_only_when_available() -> None:
    # Given this machine, when a device is picked, then it matches CUDA's availability
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
