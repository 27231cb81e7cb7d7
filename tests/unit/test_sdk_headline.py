"""The SDK's one line on a finished evaluation: the number, its interval and budget, and whether it stands."""

from __future__ import annotations

from cohort.sdk.client import describe_headline

SUMMARY = {
    "clean_accuracy": 0.955,
    "robust_accuracy": 0.375,
    "robust_accuracy_ci95_low": 0.3109,
    "robust_accuracy_ci95_high": 0.4439,
    "headline_epsilon_linf": 0.1,
    "headline_reliable": 1.0,
    "gradient_masking_flags": 0,
}


def test_a_reliable_headline_is_given_with_its_interval_and_budget() -> None:
    line = describe_headline({"status": "completed", "summary": SUMMARY})
    assert line.startswith("robust accuracy 37.5% (95% CI 31.1% to 44.4%) at L∞ ε = 0.1, clean 95.5%")
    assert line.endswith("every gradient-masking check passed")


def test_an_unreliable_headline_says_so_and_how_many_checks_failed() -> None:
    summary = {**SUMMARY, "headline_reliable": 0.0, "gradient_masking_flags": 2}
    line = describe_headline({"status": "completed", "summary": summary})
    assert "NOT reliable: 2 gradient-masking check(s) failed" in line
    assert "upper bound" in line


def test_a_failed_evaluation_gives_its_reason() -> None:
    line = describe_headline(
        {"status": "failed", "status_reason": "the model file is truncated", "summary": None}
    )
    assert line == "evaluation failed: the model file is truncated"
