"""The notification contract, its rendering and the MIME message, without AWS."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy

import pytest

from cohort.domain.errors import InvalidInput
from cohort.notify.messages import (
    EvaluationFinished,
    TrainingFinished,
    Welcome,
    check_address,
    parse_notification,
)
from cohort.notify.mime import NOTIFICATION_ID_HEADER, File, compose
from cohort.notify.rendering import render


def _words(text: str) -> list[str]:
    return re.findall(r"[^\s:]+", text)  # a fact reads "Label: value" in text, two cells in HTML


TRAINING = {
    "notification_id": "training-finished-j1",
    "kind": "training_finished",
    "to": "ada@example.org",
    "job_id": "j1",
    "model_name": "cnn",
    "status": "failed",
    "reason": "round 2 failed 3 times: quorum not met",
    "rounds_completed": 1,
    "total_rounds": 5,
}

# The headline numbers as the evaluator records them (cohort.evaluation.report.summary).
EVALUATION_RESULTS = {
    "clean_accuracy": 0.9,
    "robust_accuracy": 0.45,
    "robust_accuracy_ci95_low": 0.3071,
    "robust_accuracy_ci95_high": 0.6017,
    "headline_epsilon_linf": 0.1,
    "headline_reliable": 1.0,
    "gradient_masking_flags": 0.0,
}


def _evaluation(results: dict[str, float], advice: str = "") -> EvaluationFinished:
    return EvaluationFinished(
        notification_id="evaluation-finished-e1",
        to="ada@example.org",
        evaluation_id="e1",
        model_name="cnn",
        status="completed",
        results=results,
        advice=advice,
        attachments=[{"key": "evaluations/e1/report.html", "filename": "robustness-report-e1.html"}],
    )


@pytest.mark.parametrize(
    "address", ["ada@example.org", "a.b+tag@mail.example.co.uk", "o'neil@x-y.io", "x@xn--bcher-kva.example"]
)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "ada",
        "ada@",
        "@example.org",
        "ada@example",  # no top-level domain
        "ada@-example.org",
        "a..b@example.org",
        "Ada <ada@example.org>",  # a display name
        "ada@example.org\r\nBcc: eve@example.org",  # header injection
        "ada@example.org, eve@example.org",
        f"{'a' * 65}@example.org",  # local part over 64
        f"a@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 63}.org",  # over 254 in all
    ],
)
def test_anything_but_one_plain_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"email address|characters"):
        check_address(address)


def test_a_line_break_in_a_name_is_refused() -> None:
    # Given a model name that would add a Bcc header to the email's subject
    body = TRAINING | {"model_name": "cnn\r\nBcc: eve@example.org"}

    # When it is validated, Then it is refused, naming the field
    with pytest.raises(InvalidInput, match=r"training_finished\.model_name"):
        parse_notification(body)


@pytest.mark.parametrize(
    "notification",
    [
        Welcome(notification_id="w", to="ada@example.org", role="app_developer"),
        parse_notification(TRAINING),
        EvaluationFinished(
            notification_id="e",
            to="ada@example.org",
            evaluation_id="e1",
            model_name="cnn",
            status="completed",
            results={"pgd_accuracy@eps=8/255": 0.4321},
        ),
        EvaluationFinished(
            notification_id="e",
            to="ada@example.org",
            evaluation_id="e1",
            model_name="cnn",
            status="completed",
            results=EVALUATION_RESULTS | {"headline_reliable": 0.0, "gradient_masking_flags": 2.0},
            advice="Remove the <steep> sigmoid & evaluate again.",
        ),
    ],
    ids=["welcome", "training_finished", "evaluation_finished", "evaluation_not_reliable"],
)
def test_text_and_html_say_the_same(notification: Welcome | TrainingFinished | EvaluationFinished) -> None:
    # When a notification is rendered
    rendered = render(notification)

    # Then the HTML body shows the same words as the text body (the subject twice: title and heading)
    visible = html.unescape(re.sub(r"<[^>]+>", " ", rendered.html))
    assert _words(visible) == _words(rendered.subject) + _words(rendered.text)


def test_the_evaluation_email_words_the_robust_accuracy_with_its_interval_and_budget() -> None:
    rendered = render(_evaluation(EVALUATION_RESULTS))
    assert rendered.subject == "Evaluation of cnn completed"
    assert (
        "Robust accuracy: 45.0% (95% confidence interval 30.7% to 60.2%) at L∞ ε = 0.1, the worst case per "
        "sample over the attacks that ran." in rendered.text
    )
    assert "Not reliable" not in rendered.text


def test_an_unreliable_robust_accuracy_is_said_so_next_to_the_number_with_what_to_try() -> None:
    # Given an evaluation whose gradient-masking checks failed twice, with the report's advice
    results = EVALUATION_RESULTS | {"headline_reliable": 0.0, "gradient_masking_flags": 2.0}
    rendered = render(_evaluation(results, advice="Remove the steep sigmoid and evaluate again."))

    # Then the subject says so, and the paragraph after the number says it in plain words, with the advice
    assert rendered.subject == "Evaluation of cnn completed: its robust accuracy is not reliable"
    number, warning = rendered.text.split("\n\n")[2:4]
    assert number.startswith("Robust accuracy: 45.0% (95% confidence interval 30.7% to 60.2%)")
    assert warning == (
        "Not reliable: possible gradient masking. 2 gradient-masking checks failed, so this number is an "
        "upper bound that may be far above the model's true robust accuracy. Remove the steep sigmoid and "
        "evaluate again."
    )


def test_an_unreliable_robust_accuracy_without_advice_points_to_the_attached_report() -> None:
    results = EVALUATION_RESULTS | {"headline_reliable": 0.0, "gradient_masking_flags": 1.0}
    text = render(_evaluation(results)).text
    assert "1 gradient-masking check failed, so this number is an upper bound" in text
    assert "The attached report says what each check found and what to try." in text


def test_a_failed_job_says_why() -> None:
    text = render(parse_notification(TRAINING)).text
    assert "failed after 1 of 5 rounds: round 2 failed 3 times: quorum not met." in text


def test_the_message_nests_the_bodies_and_attaches_the_files() -> None:
    # Given a rendered notification and one report
    notification = parse_notification(TRAINING)
    raw = compose(
        sender="notifications@cohort.example",
        notification=notification,
        rendered=render(notification),
        files=[File("report.csv", b"metric,value\r\naccuracy,0.9\r\n")],
    )

    # Then it is multipart/mixed around multipart/alternative (text, then HTML) and the file
    message = message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert [part.get_content_type() for part in alternative.get_payload()] == ["text/plain", "text/html"]
    assert (attachment.get_filename(), attachment.get_content_type()) == ("report.csv", "text/csv")
    # with the headers a mail client and a person reading the outbox need
    assert message["From"] == "Cohort <notifications@cohort.example>"
    assert message["To"] == "ada@example.org"
    assert message[NOTIFICATION_ID_HEADER] == "training-finished-j1"
    assert message["Message-ID"].endswith("@cohort.example>")
    # and every line ends in CRLF, as SMTP requires
    assert raw.count(b"\n") == raw.count(b"\r\n")
