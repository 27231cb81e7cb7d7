"""Square attack (Andriushchenko et al. 2020): random search in the ball, forward passes only.

Each iteration proposes, for every row the model still classifies correctly, a change confined to
a random square window, and keeps it if it lowers the row's logit margin. The window covers a
share p of the image that shrinks on the published schedule (p starts at 0.8, as AutoAttack runs
it). In L∞ the change moves the window's pixels to the other side of the box; in L2 it moves
perturbation mass from a second window into the first, in a pattern of nested rectangles, with
the total always on the ball's surface.

It never takes a gradient, so a model that hides or saturates its gradients cannot hide from it;
its margin loss scales with the logits and never saturates. Inputs of one or two axes are treated
as one-channel images (one row high for a vector, whose windows are runs of features).

Where it differs from AutoAttack's code: every row draws its own window, sign and pattern (there,
one draw serves the whole batch in an iteration, which is the same search per row but ties the
rows' runs together); a window's corner is drawn from every position where it fits (there, from
all but the last, so no square ever reaches the last row or column: on the 8x8 digits that leaves
its L∞ robust accuracy 17 points higher); and the start counts as the first of ``queries`` forward
passes (there, it comes on top of them).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from functools import cache

import torch
from torch import nn

from cohort.evaluation.attacks.base import (
    AttackFunction,
    AttackSettings,
    Effort,
    LinfBall,
    Norm,
    margin,
    rows,
    unit_l2_,
)

_P_INIT = 0.8
# p is halved after each of these iterations, as the published schedule does for a 10,000-query run;
# AutoAttack runs its first 5,000. A run with another budget runs the same schedule at its pace.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_SCHEDULE_QUERIES = 5000
# A forward pass costs about a third of a gradient pass (a forward and an input backward).
_FORWARD_COST = 1 / 3


def per_query(effort: Effort) -> float:
    return effort.queries * _FORWARD_COST


def _share(iteration: int, queries: int) -> float:
    """p at this iteration: the share of the image the next square covers."""
    return _P_INIT / 2 ** bisect_left(_HALVINGS, int(iteration * _SCHEDULE_QUERIES / queries))


def _image_shape(x: torch.Tensor) -> tuple[int, int, int]:
    """Channels, height and width: a vector is one row high, a 2-D input has one channel."""
    channels, height, width = (1, 1, *x.shape[1:])[-3:]
    return channels, height, width


def _window_sides(p: float, height: int, width: int, smallest: int, odd: bool) -> tuple[int, int]:
    """A square covering a share ``p`` of the image, or on a one-row input, a run of ``p`` of it."""
    side = p * width if height == 1 else math.sqrt(p * height * width)
    side = max(round(side), smallest)
    if odd and side % 2 == 0:
        side += 1
    return (1, min(side, width)) if height == 1 else (min(side, height, width),) * 2


def _random_signs(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, shape, generator=generator, device=like.device, dtype=like.dtype)
    return signs.mul_(2.0).sub_(1.0)


@cache
def _spans(
    extent: int, side: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Along one axis, for each position a window of ``side`` pixels can take: which pixels it covers
    (``[positions, extent]``, 0 or 1), and each pixel's place in it (clamped into the window)."""
    place = torch.arange(extent, device=device) - torch.arange(extent - side + 1, device=device)[:, None]
    return ((place >= 0) & (place < side)).to(dtype), place.clamp_(0, side - 1)


def _window(
    sides: tuple[int, int], like: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random window per row, at any position where it fits: its ``[R, 1, H, W]`` mask, and each
    pixel's place in it along each axis (``[R, H]``, ``[R, W]``)."""
    count, _, height, width = like.shape
    covers_h, place_h = _spans(height, sides[0], like.device, like.dtype)
    covers_w, place_w = _spans(width, sides[1], like.device, like.dtype)
    at_h = torch.randint(0, len(covers_h), (count,), generator=generator, device=like.device)
    at_w = torch.randint(0, len(covers_w), (count,), generator=generator, device=like.device)
    mask = covers_h[at_h][:, None, :, None] * covers_w[at_w][:, None, None, :]
    return mask, place_h[at_h], place_w[at_w]


def _rectangles(height: int, width: int) -> torch.Tensor:
    """Nested rectangles around the centre, the k-th ring out weighted by sum_{j >= k} 1 / (j + 1)^2;
    unit L2 norm."""
    # Built once per window size on the CPU, then cached on the attack's device by ``_patterns``.
    rings = max(height // 2, width // 2) + 1
    tail = (
        (1.0 / torch.arange(1, rings + 1, dtype=torch.float64, device="cpu") ** 2).flip(0).cumsum(0).flip(0)
    )
    ring_h = (torch.arange(height, device="cpu") - height // 2).abs()
    ring_w = (torch.arange(width, device="cpu") - width // 2).abs()
    weights = tail[torch.maximum(ring_h[:, None], ring_w[None, :])]
    return weights / torch.linalg.vector_norm(weights)


def _pattern(height: int, width: int) -> torch.Tensor:
    """The L2 update's shape: rectangles of one sign in one half, of the other in the other, unit norm."""
    if height < width:
        return _pattern(width, height).T
    half = height // 2
    pattern = torch.cat([_rectangles(half, width), -_rectangles(height - half, width)])
    return pattern / torch.linalg.vector_norm(pattern)


@cache
def _patterns(sides: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The pattern for a window, and for a square one also its transpose: ``[1 or 2, *sides]``."""
    pattern = _pattern(*sides)
    both = [pattern, pattern.T] if sides[0] == sides[1] else [pattern]
    return torch.stack(both).to(device, dtype)


def _placed(
    sides: tuple[int, int],
    place_h: torch.Tensor,
    place_w: torch.Tensor,
    like: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """The pattern at each pixel's place in its row's window (``[R, H]`` and ``[R, W]``), transposed in
    a random half of the rows when the window is square; ``[R, 1, H, W]``, to be masked by the window."""
    patterns = _patterns(sides, like.device, like.dtype)
    which = torch.randint(0, len(patterns), (len(place_h), 1, 1), generator=generator, device=like.device)
    return patterns[which, place_h[:, :, None], place_w[:, None, :]][:, None]


def _linf_start(x: torch.Tensor, e: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Vertical stripes of ±eps, one sign per channel and column."""
    stripes = _random_signs((len(x), x.shape[1], 1, x.shape[3]), x, generator)
    return (x + stripes.mul_(e)).clamp_(0.0, 1.0)


def _linf_candidates(
    x: torch.Tensor, best: torch.Tensor, e: torch.Tensor, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Each row's best point with one random window flipped to ±eps from the clean pixels, per channel."""
    count, channels, height, width = x.shape
    window, _, _ = _window(_window_sides(p, height, width, 1, False), x, generator)
    step = _random_signs((count, channels, 1, 1), x, generator).mul_(2.0 * e)
    return LinfBall(x, e).project_(window.mul(step).add_(best))


def _blocks(extent: int, device: torch.device) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The L2 start's grid along one axis: block size, and per pixel its block, place in it and
    whether a block covers it (about five blocks of a fifth of the extent, centred)."""
    size = max(extent // 5, 1)
    offset = max((extent - 5 * size) // 2, 0)
    position = torch.arange(extent, device=device) - offset
    block = position.div(size, rounding_mode="floor")
    covered = (position >= 0) & (block < extent // size)
    return size, block.clamp_(0, extent // size - 1), position.remainder(size), covered


def _l2_start(x: torch.Tensor, e: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A grid of blocks, each holding the update pattern with a random sign per channel, scaled to eps."""
    count, channels, height, width = x.shape
    size_h, block_h, at_h, covered_h = _blocks(height, x.device)
    size_w, block_w, at_w, covered_w = _blocks(width, x.device)
    grid = (height // size_h, width // size_w)
    covered = covered_h[:, None] & covered_w
    pattern = _placed((size_h, size_w), at_h.expand(count, -1), at_w.expand(count, -1), x, generator)
    signs = _random_signs((count, channels, *grid), x, generator)[:, :, block_h[:, None], block_w[None, :]]
    delta = pattern.mul(signs).mul_(covered)
    return unit_l2_(delta).mul_(e).add_(x).clamp_(0.0, 1.0)


def _l2_candidates(
    x: torch.Tensor, best: torch.Tensor, e: torch.Tensor, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Each row's perturbation with a random window's mass moved into another window in a new pattern.

    The first window gets its old content (normalised) plus the pattern with a random sign per
    channel, scaled to hold the mass of both windows and whatever the ball has left; the second
    window is emptied; the whole perturbation is then rescaled to the ball's surface.
    """
    count, channels, height, width = x.shape
    sides = _window_sides(p, height, width, 3, True)
    first, place_h, place_w = _window(sides, x, generator)
    second, _, _ = _window(sides, x, generator)
    both = torch.maximum(first, second)
    delta = best - x
    in_first = delta * first
    kept = torch.linalg.vector_norm(in_first, dim=(2, 3), keepdim=True)
    moved = torch.linalg.vector_norm(delta * both, dim=(2, 3), keepdim=True)
    left = (
        e.square()
        .sub_(torch.linalg.vector_norm(delta, dim=(1, 2, 3), keepdim=True).square_())
        .clamp_(min=0.0)
    )
    signs = _random_signs((count, channels, 1, 1), x, generator)
    update = _placed(sides, place_h, place_w, x, generator).mul_(first) * signs
    update.add_(in_first.div_(kept.add_(1e-12)))
    room = moved.square_().add_(left.div_(channels)).sqrt_()
    update.mul_(room.div_(torch.linalg.vector_norm(update, dim=(2, 3), keepdim=True).add_(1e-12)))
    delta.sub_(delta * both).add_(update)
    length = torch.linalg.vector_norm(delta, dim=(1, 2, 3), keepdim=True).add_(1e-12)
    return delta.mul_(e / length).add_(x).clamp_(0.0, 1.0)


_STARTS = {"linf": _linf_start, "l2": _l2_start}
_CANDIDATES = {"linf": _linf_candidates, "l2": _l2_candidates}


def square(norm: Norm) -> AttackFunction:
    """Square attack in ``norm`` with at most ``settings.queries`` forward passes per row."""
    start, candidates = _STARTS[norm], _CANDIDATES[norm]

    @torch.no_grad()
    def attack(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, settings: AttackSettings
    ) -> torch.Tensor:
        images = x.reshape(len(x), *_image_shape(x))
        e = rows(eps, images)
        best = start(images, e, settings.generator)
        margins = margin(model(best.view_as(x)), y)
        # The rows still searched, compacted: gathered again only when some row breaks.
        active = torch.nonzero(margins > 0).flatten()
        searched = [images[active], best[active], e[active], y[active], margins[active]]
        for iteration in range(settings.queries - 1):
            if len(active) == 0:
                break
            clean, current, radius, labels, lowest = searched
            proposed = candidates(
                clean, current, radius, _share(iteration, settings.queries), settings.generator
            )
            proposed_margins = margin(model(proposed.view(len(active), *x.shape[1:])), labels)
            improved = proposed_margins < lowest
            current = torch.where(rows(improved, current), proposed, current)
            lowest = torch.minimum(proposed_margins, lowest)
            searched = [clean, current, radius, labels, lowest]
            broken = lowest <= 0
            if bool(broken.any()):
                best[active] = current
                searched = [t[~broken] for t in searched]
                active = active[~broken]
        best[active] = searched[1]
        return best.view_as(x)

    return attack
