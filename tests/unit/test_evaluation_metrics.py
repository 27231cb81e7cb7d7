"""The report's statistics: intervals, paired tests, worst case and percentiles."""

from __future__ import annotations

import math

import pytest
import torch

from cohort.evaluation.metrics import (
    minimal_perturbation_summary,
    per_class,
    significantly_more,
    wilson_interval,
    worst_case,
    worst_case_points,
)


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [(8, 10, 0.4902, 0.9433), (50, 100, 0.4038, 0.5962), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0)],
)
def test_wilson_interval_matches_published_values(
    successes: int, total: int, low: float, high: float
) -> None:
    # Given a count of successes, when its 95% Wilson interval is computed, then it matches the textbook value
    interval = wilson_interval(successes, total)
    assert (interval.low, interval.high) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_wilson_interval_of_nothing_is_everything() -> None:
    # Given no samples, then nothing is known
    assert wilson_interval(0, 0).model_dump() == {"low": 0.0, "high": 1.0}


def test_sign_test_needs_a_clear_majority_of_discordant_pairs() -> None:
    # Given discordant counts, then only a lead beyond 1.96 standard deviations counts
    assert not significantly_more(3, 0)
    assert significantly_more(4, 0)
    assert not significantly_more(12, 6)
    assert significantly_more(30, 10)
    assert not significantly_more(5, 10)


def test_worst_case_is_robust_only_where_every_attack_failed() -> None:
    # Given two attacks' outcomes on three samples
    first = torch.tensor([[True], [True], [False]])
    second = torch.tensor([[True], [False], [True]])

    # Then only the sample both left correct is robust
    assert worst_case([first, second]).flatten().tolist() == [True, False, False]


def test_worst_case_points_carry_their_interval() -> None:
    # Given 10 samples of which 8 stayed robust at epsilon 0.1
    robust = torch.tensor([[True]] * 8 + [[False]] * 2)

    # Then the point reads 80% with the Wilson interval of 8 in 10
    (point,) = worst_case_points("linf", [0.1], robust)
    assert point.robust_accuracy == pytest.approx(0.8)
    assert point.ci95 == wilson_interval(8, 10)


def test_per_class_scores_each_label_present() -> None:
    # Given labels 0, 0, 2 with their clean and robust outcomes
    labels = torch.tensor([0, 0, 2])
    scores = per_class(labels, torch.tensor([True, True, False]), torch.tensor([True, False, False]))

    # Then each present label has its own accuracies
    assert [(s.label, s.samples, s.clean_accuracy, s.robust_accuracy) for s in scores] == [
        (0, 2, 1.0, 0.5),
        (2, 1, 0.0, 0.0),
    ]


def test_minimal_perturbation_percentiles_leave_unknown_what_was_never_broken() -> None:
    # Given ten estimates, three of them never broken
    estimates = torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, *[math.inf] * 3], dtype=torch.float64)

    # When summarised
    summary = minimal_perturbation_summary(estimates, precision=0.001, max_epsilon=0.3)

    # Then the low percentiles are read off, the high ones are unknown, and 30% are unbroken
    assert (summary.p10, summary.p25, summary.median) == (0.01, 0.03, 0.05)
    assert (summary.p75, summary.p90) == (None, None)
    assert summary.unbroken_fraction == pytest.approx(0.3)
