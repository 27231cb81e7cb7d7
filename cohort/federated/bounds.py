"""How far one device's report may move a round: the norm bound, clipping and the weight caps.

Pure functions over an update's tensors and the reports' sample counts, so that the FL node's
rules are tested here on their own. ``docs/protocol.md`` says how a job owner chooses each bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from cohort.domain.errors import InvalidInput
from cohort.domain.weights import Tensors, check_values, contiguous_span


@dataclass(frozen=True)
class MeasuredUpdate:
    """An update whose values are all finite, with its global L2 norm over every tensor."""

    tensors: Tensors
    norm: float


def update_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """The L2 norm of all values of all tensors taken together; NaN or infinite if any value is.

    A float32 dot product is one vectorised pass, as cheap as the finite check it makes redundant:
    a square is finite only if its value is. Squares overflow float32 once the norm passes about
    1.8e19, so such an update (only a hostile one) is measured again in float64, where the squares
    of float32 values never overflow.
    """
    span = contiguous_span(tensors, sorted(tensors))
    parts = [span] if span is not None else [t.reshape(-1) for t in tensors.values()]
    squared = sum(float(torch.dot(part, part)) for part in parts)
    if math.isfinite(squared):
        return math.sqrt(squared)
    return math.sqrt(sum(float(torch.linalg.vector_norm(part, dtype=torch.float64)) ** 2 for part in parts))


def measure(tensors: Tensors, max_norm: float, *, what: str = "the update") -> MeasuredUpdate:
    """Check that every value is finite and that the update's norm is within the job's bound."""
    norm = update_norm(tensors)
    if not math.isfinite(norm):
        check_values(tensors, what=what)  # names the tensor that holds the NaN or infinity
        raise InvalidInput(f"{what}: holds NaN or infinite values")
    if norm > max_norm:
        raise InvalidInput(
            f"{what}: its L2 norm is {norm:.4g}, above this job's max_update_norm of {max_norm:,g}. "
            "An update this large is not the result of a local training step: check the device's "
            "training (a diverging loss, a learning rate too high), or, if such steps are expected, "
            "start the job with a larger max_update_norm"
        )
    return MeasuredUpdate(tensors, norm)


def clip_factor(norm: float, clip_norm: float | None) -> float:
    """What an update of this norm is multiplied by, so that its norm is at most ``clip_norm``."""
    if clip_norm is None or norm <= clip_norm:
        return 1.0
    return clip_norm / norm


def check_sample_count(num_samples: int, max_samples: int) -> None:
    if num_samples > max_samples:
        raise InvalidInput(
            f"num_samples is {num_samples:,}, above this job's max_samples_per_report of {max_samples:,}: "
            f"report at most {max_samples:,} (a device with more data trains on that many), "
            "or ask the job's owner to raise the cap"
        )


def capped_weights(samples: Sequence[int], max_share: float) -> list[Fraction]:
    """Each report's weight: its sample count, lowered as little as possible so that no report
    carries more than ``max_share`` of the round's total weight.

    Every weight becomes ``min(n_i, c)`` for the largest level ``c`` with
    ``c <= max_share * sum(min(n_j, c))`` (water-filling): reports at or below the level keep their
    count, the ones above it are brought down to it, and each of those carries exactly
    ``max_share``. With fewer than ``1 / max_share`` reports no level meets the cap, and every report
    weighs the same, the smallest largest share there is. Exact: in fractions, not floats.
    """
    if any(n < 1 for n in samples):
        raise ValueError("every report has a positive sample count")
    share = Fraction(max_share).limit_denominator(1_000_000)  # the decimal meant: 0.3 is 3/10
    if not 0 < share <= 1:
        raise ValueError("max_share lies in (0, 1]")
    descending = sorted(samples, reverse=True)
    below = sum(descending)  # the total of the counts that stay below the level
    for capped, largest in enumerate(descending):
        # With the `capped` largest counts at the level c: c = share * (capped * c + below).
        if capped:
            # 1 - share * capped > 0 here: a level with that many reports above it would need them
            # to carry the whole round, so a level with fewer was found first.
            level = share * below / (1 - share * capped)
            if level >= largest:
                return [min(Fraction(n), level) for n in samples]
        elif largest <= share * below:
            return [Fraction(n) for n in samples]
        below -= largest
    smallest = Fraction(min(samples))
    return [smallest] * len(samples)


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first tensor holding a NaN or an infinity, or None if all values are finite."""
    return next((name for name, t in tensors.items() if not bool(torch.isfinite(t).all())), None)
