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
    # True in a cascaded preset: the attack ran only on the samples the attacks before it had failed
    # on, so this is the robust accuracy against it and every attack before it, as AutoAttack reports.
    cumulative: bool = False


class WorstCasePoint(BaseModel):
    """A sample counts as robust only if every attack of this norm failed on it."""

    norm: Norm
    epsilon: float
    robust_accuracy: float
    ci95: Interval


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


CheckCode = Literal[
    "fgsm_beats_pgd",
    "non_monotone",
    "zero_gradients",
    "non_finite_gradients",
    "saturated_loss",
    "gradient_free_stronger",
    "unbounded_budget_robust",
]


class Check(BaseModel):
    """One gradient-masking check that ran: what it measured, and whether the model passed it.

    ``finding`` is written from the measured numbers, so it states only what was shown; ``advice`` says
    what to try when the check failed, and is None when it passed.
    """

    code: CheckCode
    title: str  # what the check looks for, in a few words: "saturated loss"
    passed: bool
    finding: str
    advice: str | None = None


class Flag(BaseModel):
    """A check the model failed, as the report lists it."""

    code: CheckCode
    message: str


class Headline(BaseModel):
    """The one number a scientist reads: worst case over ``attacks`` at the declared budget.

    ``reliable`` is False when any masking check failed: the number is then an upper bound that may be
    far from the truth, and ``advice`` says what to try.
    """

    norm: Norm
    epsilon: float
    robust_accuracy: float
    ci95: Interval
    attacks: list[AttackName]
    preset: str
    standard: bool  # whether the attacks are the standard AutoAttack ensemble at its settings
    reliable: bool
    advice: str | None = None
    budget_source: str  # where the epsilon comes from: the dataset's declared budget, or the spec


class AttackRun(BaseModel):
    """How one attack ran, as the manifest records it."""

    attack: AttackName
    norm: Norm
    steps: int | None  # iterations per run; None for a single-step attack
    relative_step: float | None  # alpha / epsilon, where the attack takes a fixed step
    restarts: int
    target_classes: int | None  # for targeted attacks: how many runner-up classes are tried
    queries: int | None  # for query-based attacks
    cascaded: bool  # attacked only the samples every earlier attack of its norm had failed on


class Manifest(BaseModel):
    """Everything needed to reproduce the numbers, or to know why they differ."""

    preset: str
    attacks: list[AttackRun]
    epsilons_linf: list[float]
    epsilons_l2: list[float]
    samples: int
    seed: int
    batch_size: int
    model_sha256: str | None
    device: str
    libraries: dict[str, str]  # cohort, torch, numpy, python


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
    checks: list[Check]
    flags: list[Flag]
    headline: Headline
    gallery: list[GalleryItem]
    manifest: Manifest
