"""The evaluation report: ``report.json`` for machines, ``report.html`` and PNG plots for people.

The HTML page is self-contained (its plots are inlined as base64), so it reads
the same as an email attachment, a download or a file on disk. Every piece of
text in it is escaped.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

import matplotlib

matplotlib.use("Agg")  # headless: the worker has no display

import matplotlib.pyplot as plt
import numpy as np
import torch

from cohort.evaluation.engine import Gallery
from cohort.evaluation.results import EvaluationResult
from cohort.evaluation.spec import EvaluationSpec

JSON_FILE = "report.json"
HTML_FILE = "report.html"
_GALLERY_COLUMNS = 8

# What each gradient-masking flag means for the reader, beyond the engine's one-line finding.
FLAG_EXPLANATIONS = {
    "fgsm_beats_pgd": (
        "A single gradient step found adversarial examples that many steps of PGD missed. A stronger "
        "attack should never do worse, so the gradients PGD follows are probably misleading (gradient "
        "masking): the robust accuracy shown is likely too optimistic."
    ),
    "non_monotone": (
        "Robust accuracy rose as the perturbation budget grew. A larger budget contains every smaller "
        "one, so a sound attack can only do better: the attack is failing to optimise, and the numbers "
        "at the larger budgets overstate robustness."
    ),
    "zero_gradients": (
        "The loss gradient with respect to the input was zero for some samples, so gradient attacks "
        "had nothing to follow there. Saturated outputs or non-differentiable layers can cause this; "
        "those samples may look robust without being so."
    ),
    "non_finite_gradients": (
        "The loss gradient held NaN or infinite values for some samples, so the attacks on them were "
        "not meaningful. Check the model for numerical instability; treat the results as unreliable."
    ),
}


@dataclass(frozen=True)
class ReportContext:
    """What the report says about where the numbers come from."""

    evaluation_id: str
    model_name: str
    spec: EvaluationSpec


def render(result: EvaluationResult, gallery: Gallery, context: ReportContext) -> dict[str, bytes]:
    """Every file of the report by name: report.json, report.html and the PNGs the page shows."""
    images = {
        f"curve-{norm}.png": _curve_plot(result, norm) for norm in ("linf", "l2") if _points(result, norm)
    }
    if result.per_class:
        images["per-class.png"] = _per_class_plot(result)
    if result.gallery:
        images["gallery.png"] = _gallery_plot(result, gallery)
    return {
        JSON_FILE: result.model_dump_json(indent=2).encode(),
        HTML_FILE: _html(result, context, images).encode(),
        **images,
    }


def summary(result: EvaluationResult) -> dict[str, float]:
    """The headline numbers, for the evaluation's record and the email: metric name to value."""
    headline = result.headline
    numbers: dict[str, float] = {
        "clean_accuracy": round(result.clean.accuracy, 4),
        "clean_accuracy_ci95_low": round(result.clean.ci95.low, 4),
        "clean_accuracy_ci95_high": round(result.clean.ci95.high, 4),
        "robust_accuracy": round(headline.robust_accuracy, 4),
        f"headline_epsilon_{headline.norm}": headline.epsilon,
    }
    for point in result.curves:
        if point.norm == headline.norm and point.epsilon == headline.epsilon:
            numbers[f"robust_accuracy_{point.attack}"] = round(point.robust_accuracy, 4)
    if result.minimal_perturbation and result.minimal_perturbation.median is not None:
        numbers["minimal_perturbation_median"] = round(result.minimal_perturbation.median, 4)
    numbers["gradient_masking_flags"] = len(result.flags)
    return numbers


# -- plots --------------------------------------------------------------------------------------


def _points(result: EvaluationResult, norm: str) -> list:
    return [point for point in result.curves if point.norm == norm]


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _curve_plot(result: EvaluationResult, norm: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for attack in dict.fromkeys(point.attack for point in _points(result, norm)):
        points = sorted((p for p in _points(result, norm) if p.attack == attack), key=lambda p: p.epsilon)
        epsilons = [p.epsilon for p in points]
        axes.plot(epsilons, [p.robust_accuracy for p in points], marker="o", label=attack)
        axes.fill_between(epsilons, [p.ci95.low for p in points], [p.ci95.high for p in points], alpha=0.15)
    worst = sorted((w for w in result.worst_case if w.norm == norm), key=lambda w: w.epsilon)
    if worst:
        axes.plot(
            [w.epsilon for w in worst],
            [w.robust_accuracy for w in worst],
            color="black",
            linestyle="--",
            label="worst case",
        )
    axes.set(
        xlabel=f"ε ({_norm_label(norm)})",
        ylabel="robust accuracy",
        ylim=(0, 1.02),
        title=f"Robust accuracy vs ε, {_norm_label(norm)}",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def _per_class_plot(result: EvaluationResult) -> bytes:
    classes = result.per_class
    figure, axes = plt.subplots(figsize=(max(6.4, 0.45 * len(classes)), 3.6))
    positions = range(len(classes))
    axes.bar([p - 0.2 for p in positions], [c.clean_accuracy for c in classes], width=0.4, label="clean")
    axes.bar([p + 0.2 for p in positions], [c.robust_accuracy for c in classes], width=0.4, label="robust")
    axes.set_xticks(list(positions), [str(c.label) for c in classes])
    headline = result.headline
    axes.set(
        xlabel="class",
        ylabel="accuracy",
        ylim=(0, 1.02),
        title=f"Per class: clean, and worst case at ε = {headline.epsilon:g} ({_norm_label(headline.norm)})",
    )
    axes.legend()
    return _png(figure)


def _gallery_plot(result: EvaluationResult, gallery: Gallery) -> bytes:
    items = result.gallery
    columns = min(len(items), _GALLERY_COLUMNS)
    rows = -(-len(items) // columns)
    figure, grid = plt.subplots(2 * rows, columns, figsize=(1.6 * columns, 3.4 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for position, item in enumerate(items):
        row, column = 2 * (position // columns), position % columns
        clean, adversarial = grid[row][column], grid[row + 1][column]
        clean.imshow(as_image(gallery.clean[position]), cmap="gray", vmin=0, vmax=1)
        clean.set_title(f"clean: {item.clean_prediction} (true {item.label})", fontsize=8)
        adversarial.imshow(as_image(gallery.adversarial[position]), cmap="gray", vmin=0, vmax=1)
        adversarial.set_title(
            f"adv: {item.adversarial_prediction}\n{item.attack} ε={item.epsilon:g}", fontsize=8
        )
    figure.suptitle("Clean inputs and their adversarial versions, with the model's predictions", fontsize=9)
    return _png(figure)


def as_image(sample: torch.Tensor) -> np.ndarray:
    """One input as imshow takes it: HxW grey or HxWx3 colour, or a strip for 1-D inputs.

    Images may be channels-first (``[C, H, W]``) or, as Keras models take them, channels-last:
    the axis of 1 or 3 channels is the channel axis. Inputs of other channel counts show their
    first channel, or their first three.
    """
    image = sample.detach().float().cpu()
    if image.dim() == 3:
        channels_last = image.shape[0] not in (1, 3) and image.shape[-1] in (1, 3)
        image = image if channels_last else image.permute(1, 2, 0)
        image = image[..., 0] if image.shape[-1] < 3 else image[..., :3]
    elif image.dim() == 1:
        image = image.unsqueeze(0)
    return image.clamp(0, 1).numpy()


def _norm_label(norm: str) -> str:
    return {"linf": "L∞", "l2": "L2"}.get(norm, norm)


# -- HTML -----------------------------------------------------------------------------------------


def _html(result: EvaluationResult, context: ReportContext, images: dict[str, bytes]) -> str:
    headline, clean = result.headline, result.clean
    parts = [
        f"<h1>Robustness of {escape(context.model_name)}</h1>",
        f"<p class='muted'>Evaluation {escape(context.evaluation_id)} on {escape(result.dataset)}: "
        f"{result.samples:,} samples, {len(context.spec.attacks)} attacks, {context.spec.steps} steps, "
        f"seed {context.spec.seed}, on {escape(result.device)} in {result.seconds:.1f} s.</p>",
        "<div class='headline'>",
        _fact(
            "clean accuracy",
            f"{clean.accuracy:.1%}",
            f"95% CI {clean.ci95.low:.1%} to {clean.ci95.high:.1%}, {clean.correct:,} of {clean.total:,}",
        ),
        _fact(
            f"robust accuracy at ε = {headline.epsilon:g} ({_norm_label(headline.norm)})",
            f"{headline.robust_accuracy:.1%}",
            "worst case over every attack of this norm",
        ),
        "</div>",
        _flags(result),
        "<h2>Robust accuracy vs ε</h2>",
        *(
            _image(images, f"curve-{norm}.png", f"robust accuracy vs epsilon, {norm}")
            for norm in ("linf", "l2")
        ),
        _curve_table(result),
        "<h2>Per class</h2>",
        _image(images, "per-class.png", "clean and robust accuracy per class"),
        _table(
            ["class", "samples", "clean accuracy", "robust accuracy"],
            (
                [c.label, c.samples, f"{c.clean_accuracy:.1%}", f"{c.robust_accuracy:.1%}"]
                for c in result.per_class
            ),
        ),
        _minimal_perturbation(result),
        "<h2>Examples</h2>",
        _image(images, "gallery.png", "clean and adversarial examples"),
        "<h2>How to read this</h2>",
        "<p>Robust accuracy is the share of samples the model still classifies correctly under attack, "
        "within a perturbation budget ε (inputs are scaled to [0, 1]). Attacks give an upper bound on "
        "true robustness: a stronger attack can only lower the numbers. Intervals are 95% Wilson score "
        "intervals over the samples evaluated.</p>",
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Robustness report: {escape(context.model_name)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def _fact(label: str, value: str, detail: str) -> str:
    return (
        f"<div class='fact'><div class='label'>{escape(label)}</div><div class='value'>{escape(value)}</div>"
        f"<div class='muted'>{escape(detail)}</div></div>"
    )


def _flags(result: EvaluationResult) -> str:
    if not result.flags:
        return (
            "<h2>Gradient-masking checks</h2><p class='ok'>No sign of gradient masking: PGD was at least "
            "as strong as FGSM, robust accuracy fell as ε grew, and gradients were finite and non-zero.</p>"
        )
    items = "".join(
        f"<li><strong>{escape(flag.message)}</strong><br>{escape(FLAG_EXPLANATIONS.get(flag.code, ''))}</li>"
        for flag in result.flags
    )
    return f"<h2>Warnings: possible gradient masking</h2><ul class='flags'>{items}</ul>"


def _curve_table(result: EvaluationResult) -> str:
    rows = (
        [
            p.attack,
            _norm_label(p.norm),
            f"{p.epsilon:g}",
            f"{p.robust_accuracy:.1%}",
            f"{p.ci95.low:.1%} to {p.ci95.high:.1%}",
            f"{p.mean_adversarial_confidence:.2f}",
        ]
        for p in sorted(result.curves, key=lambda p: (p.norm, p.attack, p.epsilon))
    )
    return _table(
        ["attack", "norm", "ε", "robust accuracy", "95% CI", "mean confidence on adversarial"], rows
    )


def _minimal_perturbation(result: EvaluationResult) -> str:
    estimate = result.minimal_perturbation
    if estimate is None:
        return ""

    def show(value: float | None) -> str:
        return "not broken" if value is None else f"{value:.4f}"

    return (
        "<h2>Minimal perturbation</h2><p>The smallest L∞ budget that flips each correctly classified "
        f"sample, searched up to ε = {estimate.max_epsilon:g}; {estimate.unbroken_fraction:.1%} were never "
        "flipped within it.</p>"
        + _table(
            ["p10", "p25", "median", "p75", "p90"],
            [
                [
                    show(estimate.p10),
                    show(estimate.p25),
                    show(estimate.median),
                    show(estimate.p75),
                    show(estimate.p90),
                ]
            ],
        )
    )


def _table(header: list[str], rows: Iterable[list[object]]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(images: dict[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode()
    return f"<img src='data:image/png;base64,{data}' alt='{escape(alt)}'>"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
.muted{color:#666;font-size:.9rem}.headline{display:flex;gap:2rem;flex-wrap:wrap;margin:1rem 0}
.fact{border:1px solid #ddd;border-radius:.5rem;padding:.8rem 1.2rem}.value{font-size:2rem;font-weight:600}
.label{font-size:.9rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}th{background:#f5f5f5}
img{max-width:100%;display:block;margin:1rem 0}.flags li{margin:.5rem 0}.ok{color:#1a7f37}
"""
