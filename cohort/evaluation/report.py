"""The evaluation report: ``report.json`` for machines, ``report.html`` and PNG plots for people, and
``samples.csv``, the outcome of every sample.

The HTML page is self-contained (its plots are inlined as base64), so it reads the same as an email
attachment, a download or a file on disk. Every piece of text in it is escaped. Every sentence it says
about the model is written from what ran and what was measured: a check that did not run is not
mentioned, and a failed one is never covered by a fixed all-clear.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Protocol

import matplotlib

matplotlib.use("Agg")  # headless: the worker has no display

import matplotlib.pyplot as plt
import numpy as np
import torch

from cohort.evaluation.attacks import ATTACKS, SEARCH_ATTACK, Norm
from cohort.evaluation.results import (
    Check,
    CheckCode,
    CurvePoint,
    EvaluationResult,
    Interval,
    WorstCasePoint,
)

JSON_FILE = "report.json"
HTML_FILE = "report.html"
SAMPLES_FILE = "samples.csv"
NORMS: tuple[Norm, ...] = ("linf", "l2")
_GALLERY_COLUMNS = 8

NOT_STANDARD = (
    "This is not the standard AutoAttack evaluation, so its robust accuracy may be optimistic: quote the "
    "autoattack preset's number."
)
UNRELIABLE = "Not reliable: possible gradient masking."

# What each failed check means for the reader, beyond the finding the check wrote from its numbers.
FLAG_EXPLANATIONS: dict[CheckCode, str] = {
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
    "saturated_loss": (
        "For many samples the loss or its gradient was so small that a gradient attack barely moves: "
        "outputs scaled up, or a steep saturating layer, flatten the loss without making the model any "
        "more robust. Those samples look robust because the attack stalls, not because it failed."
    ),
    "gradient_free_stronger": (
        "An attack that never reads the gradient broke samples the gradient attacks could not. On an "
        "honest model the gradient attacks are the stronger ones, so their gradients are misleading "
        "here and the robust accuracy they report is too high."
    ),
    "unbounded_budget_robust": (
        "Some samples stayed correctly classified at a budget large enough to reach any input, where "
        "every sample can be broken. The attacks failed to find what must exist, so their numbers at "
        "smaller budgets cannot be trusted either."
    ),
}


class Artifacts(Protocol):
    """What a run leaves besides its result, as the engine hands it over."""

    @property
    def gallery_clean(self) -> torch.Tensor:
        """The inputs of ``EvaluationResult.gallery``, in its order: [K, *input_shape] in [0, 1]."""

    @property
    def gallery_adversarial(self) -> torch.Tensor:
        """Their adversarial versions, aligned with ``gallery_clean``."""

    @property
    def per_sample(self) -> Sequence[Mapping[str, object]]:
        """One row per sample, the same columns in each: the rows of ``samples.csv``."""


@dataclass(frozen=True)
class ReportContext:
    """What the report says about where the numbers come from."""

    evaluation_id: str
    model_name: str


def render(result: EvaluationResult, artifacts: Artifacts, context: ReportContext) -> dict[str, bytes]:
    """Every file of the report by name: report.json, report.html, samples.csv and the PNGs the page shows."""
    images = {f"curve-{norm}.png": _curve_plot(result, norm) for norm in NORMS if _points(result, norm)}
    if result.per_class:
        images["per-class.png"] = _per_class_plot(result)
    if result.gallery:
        images["gallery.png"] = _gallery_plot(result, artifacts)
    columns = list(artifacts.per_sample[0]) if artifacts.per_sample else []
    return {
        JSON_FILE: result.model_dump_json(indent=2).encode(),
        HTML_FILE: _html(result, context, images, columns).encode(),
        SAMPLES_FILE: samples_csv(artifacts.per_sample),
        **images,
    }


def summary(result: EvaluationResult) -> dict[str, float]:
    """The headline numbers, for the evaluation's record and the email: metric name to value.

    ``headline_reliable`` is 1.0, or 0.0 when a gradient-masking check failed; the email and the
    website read it to mark the robust accuracy as an upper bound that may be far from the truth.
    """
    headline = result.headline
    numbers: dict[str, float] = {
        "clean_accuracy": round(result.clean.accuracy, 4),
        "clean_accuracy_ci95_low": round(result.clean.ci95.low, 4),
        "clean_accuracy_ci95_high": round(result.clean.ci95.high, 4),
        "robust_accuracy": round(headline.robust_accuracy, 4),
        "robust_accuracy_ci95_low": round(headline.ci95.low, 4),
        "robust_accuracy_ci95_high": round(headline.ci95.high, 4),
        f"headline_epsilon_{headline.norm}": headline.epsilon,
        "headline_reliable": 1.0 if headline.reliable else 0.0,
    }
    for point in result.curves:
        if point.norm == headline.norm and point.epsilon == headline.epsilon:
            numbers[f"robust_accuracy_{point.attack}"] = round(point.robust_accuracy, 4)
    if result.minimal_perturbation and result.minimal_perturbation.median is not None:
        numbers["minimal_perturbation_median"] = round(result.minimal_perturbation.median, 4)
    numbers["gradient_masking_flags"] = len(result.flags)
    return numbers


def findings(result: EvaluationResult) -> list[str]:
    """The report's summary, a sentence each, every one written from what ran and what was measured."""
    headline, clean = result.headline, result.clean
    sentences = [
        _what_ran(result),
        f"Without attack the model classified {clean.correct:,} of {clean.total:,} samples correctly: "
        f"{clean.accuracy:.1%} ({_interval(clean.ci95)}).",
        f"At ε = {headline.epsilon:g} ({_norm_label(headline.norm)}), {headline.robust_accuracy:.1%} "
        f"({_interval(headline.ci95)}) stayed correct against every one of "
        f"{_listing([_label(a) for a in headline.attacks])}: the worst case per sample.",
        "These are the standard AutoAttack attacks at their published settings."
        if headline.standard
        else NOT_STANDARD,
    ]
    passed = [check for check in result.checks if check.passed]
    failed = [check for check in result.checks if not check.passed]
    if passed:
        titles = _listing(list(dict.fromkeys(check.title for check in passed)))
        count = "1 gradient-masking check" if len(passed) == 1 else f"{len(passed)} gradient-masking checks"
        sentences.append(f"{count} passed ({titles}); what each measured is under “Gradient-masking checks”.")
    sentences += [_check_sentence(check) for check in failed]
    if not result.checks:
        sentences.append("No gradient-masking check ran.")
    if not headline.reliable:
        why = f" ({len(failed)} of {len(result.checks)} checks failed)" if failed else ""
        sentences.append(
            f"The headline is not reliable: possible gradient masking{why}. It is an upper bound that may "
            "be far above the model's true robust accuracy."
            + (f" {headline.advice}" if headline.advice else "")
        )
    estimate = result.minimal_perturbation
    if estimate is not None and estimate.median is not None:
        sentences.append(
            f"{SEARCH_ATTACK.label} flipped half of the correctly classified samples at an L∞ ε of at most "
            f"{estimate.median:.3g}, an upper bound on the smallest budget that does."
        )
    return sentences


def samples_csv(rows: Sequence[Mapping[str, object]]) -> bytes:
    """The per-sample table: true and false for the yes-or-no columns, an empty cell for no value."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({column: _csv_cell(value) for column, value in row.items()} for row in rows)
    return buffer.getvalue().encode()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"  # a bisection's estimate, without the float's last-digit noise
    return value


# -- words --------------------------------------------------------------------------------------


def _label(attack: str) -> str:
    return ATTACKS[attack].label


def _norm_label(norm: str) -> str:
    return {"linf": "L∞", "l2": "L2"}.get(norm, norm)


def _listing(items: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(items) <= 1:
        return "".join(items) or "no attack"
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _interval(interval: Interval) -> str:
    return f"95% CI {interval.low:.1%} to {interval.high:.1%}"


def _capitalised(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    """A finding ("the loss was tiny") as a sentence of its own: capitalised, with a full stop."""
    text = _capitalised(text)
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _what_ran(result: EvaluationResult) -> str:
    manifest = result.manifest
    labels = {norm: [_label(run.attack) for run in manifest.attacks if run.norm == norm] for norm in NORMS}
    per_norm = [f"{_listing(labels[norm])} ({_norm_label(norm)})" for norm in NORMS if labels[norm]]
    how = (
        "in this order, each attack only on the samples the attacks before it had not broken"
        if any(run.cascaded for run in manifest.attacks)
        else "each on every correctly classified sample"
    )
    return (
        f"The {manifest.preset} preset ran {'; '.join(per_norm)} on {result.samples:,} samples of "
        f"{result.dataset}, {how}."
    )


def _check_sentence(check: Check) -> str:
    return f"Check “{check.title}”: {_outcome(check)}. {_sentence(check.finding)}"


def _outcome(check: Check) -> str:
    return "passed" if check.passed else "failed"


def _series_labels(result: EvaluationResult, norm: Norm) -> dict[str, str]:
    """Each attack's curve by name: its label, or for a cascade's cumulative curve, every attack it counts."""
    labels: dict[str, str] = {}
    ran: list[str] = []
    for point in _points(result, norm):
        if point.attack not in labels:
            ran.append(_label(point.attack))
            labels[point.attack] = f"after {', '.join(ran)}" if point.cumulative else ran[-1]
    return labels


def _worst_case_label(result: EvaluationResult, norm: Norm) -> str:
    return "worst case of " + _listing([_label(attack) for attack in _series_labels(result, norm)])


# -- plots --------------------------------------------------------------------------------------


def _points(result: EvaluationResult, norm: str) -> list[CurvePoint]:
    return [point for point in result.curves if point.norm == norm]


def _worst_points(result: EvaluationResult, norm: str) -> list[WorstCasePoint]:
    return sorted((point for point in result.worst_case if point.norm == norm), key=lambda p: p.epsilon)


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _curve_plot(result: EvaluationResult, norm: Norm) -> bytes:
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for attack, label in _series_labels(result, norm).items():
        points = sorted((p for p in _points(result, norm) if p.attack == attack), key=lambda p: p.epsilon)
        epsilons = [p.epsilon for p in points]
        axes.plot(epsilons, [p.robust_accuracy for p in points], marker="o", label=label)
        axes.fill_between(epsilons, [p.ci95.low for p in points], [p.ci95.high for p in points], alpha=0.15)
    worst = _worst_points(result, norm)
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
    axes.legend(fontsize=8)
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


def _gallery_plot(result: EvaluationResult, artifacts: Artifacts) -> bytes:
    items = result.gallery
    columns = min(len(items), _GALLERY_COLUMNS)
    rows = -(-len(items) // columns)
    figure, grid = plt.subplots(2 * rows, columns, figsize=(1.6 * columns, 3.4 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for position, item in enumerate(items):
        row, column = 2 * (position // columns), position % columns
        clean, adversarial = grid[row][column], grid[row + 1][column]
        clean.imshow(as_image(artifacts.gallery_clean[position]), cmap="gray", vmin=0, vmax=1)
        clean.set_title(f"clean: {item.clean_prediction} (true {item.label})", fontsize=8)
        adversarial.imshow(as_image(artifacts.gallery_adversarial[position]), cmap="gray", vmin=0, vmax=1)
        adversarial.set_title(
            f"adv: {item.adversarial_prediction}\n{_label(item.attack)} ε={item.epsilon:g}", fontsize=8
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


# -- HTML -----------------------------------------------------------------------------------------


def _html(
    result: EvaluationResult, context: ReportContext, images: dict[str, bytes], columns: list[str]
) -> str:
    clean, manifest = result.clean, result.manifest
    parts = [
        f"<h1>Robustness of {escape(context.model_name)}</h1>",
        f"<p class='muted'>Evaluation {escape(context.evaluation_id)} on {escape(result.dataset)}: "
        f"{result.samples:,} samples, {escape(manifest.preset)} preset, seed {manifest.seed}, on "
        f"{escape(result.device)} in {result.seconds:.1f} s.</p>",
        "<div class='headline'>",
        _fact(
            "clean accuracy",
            f"{clean.accuracy:.1%}",
            [_interval(clean.ci95), f"{clean.correct:,} of {clean.total:,}"],
        ),
        _headline_card(result),
        "</div>",
        "<h2>Summary</h2>",
        "<ul class='summary'>" + "".join(f"<li>{escape(s)}</li>" for s in findings(result)) + "</ul>",
        _checks(result),
        "<h2>Robust accuracy vs ε</h2>",
        *(_image(images, f"curve-{norm}.png", f"robust accuracy vs epsilon, {norm}") for norm in NORMS),
        _curve_table(result),
        f"<h2>Per class, worst case at ε = {result.headline.epsilon:g} "
        f"({_norm_label(result.headline.norm)})</h2>",
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
        _samples(context, columns),
        _manifest(result),
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


def _fact(label: str, value: str, details: list[str], extra: str = "", css: str = "fact") -> str:
    lines = "".join(f"<div class='muted'>{escape(detail)}</div>" for detail in details)
    return (
        f"<div class='{css}'><div class='label'>{escape(label)}</div><div class='value'>{escape(value)}</div>"
        f"{lines}{extra}</div>"
    )


def _headline_card(result: EvaluationResult) -> str:
    headline = result.headline
    details = [
        _interval(headline.ci95),
        f"worst case per sample of {_listing([_label(a) for a in headline.attacks])}",
        f"{headline.preset} preset" + ("" if headline.standard else f". {NOT_STANDARD}"),
        f"budget: {headline.budget_source}",
    ]
    warning = ""
    if not headline.reliable:
        advice = f" {escape(headline.advice)}" if headline.advice else ""
        warning = f"<p class='unreliable-note'><strong>{escape(UNRELIABLE)}</strong>{advice}</p>"
    return _fact(
        f"robust accuracy at ε = {headline.epsilon:g} ({_norm_label(headline.norm)})",
        f"{headline.robust_accuracy:.1%}",
        details,
        extra=warning,
        css="fact" if headline.reliable else "fact unreliable",
    )


def _checks(result: EvaluationResult) -> str:
    if not result.checks and not result.flags:
        return "<h2>Gradient-masking checks</h2><p>No gradient-masking check ran.</p>"
    failed = sum(not check.passed for check in result.checks)
    verdict = f"{failed} of {len(result.checks)} failed" if failed else f"all {len(result.checks)} passed"
    items = []
    for check in result.checks:
        outcome = _outcome(check)
        title = escape(_capitalised(check.title))
        body = f"<strong>{title}: {outcome}.</strong> {escape(_sentence(check.finding))}"
        if not check.passed:
            if check.advice:
                body += f"<br>What to try: {escape(check.advice)}"
            body += f"<br><span class='muted'>{escape(FLAG_EXPLANATIONS[check.code])}</span>"
        items.append(f"<li class='{outcome}'>{body}</li>")
    # A flag always shows, even one no check in the list accounts for.
    checked = {check.code for check in result.checks}
    items += [
        f"<li class='failed'><strong>{escape(flag.message)}</strong><br>"
        f"<span class='muted'>{escape(FLAG_EXPLANATIONS[flag.code])}</span></li>"
        for flag in result.flags
        if flag.code not in checked
    ]
    return f"<h2>Gradient-masking checks: {verdict}</h2><ul class='checks'>{''.join(items)}</ul>"


def _curve_table(result: EvaluationResult) -> str:
    rows: list[list[object]] = []
    for norm in NORMS:
        for attack, label in _series_labels(result, norm).items():
            points = sorted((p for p in _points(result, norm) if p.attack == attack), key=lambda p: p.epsilon)
            rows += [
                [
                    label,
                    _norm_label(norm),
                    f"{p.epsilon:g}",
                    f"{p.robust_accuracy:.1%}",
                    f"{p.ci95.low:.1%} to {p.ci95.high:.1%}",
                    f"{p.mean_adversarial_confidence:.2f}",
                ]
                for p in points
            ]
        rows += [
            [
                _worst_case_label(result, norm),
                _norm_label(norm),
                f"{w.epsilon:g}",
                f"{w.robust_accuracy:.1%}",
                f"{w.ci95.low:.1%} to {w.ci95.high:.1%}",
                "—",
            ]
            for w in _worst_points(result, norm)
        ]
    return _table(
        ["attack", "norm", "ε", "robust accuracy", "95% CI", "mean confidence on adversarial"], rows
    )


def _minimal_perturbation(result: EvaluationResult) -> str:
    estimate = result.minimal_perturbation
    if estimate is None:
        return ""

    def show(value: float | None) -> str:
        return "not broken" if value is None else f"{value:.4f}"

    search = SEARCH_ATTACK.label
    return (
        "<h2>Minimal perturbation: an upper bound</h2>"
        f"<p>For each correctly classified sample, an L∞ ε at which {search} flips its prediction, found by "
        f"bisection with {search} between the budgets of the grid. Each estimate is at most "
        f"{estimate.precision:.2g} above the smallest ε at which {search} succeeded, and the true smallest "
        "budget can only be lower: a stronger attack may flip the sample sooner. The search went up to "
        f"ε = {estimate.max_epsilon:g}; {estimate.unbroken_fraction:.1%} were not flipped within it.</p>"
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


def _samples(context: ReportContext, columns: list[str]) -> str:
    if not columns:
        return ""
    evaluation = escape(context.evaluation_id)
    return (
        "<h2>Per-sample results</h2>"
        f"<p><a href='{SAMPLES_FILE}' download>{SAMPLES_FILE}</a> has a row per sample, with the columns "
        f"{escape(', '.join(columns))}. A robust column is true when the sample stayed correct against "
        "every attack of its norm at that ε. The file sits beside this page in the report's folder; "
        "where this page came as an email attachment, download it from the evaluation's page on the "
        f"website, from the API (<code>GET /v1/evaluations/{evaluation}/report?format=csv</code>) or "
        f'with the SDK (<code>client.download_report("{evaluation}", "csv")</code>).</p>'
    )


def _manifest(result: EvaluationResult) -> str:
    manifest = result.manifest

    def shown(value: object) -> str:
        return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    attacks = _table(
        ["attack", "norm", "steps", "step (share of ε)", "restarts", "target classes", "queries", "cascaded"],
        (
            [
                _label(run.attack),
                _norm_label(run.norm),
                shown(run.steps),
                shown(run.relative_step),
                run.restarts,
                shown(run.target_classes),
                shown(run.queries),
                "yes" if run.cascaded else "no",
            ]
            for run in manifest.attacks
        ),
    )
    grids = [
        [f"ε grid, {_norm_label(norm)}", ", ".join(f"{eps:g}" for eps in epsilons)]
        for norm, epsilons in (("linf", manifest.epsilons_linf), ("l2", manifest.epsilons_l2))
        if any(run.norm == norm for run in manifest.attacks)
    ]
    settings = _table(
        ["setting", "value"],
        [
            ["preset", manifest.preset],
            ["samples", f"{manifest.samples:,}"],
            ["seed", manifest.seed],
            ["batch size", f"{manifest.batch_size:,}"],
            *grids,
            ["model SHA-256", manifest.model_sha256 or "not recorded"],
            ["device", manifest.device],
            *([name, version] for name, version in sorted(manifest.libraries.items())),
        ],
    )
    return (
        "<h2>Manifest</h2><p>How these numbers were made: the attacks in the order they ran, with their "
        "settings, and what else decides the result.</p>" + attacks + settings
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
.fact{border:1px solid #ddd;border-radius:.5rem;padding:.8rem 1.2rem;max-width:28rem}
.value{font-size:2rem;font-weight:600}.label{font-size:.9rem}
.unreliable{border:2px solid #b42318;background:#fef3f2}.unreliable-note{color:#b42318;margin:.5rem 0 0}
table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:1rem 0}.checks li,.summary li{margin:.5rem 0}
.checks .passed strong{color:#1a7f37}.checks .failed strong{color:#b42318}
"""
