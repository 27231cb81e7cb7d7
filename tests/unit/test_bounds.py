"""The FL node's bounds on one report: the norm check, clipping and the weight caps, as pure functions."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from cohort.domain.errors import InvalidInput
from cohort.domain.weights import TensorSignature, decode, encode
from cohort.federated.bounds import (
    capped_weights,
    check_sample_count,
    clip_factor,
    first_non_finite,
    measure,
    update_norm,
)

SIGNATURE = TensorSignature({"a.weight": (3, 4), "a.bias": (3,), "b.weight": (2, 3)})


def _update(value: float = 0.0) -> dict[str, torch.Tensor]:
    return {name: torch.full(shape, value) for name, shape in SIGNATURE.shapes.items()}


# -- the norm --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoded", [False, True], ids=["separate-tensors", "one-span"])
def test_the_norm_is_taken_over_all_tensors_together(decoded: bool) -> None:
    # Given an update of 12 + 3 + 6 = 21 values, each 2
    update = _update(2.0)
    if decoded:
        update = decode(encode(update), SIGNATURE)

    # Then its norm is that of all 21 values as one vector, not of any one tensor
    assert update_norm(update) == pytest.approx(math.sqrt(21 * 4.0), rel=1e-6)


def test_the_norm_of_values_whose_squares_overflow_float32_is_still_exact() -> None:
    # Given an update with one value of 3e38 (its square overflows float32) and zeros elsewhere
    update = _update()
    update["a.bias"][1] = 3e38

    # When it is measured, then its norm is that value, not infinity
    assert update_norm(update) == pytest.approx(3e38, rel=1e-6)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_is_refused_naming_its_tensor(value: float) -> None:
    update = _update(0.1)
    update["b.weight"][1, 2] = value

    assert not math.isfinite(update_norm(update))
    with pytest.raises(InvalidInput, match=r"tensor 'b\.weight' holds NaN or infinite values"):
        measure(update, max_norm=1_000.0)


def test_an_update_over_the_norm_bound_is_refused_saying_the_norm_the_bound_and_what_to_do() -> None:
    # Given an update with one value of 3e38, the float32 overflow of issue 12
    update = _update()
    update["a.weight"][0, 0] = 3e38

    # When it is measured against a bound of 1,000, then it is refused with the figures and a way out
    with pytest.raises(InvalidInput) as refused:
        measure(update, max_norm=1_000.0)
    message = str(refused.value)
    assert "L2 norm is 3e+38" in message
    assert "max_update_norm of 1,000" in message
    assert "start the job with a larger max_update_norm" in message


def test_an_update_at_the_bound_is_measured_and_kept_as_it_is() -> None:
    update = _update()
    update["a.bias"][0] = 5.0

    measured = measure(update, max_norm=5.0)

    assert measured.norm == 5.0
    assert measured.tensors is update


# -- clipping --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("norm", "clip_norm", "factor"),
    [(10.0, None, 1.0), (10.0, 20.0, 1.0), (10.0, 10.0, 1.0), (40.0, 10.0, 0.25), (0.0, 1.0, 1.0)],
    ids=["no-clipping", "below", "at", "above", "zero-update"],
)
def test_an_update_is_scaled_only_if_its_norm_is_above_clip_norm(
    norm: float, clip_norm: float | None, factor: float
) -> None:
    assert clip_factor(norm, clip_norm) == factor


def test_a_clipped_update_has_the_clip_norm() -> None:
    generator = torch.Generator().manual_seed(0)
    update = {name: torch.randn(shape, generator=generator) * 50 for name, shape in SIGNATURE.shapes.items()}

    factor = clip_factor(update_norm(update), 3.0)

    assert update_norm({name: t * factor for name, t in update.items()}) == pytest.approx(3.0, rel=1e-5)


# -- the sample cap --------------------------------------------------------------------------------------


def test_a_report_over_the_sample_cap_is_refused_saying_the_cap_and_what_to_do() -> None:
    check_sample_count(10_000, 10_000)

    with pytest.raises(InvalidInput) as refused:
        check_sample_count(10_000_000, 10_000)

    message = str(refused.value)
    assert "num_samples is 10,000,000" in message
    assert "max_samples_per_report of 10,000" in message
    assert "report at most 10,000" in message


# -- the share cap ---------------------------------------------------------------------------------------


def _largest_share(weights: list[Fraction]) -> Fraction:
    return max(weights) / sum(weights)


def test_weights_within_the_share_cap_are_the_sample_counts() -> None:
    samples = [180, 175, 190, 170, 185]

    assert capped_weights(samples, 0.25) == samples


def test_nine_honest_reports_and_one_claiming_the_cap_leave_the_attacker_exactly_the_share() -> None:
    # Given nine honest devices with about 180 samples and one claiming 10,000
    samples = [180, 175, 190, 170, 185, 182, 178, 181, 179, 10_000]

    # When the weights are capped at a fifth of the round
    weights = capped_weights(samples, 0.2)

    # Then the attacker carries exactly a fifth, and the honest reports keep their counts
    assert weights[-1] / sum(weights) == Fraction(1, 5)
    assert weights[:-1] == samples[:-1]


def test_several_large_reports_are_all_brought_down_to_one_level() -> None:
    # Given two reports far larger than the others
    samples = [10, 10, 10, 10, 10, 10, 5_000, 9_000]

    # When no report may carry more than a quarter
    weights = capped_weights(samples, 0.25)

    # Then both large ones sit at the same level, each with exactly a quarter, the rest unchanged
    assert weights[-1] == weights[-2]
    assert weights[-1] / sum(weights) == Fraction(1, 4)
    assert weights[:-2] == samples[:-2]


def test_a_report_just_at_the_level_is_not_lowered() -> None:
    # 20 of 100 is exactly a fifth: no weight changes
    assert capped_weights([20, 20, 20, 20, 20], 0.2) == [20] * 5
    assert capped_weights([20, 10, 10, 30, 30], 0.3) == [20, 10, 10, 30, 30]


@pytest.mark.parametrize("samples", [[1_000, 10], [50, 50, 9_000], [7], [3, 3, 3, 3, 100]])
def test_with_fewer_reports_than_the_cap_allows_every_report_weighs_the_same(samples: list[int]) -> None:
    # Given fewer than 1 / 0.2 = 5 reports, or exactly 5 (then only equal weights meet the cap)
    weights = capped_weights(samples, 0.2)

    # Then all weigh the same, the smallest largest share possible
    assert len(set(weights)) == 1
    assert _largest_share(weights) == Fraction(1, len(samples))


def test_a_share_of_one_turns_the_cap_off() -> None:
    samples = [1, 10_000_000, 3]

    assert capped_weights(samples, 1.0) == samples


@pytest.mark.parametrize("seed", range(20))
def test_capped_weights_meet_the_cap_and_change_as_little_as_possible(seed: int) -> None:
    # Given random sample counts, some of them huge, and a random share cap
    rng = random.Random(seed)
    samples = [
        rng.choice([rng.randint(1, 300), rng.randint(1, 10_000_000)]) for _ in range(rng.randint(1, 40))
    ]
    share = rng.choice([0.05, 0.1, 0.2, 1 / 3, 0.5, 0.9])

    # When the weights are capped
    weights = capped_weights(samples, share)

    # Then no report gains weight, and none carries more than the share (or all are equal)
    assert all(0 < w <= n for w, n in zip(weights, samples, strict=True))
    cap = Fraction(share).limit_denominator(1_000_000)  # 1 / 3 means a third
    if len(samples) * cap >= 1:
        assert _largest_share(weights) <= cap
    else:
        assert len(set(weights)) == 1
    # And only the largest counts are lowered, all to one level (water-filling)
    lowered = [w for w, n in zip(weights, samples, strict=True) if w < n]
    if lowered:
        level = lowered[0]
        assert all(w == level for w in lowered)
        assert all(n <= level for w, n in zip(weights, samples, strict=True) if w == n)


@pytest.mark.parametrize(
    ("samples", "share", "message"),
    [([0, 5], 0.5, "positive sample count"), ([5, 5], 0.0, "max_share"), ([5, 5], 1.5, "max_share")],
)
def test_nonsense_inputs_to_the_share_cap_are_refused(samples: list[int], share: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        capped_weights(samples, share)


# -- the result ------------------------------------------------------------------------------------------


def test_a_non_finite_result_is_found_by_name() -> None:
    result = _update(1.0)
    assert first_non_finite(result) is None

    result["b.weight"][0, 0] = math.inf

    assert first_non_finite(result) == "b.weight"
