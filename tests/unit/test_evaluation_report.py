"""The evaluation report and the API's work budget, without AWS."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

from cohort.evaluation.spec import EvaluationSpec

report = pytest.importorskip("cohort.evaluation.report")
engine = pytest.importorskip("cohort.evaluation.engine")
results = pytest.importorskip("cohort.evaluation.results")

PNG = b"\x89PNG\r\n\x1a\n"


def _result(**changes: object) -> results.EvaluationResult:
    interval = {"low": 0.4, "high": 0.6}
    document = {
        "dataset": "digits",
        "samples": 4,
        "num_classes": 10,
        "input_shape": [1, 8, 8],
        "device": "cpu",
        "seconds": 1.5,
        "clean": {"accuracy": 0.75, "ci95": interval, "correct": 3, "total": 4},
        "curves": [
            {
                "attack": attack,
                "norm": "linf",
                "epsilon": eps,
                "robust_accuracy": accuracy,
                "ci95": interval,
                "mean_adversarial_confidence": 0.8,
            }
            for attack, eps, accuracy in [
                ("fgsm", 0.0, 0.75),
                ("fgsm", 0.1, 0.25),
                ("pgd_linf", 0.0, 0.75),
                ("pgd_linf", 0.1, 0.5),
            ]
        ],
        "worst_case": [
            {"norm": "linf", "epsilon": 0.0, "robust_accuracy": 0.75},
            {"norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.25},
        ],
        "per_class": [{"label": 3, "samples": 4, "clean_accuracy": 0.75, "robust_accuracy": 0.25}],
        "minimal_perturbation": {
            "norm": "linf",
            "median": 0.05,
            "p10": 0.01,
            "p25": 0.02,
            "p75": None,
            "p90": None,
            "unbroken_fraction": 0.3,
            "max_epsilon": 0.1,
        },
        "flags": [{"code": "fgsm_beats_pgd", "message": "FGSM <beats> PGD at ε=0.1"}],
        "headline": {"norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.25},
        "gallery": [
            {
                "index": 0,
                "label": 3,
                "clean_prediction": 3,
                "adversarial_prediction": 8,
                "attack": "pgd_linf",
                "epsilon": 0.1,
            }
        ],
    }
    return results.EvaluationResult.model_validate({**document, **changes})


def _render(result: results.EvaluationResult, model_name: str = "digits-cnn") -> dict[str, bytes]:
    gallery = engine.Gallery(clean=torch.rand(1, 1, 8, 8), adversarial=torch.rand(1, 1, 8, 8))
    context = report.ReportContext("e1", model_name, EvaluationSpec(attacks=["fgsm", "pgd_linf"]))
    return report.render(result, gallery, context)


def test_the_report_holds_json_html_and_a_png_per_plot() -> None:
    files = _render(_result())
    assert set(files) == {"report.json", "report.html", "curve-linf.png", "per-class.png", "gallery.png"}
    assert json.loads(files["report.json"])["headline"]["robust_accuracy"] == 0.25
    assert all(files[name].startswith(PNG) for name in files if name.endswith(".png"))
    html = files["report.html"].decode()
    assert html.count("data:image/png;base64,") == 3  # self-contained: the plots are inlined


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


def test_every_text_in_the_page_is_escaped_and_each_flag_is_explained() -> None:
    html = _render(_result(), model_name="<script>alert(1)</script>")["report.html"].decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "FGSM &lt;beats&gt; PGD" in html
    assert "gradient masking" in html
    assert "not broken" in html  # percentiles past the unbroken fraction


def test_the_summary_holds_the_headline_numbers_only() -> None:
    summary = report.summary(_result())
    assert summary == {
        "clean_accuracy": 0.75,
        "clean_accuracy_ci95_low": 0.4,
        "clean_accuracy_ci95_high": 0.6,
        "robust_accuracy": 0.25,
        "headline_epsilon_linf": 0.1,
        "robust_accuracy_fgsm": 0.25,
        "robust_accuracy_pgd_linf": 0.5,
        "minimal_perturbation_median": 0.05,
        "gradient_masking_flags": 1,
    }


def test_the_work_budget_counts_every_attack_step_and_the_search() -> None:
    from cohort.evaluation.jobs import MAX_GRADIENT_PASSES, gradient_passes
    from cohort.evaluation.work import SEARCH_ITERATIONS

    spec = EvaluationSpec(
        attacks=["fgsm", "pgd_linf"], epsilons_linf=[0.0, 0.1, 0.2], samples=10, steps=5, restarts=2
    )
    # fgsm: 2 non-zero ε x 1 step; pgd: 2 x 5 steps x 2 restarts; the search: 6 bisections x 5 steps
    assert gradient_passes(spec) == 10 * (2 + 20 + SEARCH_ITERATIONS * 5)
    assert gradient_passes(EvaluationSpec()) < MAX_GRADIENT_PASSES
    assert gradient_passes(EvaluationSpec(samples=10_000, steps=200)) > MAX_GRADIENT_PASSES
