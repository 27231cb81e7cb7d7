"""Subject, plain-text and HTML bodies of each kind of notification.

Each kind is written once, as a heading, paragraphs and a table of facts; both
bodies are laid out from that, so they never say different things. Every value
is HTML-escaped in the HTML body.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from string import Template

from cohort.domain.roles import Role
from cohort.notify.messages import EvaluationFinished, Notification, TrainingFinished, Welcome

FOOTER = "You receive this email because you have an account on Cohort."

_HTML = Template(
    """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>$subject</title></head>
<body style="font-family: Helvetica, Arial, sans-serif; color: #1f2933; line-height: 1.5; max-width: 40em;">
<h1 style="font-size: 20px;">$subject</h1>
$paragraphs
$facts
<p style="color: #7b8794; font-size: 12px;">$footer</p>
</body>
</html>
"""
)
_CELL = 'style="text-align: left; padding: 2px 16px 2px 0;"'


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Content:
    subject: str
    paragraphs: tuple[str, ...]
    facts: tuple[tuple[str, str], ...] = ()


def render(notification: Notification) -> Rendered:
    match notification:
        case Welcome():
            content = _welcome(notification)
        case TrainingFinished():
            content = _training_finished(notification)
        case EvaluationFinished():
            content = _evaluation_finished(notification)
    return Rendered(content.subject, _text(content), _html(content))


def _welcome(notification: Welcome) -> _Content:
    if notification.role is Role.SCIENTIST:
        who = "a data scientist"
        what = (
            "Browse the datasets that apps offer, upload a model and train it by federated learning on "
            "the phones that run those apps, from the website, JupyterHub or the Python SDK. You will "
            "get an email when each training job or evaluation finishes."
        )
    else:
        who = "an app developer"
        what = (
            "Register your app's on-device data as a dataset, then create an API key for the app so "
            "that its devices can take part in training. Raw data never leaves the devices."
        )
    return _Content("Welcome to Cohort", (f"Your Cohort account is ready: you signed up as {who}.", what))


def _training_finished(n: TrainingFinished) -> _Content:
    if n.status == "completed":
        paragraphs = (
            f"Training job {n.job_id} of the model {n.model_name} completed "
            f"{n.rounds_completed} of {n.total_rounds} rounds.",
            f'Download the trained model with the SDK: client.download_trained_model("{n.job_id}").',
        )
    else:
        paragraphs = (
            f"Training job {n.job_id} of the model {n.model_name} failed after "
            f"{n.rounds_completed} of {n.total_rounds} rounds: {n.reason or 'no reason was recorded'}.",
            "The job's rounds and their failed attempts are listed on the website and by client.job().",
        )
    facts = [("Job", n.job_id), ("Model", n.model_name), ("Status", n.status)]
    facts.append(("Rounds", f"{n.rounds_completed} of {n.total_rounds}"))
    if n.final_accuracy is not None:
        facts.append(("Final accuracy on devices", f"{n.final_accuracy:.2%}"))
    if n.final_loss is not None:
        facts.append(("Final loss on devices", f"{n.final_loss:.4f}"))
    return _Content(f"Training of {n.model_name} {n.status}", paragraphs, tuple(facts))


def _evaluation_finished(n: EvaluationFinished) -> _Content:
    subject = f"Evaluation of {n.model_name} {n.status}"
    if n.status == "completed":
        report = " The full report is attached." if n.attachments else ""
        paragraphs = (
            f"The robustness evaluation {n.evaluation_id} of the model {n.model_name} completed.{report}",
            *_headline(n),
        )
        if n.results.get("headline_reliable") == 0:
            subject += ": its robust accuracy is not reliable"
    else:
        paragraphs = (
            f"The robustness evaluation {n.evaluation_id} of the model {n.model_name} failed: "
            f"{n.reason or 'no reason was recorded'}.",
        )
    facts = [("Evaluation", n.evaluation_id), ("Model", n.model_name), ("Status", n.status)]
    facts += [(name, f"{value:.4g}") for name, value in n.results.items()]
    return _Content(subject, paragraphs, tuple(facts))


def _headline(n: EvaluationFinished) -> tuple[str, ...]:
    """The robust accuracy in words, with its interval and budget, and a plain warning when unreliable."""
    results = n.results
    if "robust_accuracy" not in results:
        return ()
    number = f"Robust accuracy: {results['robust_accuracy']:.1%}"
    if "robust_accuracy_ci95_low" in results and "robust_accuracy_ci95_high" in results:
        number += (
            f" (95% confidence interval {results['robust_accuracy_ci95_low']:.1%} to "
            f"{results['robust_accuracy_ci95_high']:.1%})"
        )
    for norm, label in (("linf", "L∞"), ("l2", "L2")):
        if f"headline_epsilon_{norm}" in results:
            number += f" at {label} ε = {results[f'headline_epsilon_{norm}']:g}"
    number += ", the worst case per sample over the attacks that ran."
    if results.get("headline_reliable") != 0:
        return (number,)
    failed = int(results.get("gradient_masking_flags", 0))
    plural = "s" if failed != 1 else ""
    bound = f"{failed} gradient-masking check{plural} failed, so this number" if failed else "This number"
    report = "The attached report" if n.attachments else "The report"
    advice = n.advice.strip() or f"{report} says what each check found and what to try."
    warning = (
        f"Not reliable: possible gradient masking. {bound} is an upper bound that may be far above the "
        f"model's true robust accuracy. {advice}"
    )
    return number, warning


def _text(content: _Content) -> str:
    width = max((len(label) for label, _ in content.facts), default=0)
    facts = "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in content.facts)
    blocks = [content.subject, *content.paragraphs, *([facts] if facts else []), FOOTER]
    return "\n\n".join(blocks) + "\n"


def _html(content: _Content) -> str:
    paragraphs = "\n".join(f"<p>{escape(paragraph)}</p>" for paragraph in content.paragraphs)
    rows = "\n".join(
        f"<tr><th {_CELL}>{escape(label)}</th><td {_CELL}>{escape(value)}</td></tr>"
        for label, value in content.facts
    )
    return _HTML.substitute(
        subject=escape(content.subject),
        paragraphs=paragraphs,
        facts=f"<table>\n{rows}\n</table>" if rows else "",
        footer=escape(FOOTER),
    )
