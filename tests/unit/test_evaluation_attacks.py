"""The attacks: budgets respected, runs reproducible, strength ordered as theory says, saturated
softmaxes seen through, Square free of gradients, and the targeted and minimal-norm attacks keeping
what they promise."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cohort.evaluation.attacks import ATTACKS, AttackSettings, GradientStats, input_gradient
from cohort.evaluation.attacks.apgd import apgd_checkpoints
from cohort.evaluation.attacks.base import unit_l2_
from cohort.evaluation.engine import attack_mode, pick_device
from tests.unit.robustness_models import digits_test, scaled_logits, trained_mlp

# A budget per norm where the trained MLP is broken about half the time: large enough to tell an
# attack that works from one that does not, small enough that the curve is not flat at zero.
MODERATE = {"linf": 0.1, "l2": 1.0}
LARGEST = {"linf": 0.3, "l2": 2.0}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return trained_mlp()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    data = digits_test(120)
    return data.inputs, data.labels


def _settings(
    steps: int = 10, seed: int = 0, random_start: bool = True, target_classes: int = 3, queries: int = 100
) -> AttackSettings:
    """Few steps, targets and queries, so the tests stay fast; what needs more asks for it."""
    return AttackSettings(
        steps=steps,
        relative_step=2.5 / steps,
        random_start=random_start,
        generator=torch.Generator().manual_seed(seed),
        target_classes=target_classes,
        queries=queries,
    )


def _attack(
    model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, **settings: int
) -> torch.Tensor:
    eps = eps if isinstance(eps, torch.Tensor) else torch.full((len(x),), eps)
    with attack_mode(model):
        return ATTACKS[name].run(model, x, y, eps, _settings(**settings))


def _robust(model: nn.Module, adversarial: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(adversarial).argmax(dim=1) == y


def _robust_accuracy(
    model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, eps: float, **settings: int
) -> float:
    return float(_robust(model, _attack(model, name, x, y, eps, **settings), y).double().mean())


def _distances(adversarial: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    return torch.linalg.vector_norm(
        (adversarial - x).flatten(1), ord=float("inf") if norm == "linf" else 2, dim=1
    )


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_stays_inside_its_ball_and_the_unit_box(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a different epsilon on every row, from 0 to a large budget of the attack's norm
    x, y = batch
    norm = ATTACKS[name].norm
    eps = torch.linspace(0.0, LARGEST[norm], len(x))

    # When the attack runs
    adversarial = _attack(model, name, x, y, eps)

    # Then no row moved further than its epsilon in that norm, and every pixel is in [0, 1]
    assert torch.all(_distances(adversarial, x, norm) <= eps + 1e-5)
    assert adversarial.min() >= 0.0
    assert adversarial.max() <= 1.0


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_is_reproducible_for_a_seed(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given the same rows, budget and seed twice
    x, y = batch[0][:40], batch[1][:40]
    eps = MODERATE[ATTACKS[name].norm]

    # When the attack runs with each
    first, again = (_attack(model, name, x, y, eps, seed=7) for _ in range(2))

    # Then the same seed gives the same adversarials, to the last bit
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_breaks_an_undefended_model(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a model trained without any defence and a moderate budget
    x, y = batch
    clean = float(_robust(model, x, y).double().mean())

    # When the attack runs, even with few steps, targets and queries
    robust = _robust_accuracy(model, name, x, y, MODERATE[ATTACKS[name].norm], queries=500)

    # Then it breaks more than half of what the model got right
    assert robust < clean / 2


@pytest.mark.parametrize("shape", [[64], [8, 8], [3, 5, 7], [2, 1, 9]], ids=str)
def test_every_attack_takes_inputs_of_any_shape_a_model_may_declare(shape: list[int]) -> None:
    # Given a small classifier of vectors, single-channel images, or non-square multi-channel ones
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 5))
    x, y = torch.rand(20, *shape), torch.randint(0, 5, (20,))

    for name, attack in ATTACKS.items():
        # When each attack runs on them
        eps = LARGEST[attack.norm]
        adversarial = _attack(classifier, name, x, y, eps)

        # Then it returns adversarials of the same shape, inside the ball and the unit box
        assert adversarial.shape == x.shape, name
        assert torch.all(_distances(adversarial, x, attack.norm) <= eps + 1e-5), name
        assert 0.0 <= adversarial.min() <= adversarial.max() <= 1.0, name


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
    outputs = {name: _attack(model, name, x, y, 0.0) for name in ATTACKS}

    # Then every attack returns the inputs themselves
    for name, adversarial in outputs.items():
        assert torch.equal(adversarial, x), name


@pytest.mark.parametrize(
    "name",
    ["apgd_dlr", "apgd_t", "fmn_linf", "square_linf", "apgd_dlr_l2", "apgd_t_l2", "fmn_l2", "square_l2"],
)
def test_margin_based_attacks_see_throughscaled_logits(
    name: str, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given the trained model and copies whose logits are multiplied by 3 and 5: the same predictions
    # everywhere, so the same robustness, but softmaxes so saturated that cross-entropy gradients vanish
    x, y = batch
    eps = MODERATE[ATTACKS[name].norm] / 2

    # When the attack runs on each with the same seed
    original = _robust_accuracy(trained_mlp(), name, x, y, eps)
    scaled = [_robust_accuracy(scaled_logits(factor), name, x, y, eps) for factor in (3.0, 5.0)]

    # Then each gets the original's robust accuracy, to within a sample
    assert scaled == pytest.approx([original] * 2, abs=1 / len(x))


def test_l2_steps_give_tiny_gradients_their_full_length_and_zero_ones_none() -> None:
    # Given gradients far below float32's smallest normal square, an ordinary one and an all-zero one
    grads = torch.tensor([[3e-30, -4e-30], [3.0, 4.0], [0.0, 0.0]])

    # When they are turned into L2 step directions
    directions = unit_l2_(grads.clone())

    # Then the tiny and the ordinary gradient both get unit length, and the zero one stays zero
    assert torch.allclose(directions, torch.tensor([[0.6, -0.8], [0.6, 0.8], [0.0, 0.0]]))


def test_pgd_l2_moves_samples_whose_cross_entropy_gradient_is_tiny(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    # Given the model with logits times 5, where many correctly classified samples have a
    # cross-entropy gradient too small to square in float32
    x, y = batch
    scaled = scaled_logits(5.0)
    with attack_mode(scaled):
        grad, _, _ = input_gradient(scaled, x.clone(), y)
    size = grad.flatten(1).abs().amax(dim=1)
    tiny = (size > 0) & (torch.linalg.vector_norm(grad.flatten(1), dim=1) < 1e-12)
    assert tiny.sum() >= 10

    # When PGD-L2 takes one step from the clean input, of a quarter of the budget
    moved = _distances(_attack(scaled, "pgd_l2", x, y, 1.0, steps=1, random_start=False), x, "l2")

    # Then every such sample moved by the full step (as far as [0, 1] lets it: at least most of it),
    # and over ten steps the scaled model is as breakable as the original
    assert torch.all(moved[tiny] > 0.2)
    assert (
        _robust_accuracy(scaled, "pgd_l2", x, y, 1.0)
        <= _robust_accuracy(trained_mlp(), "pgd_l2", x, y, 1.0) + 0.02
    )


@pytest.mark.parametrize("name", ["square_linf", "square_l2"])
def test_square_never_takes_a_gradient(
    name: str, monkeypatch: pytest.MonkeyPatch, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a model that notes whether autograd was recording on each forward pass, and no way to
    # run a backward pass
    x, y = batch
    recording: list[bool] = []

    class Watched(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = trained_mlp()

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            recording.append(torch.is_grad_enabled())
            return self.inner(inputs)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Square took a gradient")

    monkeypatch.setattr(torch.autograd, "grad", refuse)
    monkeypatch.setattr(torch.Tensor, "backward", refuse)

    # When Square attacks
    adversarial = _attack(Watched(), name, x, y, MODERATE[ATTACKS[name].norm])

    # Then it made forward passes only, none of them recording a graph, and broke samples all the same
    assert recording
    assert not any(recording)
    assert not torch.equal(adversarial, x)


@pytest.mark.parametrize("name", ["square_linf", "square_l2"])
def test_square_spends_at_most_its_queries_on_each_row(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a model that counts the rows of every forward pass
    x, y = batch
    rows = [0]
    counted = nn.Sequential(model)
    counted.register_forward_pre_hook(lambda _, inputs: rows.__setitem__(0, rows[0] + len(inputs[0])))

    # When Square runs with a budget of 100 queries a row
    _attack(counted, name, x, y, MODERATE[ATTACKS[name].norm], queries=100)

    # Then it made no more than 100 per row, and fewer in all, since it stops on a row once it is broken
    assert rows[0] < 100 * len(x)


@pytest.mark.parametrize("name", ["apgd_t", "fmn_linf", "apgd_t_l2", "fmn_l2"])
def test_targeted_attacks_break_more_rows_with_more_target_classes(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given a budget where one target class does not break everything
    x, y = batch
    eps = MODERATE[ATTACKS[name].norm] / 2

    # When the attack tries one runner-up class, and then three, with the same seed
    one = ~_robust(model, _attack(model, name, x, y, eps, target_classes=1), y)
    three = ~_robust(model, _attack(model, name, x, y, eps, target_classes=3), y)

    # Then the rows the first target broke stay broken, and the other targets break more
    assert torch.all(three[one])
    assert three.sum() > one.sum()


@pytest.mark.parametrize("name", ["fmn_linf", "fmn_l2"])
def test_fmn_returns_an_adversarial_within_the_budget_or_the_clean_input(
    name: str, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # Given budgets from 0 to the moderate one
    x, y = batch
    norm = ATTACKS[name].norm
    eps = torch.linspace(0.0, MODERATE[norm], len(x))

    # When FMN attacks
    adversarial = _attack(model, name, x, y, eps)

    # Then each row is either its clean input or misclassified within its own budget
    unchanged = (adversarial == x).flatten(1).all(dim=1)
    broken = ~_robust(model, adversarial, y)
    assert torch.all(unchanged | broken)
    assert torch.all(_distances(adversarial, x, norm)[broken] <= eps[broken] + 1e-5)
    assert broken.any()
    assert unchanged.any()


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
    points = sorted(apgd_checkpoints(100))

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
