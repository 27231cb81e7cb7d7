"""The evaluator runs on CUDA when a GPU is present and on the CPU otherwise, with the same code.

No GPU is needed to check what makes that work: every tensor the engine creates is placed on the
evaluation's device (or, for bookkeeping, on the CPU) by name, never by the default device. With
the default device set to ``meta``, a tensor that relied on it would meet the evaluation's tensors
and fail, exactly as a CPU tensor meeting CUDA tensors would on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from cohort.evaluation import engine
from cohort.evaluation.attacks import ATTACKS
from cohort.evaluation.spec import EvaluationSpec
from tests.unit.robustness_models import digits_test, trained_mlp

# Every registered attack, briefly: each must place what it makes on the device it is given.
SPEC = EvaluationSpec(
    preset="custom",
    attacks=list(ATTACKS),
    samples=40,
    steps=3,
    target_classes=2,
    queries=20,
    epsilons_linf=[0.0, 0.05, 0.1],
    epsilons_l2=[0.0, 0.5],
    batch_size=32,
)


def test_every_tensor_the_engine_makes_is_on_a_device_it_names() -> None:
    # Given the same evaluation run once as usual
    expected, _ = engine.run_evaluation(trained_mlp(), digits_test(40), SPEC, device=torch.device("cpu"))

    # When the same model and data, loaded on the CPU as the worker loads them, are evaluated again
    # with the default device somewhere no computation can happen
    model, data = trained_mlp(), digits_test(40)
    with torch.device("meta"):
        result, artifacts = engine.run_evaluation(model, data, SPEC, device=torch.device("cpu"))

    # Then it completes with the same numbers, and hands back tensors on the CPU
    assert result.model_dump(exclude={"seconds"}) == expected.model_dump(exclude={"seconds"})
    assert artifacts.gallery_clean.device.type == artifacts.gallery_adversarial.device.type == "cpu"


@pytest.mark.parametrize(("cuda", "device"), [(True, "cuda"), (False, "cpu")])
def test_the_evaluator_takes_the_gpu_when_there_is_one(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, device: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert engine.pick_device() == torch.device(device)


def test_an_evaluation_runs_in_full_float32_with_deterministic_kernels_and_restores_the_settings() -> None:
    # Given a process whose cuDNN settings favour speed, as they are by default on a GPU
    before = engine.numerics()
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cudnn.benchmark = "tf32", True
    fast = engine.numerics()
    seen = []
    try:
        # When an evaluation runs, reporting its progress
        engine.run_evaluation(
            trained_mlp(),
            digits_test(40),
            SPEC,
            device=torch.device("cpu"),
            progress=lambda _: seen.append(engine.numerics()),
        )

        # Then throughout it, convolutions and matrix products were full float32 (no TF32) and
        # cuDNN deterministic, so a GPU gives the CPU's numbers and the same seed the same report
        assert seen
        assert set(seen) == {("ieee", "ieee", True, False)}
        # And afterwards the process has its own settings back
        assert engine.numerics() == fast
    finally:
        engine.set_numerics(before)
