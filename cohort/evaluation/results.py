"""The evaluation report as data: this model serialised is ``report.json``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from cohort.evaluation.attacks import Norm
from cohort.evaluation.spec import AttackName


class Interval(BaseModel):
    """A 95% Wilson score interval."""

    low: float
    high: float


class CleanScore(BaseModel):
    accuracy: float
    ci95: Interval
    correct: int
    total: int


class CurvePoint(BaseModel):
    attack: AttackName
    norm: Norm
    epsilon: float
    robust_accuracy: float
    ci95: Interval
    # Mean max-softmax probability on the attacked inputs: near 1 means the
    # model is confidently wrong, not merely unsure.
    mean_adversarial_confidence: float


class WorstCasePoint(BaseModel):
    """A sample counts as robust only if every attack of this norm failed on it."""

    norm: Norm
    epsilon: float
    robust_accuracy: float


class ClassScore(BaseModel):
    """Robust accuracy is the worst case at the headline epsilon."""

    label: int
    samples: int
    clean_accuracy: float
    robust_accuracy: float


class MinimalPerturbation(BaseModel):
    """Percentiles of the smallest L∞ epsilon that flips each correctly classified sample.

    A percentile is None when more than that share of samples was never broken
    within the largest epsilon searched; ``unbroken_fraction`` says how many.
    """

    norm: Literal["linf"]
    median: float | None
    p10: float | None
    p25: float | None
    p75: float | None
    p90: float | None
    unbroken_fraction: float
    # The search's resolution: every estimate is within this of the PGD boundary.
    precision: float = 0.0
    max_epsilon: float = 0.0


class Flag(BaseModel):
    code: Literal["fgsm_beats_pgd", "non_monotone", "zero_gradients", "non_finite_gradients"]
    message: str


class Headline(BaseModel):
    norm: Norm
    epsilon: float
    robust_accuracy: float


class GalleryItem(BaseModel):
    index: int
    label: int
    clean_prediction: int
    adversarial_prediction: int
    attack: AttackName
    epsilon: float


class EvaluationResult(BaseModel):
    dataset: str
    samples: int
    num_classes: int
    input_shape: list[int]
    device: str
    seconds: float
    clean: CleanScore
    curves: list[CurvePoint]
    worst_case: list[WorstCasePoint]
    per_class: list[ClassScore]
    minimal_perturbation: MinimalPerturbation | None
    flags: list[Flag]
    headline: Headline
    gallery: list[GalleryItem]
