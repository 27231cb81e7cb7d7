"""The evaluation report and the API's work budget, without AWS."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import unescape
from typing import get_args

import pytest
import torch

from cohort.evaluation import report
from cohort.evaluation.metrics import wilson_interval
from cohort.evaluation.results import (
    AttackRun,
    Check,
    CheckCode,
    ClassScore,
    CleanScore,
    CurvePoint,
    EvaluationResult,
    Flag,
    GalleryItem,
    Headline,
    Manifest,
    MinimalPerturbation,
    WorstCasePoint,
)
from cohort.evaluation.spec import EvaluationSpec

PNG = b"\x89PNG\r\n\x1a\n"
SAMPLES = 40
CORRECT = 36
# Robust samples out of SAMPLES per attack and epsilon, as a cascade counts them: each attack's curve
# is the robust accuracy after it and every attack before it, so it never rises along the cascade.
LINF = {"apgd_ce": {0.0: 36, 0.1: 20, 0.2: 9}, "pgd_linf": {0.0: 36, 0.1: 18, 0.2: 8}}
L2 = {"pgd_l2": {0.0: 36, 0.5: 25, 1.0: 12}}
FINDINGS: dict[CheckCode, tuple[str, str, str]] = {
    # code: (title, finding when passed, finding when failed)
    "saturated_loss": (
        "saturated loss",
        "the loss was above 1e-6 for every attacked sample",
        "the loss was below 1e-6 for 62% of attacked samples",
    ),
    "non_monotone": (
        "robust accuracy falling as ε grows",
        "robust accuracy fell as ε grew for every attack",
        "robust accuracy of PGD rose from 45.0% at ε = 0.1 to 50.0% at ε = 0.2",
    ),
    "gradient_free_stronger": (
        "a gradient-free attack beating the gradient attacks",
        "no gradient-free attack broke a sample the gradient attacks missed",
        "Square broke 9 samples the gradient attacks missed at ε = 0.1",
    ),
}
ADVICE = "Run the autoattack preset, whose Square attack does not read the gradient."


def _interval(robust: int) -> dict[str, float]:
    return wilson_interval(robust, SAMPLES).model_dump()


def _curve(grids: dict[str, dict[float, int]], norm: str, cumulative: bool) -> list[CurvePoint]:
    return [
        CurvePoint(
            attack=attack,
            norm=norm,
            epsilon=eps,
            robust_accuracy=robust / SAMPLES,
            ci95=_interval(robust),
            mean_adversarial_confidence=0.9,
            cumulative=cumulative,
        )
        for attack, grid in grids.items()
        for eps, robust in grid.items()
    ]


def _worst(grids: dict[str, dict[float, int]], norm: str) -> list[WorstCasePoint]:
    epsilons = next(iter(grids.values()))
    return [
        WorstCasePoint(
            norm=norm,
            epsilon=eps,
            robust_accuracy=min(grid[eps] for grid in grids.values()) / SAMPLES,
            ci95=_interval(min(grid[eps] for grid in grids.values())),
        )
        for eps in epsilons
    ]


def _result(
    *,
    preset: str = "autoattack",
    cascade: bool = True,
    standard: bool = True,
    checks: Sequence[CheckCode] = ("saturated_loss", "non_monotone", "gradient_free_stronger"),
    failing: Sequence[CheckCode] = (),
    budget_source: str = "the declared L∞ budget of 8x8 grey digits",
) -> EvaluationResult:
    """A complete result as the engine writes it: two L∞ attacks and one L2, with the given checks."""
    ran = [
        Check(
            code=code,
            title=FINDINGS[code][0],
            passed=code not in failing,
            finding=FINDINGS[code][2 if code in failing else 1],
            advice=ADVICE if code in failing else None,
        )
        for code in checks
    ]
    return EvaluationResult(
        dataset="digits",
        samples=SAMPLES,
        num_classes=10,
        input_shape=[1, 8, 8],
        device="cpu",
        seconds=12.5,
        clean=CleanScore(accuracy=CORRECT / SAMPLES, ci95=_interval(CORRECT), correct=CORRECT, total=SAMPLES),
        curves=_curve(LINF, "linf", cascade) + _curve(L2, "l2", cascade),
        worst_case=_worst(LINF, "linf") + _worst(L2, "l2"),
        per_class=[
            ClassScore(label=label, samples=4, clean_accuracy=0.9, robust_accuracy=0.45)
            for label in range(10)
        ],
        minimal_perturbation=MinimalPerturbation(
            norm="linf",
            median=0.1125,
            p10=0.03,
            p25=0.06,
            p75=None,
            p90=None,
            unbroken_fraction=0.3,
            precision=0.0016,
            max_epsilon=0.2,
        ),
        checks=ran,
        flags=[Flag(code=check.code, message=check.finding) for check in ran if not check.passed],
        headline=Headline(
            norm="linf",
            epsilon=0.1,
            robust_accuracy=18 / SAMPLES,
            ci95=_interval(18),
            attacks=list(LINF),
            preset=preset,
            standard=standard,
            reliable=not failing,
            advice=ADVICE if failing else None,
            budget_source=budget_source,
        ),
        gallery=[
            GalleryItem(
                index=3, label=3, clean_prediction=3, adversarial_prediction=8, attack="pgd_linf", epsilon=0.1
            )
        ],
        manifest=Manifest(
            preset=preset,
            attacks=[
                AttackRun(
                    attack=attack,
                    norm=norm,
                    steps=100,
                    relative_step=None if attack == "apgd_ce" else 0.025,
                    restarts=1,
                    target_classes=None,
                    queries=None,
                    cascaded=cascade,
                )
                for attack, norm in [("apgd_ce", "linf"), ("pgd_linf", "linf"), ("pgd_l2", "l2")]
            ],
            epsilons_linf=[0.0, 0.1, 0.2],
            epsilons_l2=[0.0, 0.5, 1.0],
            samples=SAMPLES,
            seed=7,
            batch_size=250,
            model_sha256="ab" * 32,
            device="cpu",
            libraries={"cohort": "0.1.0", "torch": "2.9.1", "numpy": "2.3.5", "python": "3.11.9"},
        ),
    )


@dataclass
class _Artifacts:
    """What the engine hands the report besides the result (its own class has these fields)."""

    gallery_clean: torch.Tensor = field(default_factory=lambda: torch.rand(1, 1, 8, 8))
    gallery_adversarial: torch.Tensor = field(default_factory=lambda: torch.rand(1, 1, 8, 8))
    per_sample: list[Mapping[str, object]] = field(
        default_factory=lambda: [
            {
                "index": 0,
                "label": 3,
                "clean_prediction": 3,
                "clean_correct": True,
                "robust_linf_0.1": False,
                "robust_l2_0.5": True,
                "minimal_linf": 0.08203125000000001,  # a bisection estimate, with float noise
            },
            {
                "index": 1,
                "label": 7,
                "clean_prediction": 1,
                "clean_correct": False,
                "robust_linf_0.1": False,
                "robust_l2_0.5": False,
                "minimal_linf": None,
            },
        ]
    )


def _render(result: EvaluationResult, model_name: str = "digits-cnn") -> dict[str, bytes]:
    return report.render(result, _Artifacts(), report.ReportContext("e1", model_name))


def _page(result: EvaluationResult) -> str:
    return _render(result)["report.html"].decode()


def _text(html: str) -> str:
    """What a reader sees: the page without its tags, styles and inlined images."""
    body = html.split("<body>", 1)[1]
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def _section(html: str, heading: str) -> str:
    """The text under the first h2 that starts with ``heading``, up to the next h2."""
    match = re.search(rf"<h2>{re.escape(heading)}.*?(?=<h2>|</body>)", html, re.DOTALL)
    assert match, f"no section {heading!r}"
    return _text(f"<body>{match.group(0)}").strip()


def _rows(html: str) -> list[list[str]]:
    return [
        [unescape(cell) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", html)
    ]


def _headline_card(html: str) -> str:
    return _text("<body>" + html.split("<div class='headline'>", 1)[1].split("<h2>", 1)[0])


def test_the_report_holds_json_html_the_samples_and_a_png_per_plot() -> None:
    files = _render(_result())
    assert set(files) == {
        "report.json",
        "report.html",
        "samples.csv",
        "curve-linf.png",
        "curve-l2.png",
        "per-class.png",
        "gallery.png",
    }
    assert EvaluationResult.model_validate_json(files["report.json"]) == _result()
    assert all(files[name].startswith(PNG) for name in files if name.endswith(".png"))
    html = files["report.html"].decode()
    assert html.count("data:image/png;base64,") == 4  # self-contained: the plots are inlined


@pytest.mark.parametrize(
    ("layout", "expected_shape"),
    [
        pytest.param(lambda rgb: rgb[:1], (8, 6), id="grey-channels-first"),
        pytest.param(lambda rgb: rgb[:1].permute(1, 2, 0), (8, 6), id="grey-channels-last"),
        pytest.param(lambda rgb: rgb, (8, 6, 3), id="colour-channels-first"),
        pytest.param(lambda rgb: rgb.permute(1, 2, 0), (8, 6, 3), id="colour-channels-last"),
        pytest.param(lambda rgb: rgb[:2], (8, 6), id="two-channels-shows-the-first"),
    ],
)
def test_gallery_images_show_the_same_picture_whatever_the_channel_layout(
    layout: Callable[[torch.Tensor], torch.Tensor], expected_shape: tuple[int, ...]
) -> None:
    # Given one 8x6 colour picture, laid out as a model may take it
    rgb = torch.rand(3, 8, 6)

    # When it is drawn for the gallery
    image = report.as_image(layout(rgb))

    # Then it is that picture (or its first channel), never a slice across the wrong axis
    truth = rgb.permute(1, 2, 0).numpy()
    assert image.shape == expected_shape
    assert (image == (truth if len(expected_shape) == 3 else truth[..., 0])).all()


def test_every_text_in_the_page_is_escaped() -> None:
    # Given a model name and a finding with markup in them
    result = _result(failing=["saturated_loss"])
    result.checks[0].finding = "the loss <was> tiny"

    # When the page is rendered
    html = _render(result, model_name="<script>alert(1)</script>")["report.html"].decode()

    # Then the markup shows as text and never runs
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "The loss &lt;was&gt; tiny" in html


def test_the_summary_says_which_attacks_ran_in_which_preset_and_each_check_s_finding() -> None:
    # Given a cascaded run whose saturation check passed and whose gradient-free check failed
    result = _result(checks=["saturated_loss", "gradient_free_stronger"], failing=["gradient_free_stronger"])

    # When its summary is written
    sentences = report.findings(result)

    # Then it names the attacks that ran by their labels, per norm, in the preset that ran them
    assert sentences[0] == (
        "The autoattack preset ran APGD-CE and PGD (L∞); PGD L2 (L2) on 40 samples of digits, in this "
        "order, each attack only on the samples the attacks before it had not broken."
    )
    # and the checks that passed by name, and each failed one with what it found
    assert (
        "1 gradient-masking check passed (saturated loss); "
        "what each measured is under “Gradient-masking checks”." in sentences
    )
    assert (
        "Check “a gradient-free attack beating the gradient attacks”: failed. "
        "Square broke 9 samples the gradient attacks missed at ε = 0.1." in sentences
    )
    # and that the headline is therefore not reliable, with what to try
    assert sentences[-2].startswith("The headline is not reliable: possible gradient masking (1 of 2 checks")
    assert sentences[-2].endswith(ADVICE)


def test_nothing_is_said_about_a_check_that_did_not_run() -> None:
    # Given a run without FGSM, whose only check was saturation, and which passed it
    result = _result(checks=["saturated_loss"])

    # When the page is rendered
    page = _text(_page(result))

    # Then no sentence speaks of FGSM against PGD, of the curve falling, or of masking being absent
    assert "FGSM" not in page
    assert "fell as ε grew" not in page
    assert "No sign of gradient masking" not in page
    # and the one check that ran is there with its finding
    assert "Saturated loss: passed. The loss was above 1e-6 for every attacked sample." in page
    assert "Gradient-masking checks: all 1 passed" in page


def test_a_curve_that_fell_is_said_to_have_fallen_only_when_the_check_ran_and_passed() -> None:
    passed = _text(_page(_result(checks=["non_monotone"])))
    failed = _text(_page(_result(checks=["non_monotone"], failing=["non_monotone"])))
    assert "Robust accuracy fell as ε grew" in passed
    assert "fell as ε grew" not in failed
    assert any(
        "rose from 45.0%" in sentence
        for sentence in report.findings(_result(checks=["non_monotone"], failing=["non_monotone"]))
    )


def test_a_run_without_checks_says_so_and_reassures_nowhere() -> None:
    page = _text(_page(_result(checks=[])))
    assert "No gradient-masking check ran." in page
    assert "passed" not in page


def test_the_headline_card_carries_the_interval_the_attacks_the_preset_and_the_budget() -> None:
    card = _headline_card(_page(_result()))
    assert "robust accuracy at ε = 0.1 (L∞) 45.0%" in card
    assert "95% CI 30.7% to 60.2%" in card  # Wilson, 18 of 40
    assert "worst case per sample of APGD-CE and PGD" in card
    assert "autoattack preset" in card
    assert "budget: the declared L∞ budget of 8x8 grey digits" in card
    assert report.NOT_STANDARD not in card
    assert "Not reliable" not in card


def test_a_non_standard_preset_says_it_is_not_the_standard_and_may_be_optimistic() -> None:
    html = _page(_result(preset="fast", standard=False))
    assert "fast preset. This is not the standard AutoAttack evaluation" in _headline_card(html)
    assert report.NOT_STANDARD in report.findings(_result(preset="fast", standard=False))


def test_an_unreliable_headline_is_marked_on_its_card_with_the_advice() -> None:
    # Given a run whose saturation check failed
    html = _page(_result(failing=["saturated_loss"]))

    # Then the headline's card is marked, in words and in its frame, and says what to try
    assert "<div class='fact unreliable'>" in html
    card = _headline_card(html)
    assert f"Not reliable: possible gradient masking. {ADVICE}" in card
    # and the failed check lists its finding, the advice and what the failure means
    checks = _section(html, "Gradient-masking checks")
    assert checks.startswith("Gradient-masking checks: 1 of 3 failed")
    assert (
        f"Saturated loss: failed. The loss was below 1e-6 for 62% of attacked samples. What to try: {ADVICE}"
        in checks
    )
    assert report.FLAG_EXPLANATIONS["saturated_loss"] in checks


def test_the_worst_case_is_a_row_of_the_curve_table_and_cumulative_curves_say_so() -> None:
    rows = _rows(_page(_result()))
    # Given a cascade, each attack's row counts it and every attack before it
    assert ["after APGD-CE", "L∞", "0.1", "50.0%", "35.2% to 64.8%", "0.90"] in rows
    assert ["after APGD-CE, PGD", "L∞", "0.1", "45.0%", "30.7% to 60.2%", "0.90"] in rows
    # and the worst case per norm has rows of its own, with its interval
    assert ["worst case of APGD-CE and PGD", "L∞", "0.1", "45.0%", "30.7% to 60.2%", "—"] in rows
    assert ["worst case of PGD L2", "L2", "1", "30.0%", "18.1% to 45.4%", "—"] in rows


def test_curves_of_attacks_run_on_every_sample_carry_the_attack_s_label_alone() -> None:
    rows = _rows(_page(_result(preset="custom", cascade=False, standard=False)))
    assert ["PGD", "L∞", "0.2", "20.0%", "10.5% to 34.8%", "0.90"] in rows
    assert not any(row[0].startswith("after") for row in rows)


def test_the_manifest_is_on_the_page() -> None:
    html = _page(_result())
    rows = _rows(html.split("<h2>Manifest", 1)[1])
    assert ["PGD", "L∞", "100", "0.025", "1", "—", "—", "yes"] in rows
    assert ["APGD-CE", "L∞", "100", "—", "1", "—", "—", "yes"] in rows
    for setting in (
        ["seed", "7"],
        ["batch size", "250"],
        ["ε grid, L∞", "0, 0.1, 0.2"],
        ["ε grid, L2", "0, 0.5, 1"],
        ["model SHA-256", "ab" * 32],
        ["device", "cpu"],
        ["torch", "2.9.1"],
        ["cohort", "0.1.0"],
    ):
        assert setting in rows


def test_the_minimal_perturbation_is_an_upper_bound_with_its_precision() -> None:
    section = _section(_page(_result()), "Minimal perturbation")
    assert section.startswith("Minimal perturbation: an upper bound")
    assert "found by bisection with PGD" in section
    assert "at most 0.0016 above the smallest ε at which PGD succeeded" in section
    assert "the true smallest budget can only be lower" in section
    assert "The search went up to ε = 0.2; 30.0% were not flipped within it." in section
    assert "not broken" in section  # percentiles past the unbroken share


def test_the_samples_are_a_csv_the_page_links_to() -> None:
    # When the report is rendered
    files = _render(_result())

    # Then samples.csv has a row per sample in the engine's columns, true/false and empty for no value
    rows = list(csv.DictReader(io.StringIO(files["samples.csv"].decode())))
    assert rows == [
        {
            "index": "0",
            "label": "3",
            "clean_prediction": "3",
            "clean_correct": "true",
            "robust_linf_0.1": "false",
            "robust_l2_0.5": "true",
            "minimal_linf": "0.0820313",
        },
        {
            "index": "1",
            "label": "7",
            "clean_prediction": "1",
            "clean_correct": "false",
            "robust_linf_0.1": "false",
            "robust_l2_0.5": "false",
            "minimal_linf": "",
        },
    ]
    # And the page links to it beside itself, and says where to get it when the page was emailed
    html = files["report.html"].decode()
    assert "<a href='samples.csv' download>samples.csv</a>" in html
    section = _section(html, "Per-sample results")
    assert "GET /v1/evaluations/e1/report?format=csv" in section
    assert 'client.download_report("e1", "csv")' in section


def test_the_summary_holds_the_headline_numbers_only() -> None:
    assert report.summary(_result()) == {
        "clean_accuracy": 0.9,
        "clean_accuracy_ci95_low": 0.7695,
        "clean_accuracy_ci95_high": 0.9604,
        "robust_accuracy": 0.45,
        "robust_accuracy_ci95_low": 0.3071,
        "robust_accuracy_ci95_high": 0.6017,
        "headline_epsilon_linf": 0.1,
        "headline_reliable": 1.0,
        "robust_accuracy_apgd_ce": 0.5,
        "robust_accuracy_pgd_linf": 0.45,
        "minimal_perturbation_median": 0.1125,
        "gradient_masking_flags": 0,
    }


def test_the_summary_says_when_the_headline_is_not_reliable() -> None:
    numbers = report.summary(_result(failing=["saturated_loss", "gradient_free_stronger"]))
    assert numbers["headline_reliable"] == 0.0
    assert numbers["gradient_masking_flags"] == 2


def test_every_check_has_an_explanation() -> None:
    assert set(report.FLAG_EXPLANATIONS) == set(get_args(CheckCode))


def test_the_work_budget_counts_every_attack_step_and_the_search() -> None:
    from cohort.evaluation.jobs import MAX_GRADIENT_PASSES, gradient_passes
    from cohort.evaluation.work import SEARCH_ITERATIONS

    spec = EvaluationSpec(
        preset="custom",
        attacks=["fgsm", "pgd_linf"],
        epsilons_linf=[0.0, 0.1, 0.2],
        samples=10,
        steps=5,
        restarts=2,
    )
    # fgsm: 2 non-zero ε x 1 step; pgd: 2 x 5 steps x 2 restarts; the search: 6 bisections x 5 steps;
    # the coverage check: one run of pgd, 5 steps
    assert gradient_passes(spec) == 10 * (2 + 20 + SEARCH_ITERATIONS * 5 + 5)
    assert gradient_passes(EvaluationSpec()) < MAX_GRADIENT_PASSES
    assert (
        gradient_passes(EvaluationSpec(preset="custom", samples=10_000, steps=200, restarts=2))
        > MAX_GRADIENT_PASSES
    )
