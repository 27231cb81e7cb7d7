"""The email function on moto, invoked the two ways it is on AWS: from SQS and from API Gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from cohort import aws, storage
from cohort.catalogue import Bucket, Table
from cohort.local import lambda_runtime
from cohort.local.provision import UserPool
from cohort.notify.sending import MAX_ATTACHMENT_BYTES
from cohort.settings import get_settings

from .functions import recorded_event, sent_emails, sqs_event

SUB = "6b9c4a57-0d3e-4a8f-9a34-5c2f1d7e8b90"  # the user of the recorded API event
EMAIL = "ada@example.org"
SENDER = "notifications@cohort.local"  # Settings' default, which provisioning verified


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    return lambda_runtime.invoke("email", event)


def _training_finished(notification_id: str = "training-finished-job1", **changes: Any) -> dict[str, Any]:
    body = {
        "notification_id": notification_id,
        "kind": "training_finished",
        "to": EMAIL,
        "job_id": "job1",
        "model_name": "digits-cnn <b>v2</b>",
        "status": "completed",
        "reason": "trained for 3 rounds",
        "rounds_completed": 3,
        "total_rounds": 3,
        "final_loss": 0.1093,
        "final_accuracy": 0.9689,
    }
    return body | changes


def _failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@pytest.fixture
def ses_error(account: UserPool) -> Iterator[Stubber]:
    """SES answering with errors that moto does not produce; queue one with ``add_client_error``."""
    with Stubber(aws.client("ses")) as stubber:
        yield stubber


# -- From the notifications queue ----------------------------------------------------


def test_the_recorded_batch_is_sent_as_html_and_text(account: UserPool) -> None:
    # Given the recorded SQS batch: a welcome and a training-finished notification
    event = recorded_event("sqs_notifications")

    # When the email function handles it
    response = _invoke(event)

    # Then no record failed and each became one email from the sender to its recipient
    assert response == {"batchItemFailures": []}
    emails = sent_emails()
    assert [(e["From"], e["To"], e["Subject"]) for e in emails] == [
        (f"Cohort <{SENDER}>", EMAIL, "Welcome to Cohort"),
        (f"Cohort <{SENDER}>", EMAIL, "Training of digits-cnn completed"),
    ]
    # with a plain-text and an HTML body that say the same
    training = emails[1]
    assert training.get_content_type() == "multipart/alternative"
    text = training.get_body(("plain",)).get_content()
    html = training.get_body(("html",)).get_content()
    for fact in ("10 of 10", "96.89%", "0.1093", 'client.download_trained_model("4f1c2a9e'):
        assert fact in text
    assert "96.89%" in html
    assert "&quot;4f1c2a9e8d7b4c6a9e0f1b2c3d4e5f60&quot;" in html


def test_values_are_escaped_in_the_html_body(account: UserPool) -> None:
    # Given a model name with markup in it
    event = sqs_event(_training_finished())

    # When it is sent
    assert _failures(_invoke(event)) == []

    # Then the HTML shows the markup as text, and the plain text shows it as typed
    (email,) = sent_emails()
    assert "digits-cnn &lt;b&gt;v2&lt;/b&gt;" in email.get_body(("html",)).get_content()
    assert "<b>" not in email.get_body(("html",)).get_content()
    assert "digits-cnn <b>v2</b>" in email.get_body(("plain",)).get_content()


def test_reports_are_attached_from_s3(account: UserPool) -> None:
    # Given an evaluation report in the reports bucket and a notification that attaches it
    report = b"%PDF-1.7 robustness report"
    storage.put_bytes(Bucket.REPORTS, "evaluations/e1/report.pdf", report)
    body = {
        "notification_id": "evaluation-finished-e1",
        "kind": "evaluation_finished",
        "to": EMAIL,
        "evaluation_id": "e1",
        "model_name": "digits-cnn",
        "status": "completed",
        "results": {"clean_accuracy": 0.97, "fgsm_accuracy@eps=0.1": 0.61},
        "attachments": [{"key": "evaluations/e1/report.pdf", "filename": "robustness-report.pdf"}],
    }

    # When it is sent
    assert _failures(_invoke(sqs_event(body))) == []

    # Then the email is multipart/mixed: the two bodies, then the report, byte for byte
    (email,) = sent_emails()
    assert email.get_content_type() == "multipart/mixed"
    assert "The full report is attached." in email.get_body(("plain",)).get_content()
    (attachment,) = email.iter_attachments()
    assert attachment.get_filename() == "robustness-report.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == report


def test_the_same_notification_is_sent_once_however_often_it_comes(account: UserPool) -> None:
    # Given one notification queued three times: twice in one batch, once more later (a retry)
    body = _training_finished()

    # When the function handles the batch, then the retry
    first = _invoke(sqs_event(body, body))
    retry = _invoke(sqs_event(body))

    # Then every record succeeded, and one email went out
    assert _failures(first) == _failures(retry) == []
    assert len(sent_emails()) == 1
    # and the idempotency table remembers the id, with an expiry for DynamoDB's TTL
    (record,) = aws.client("dynamodb").scan(TableName=get_settings().catalogue.table(Table.IDEMPOTENCY))[
        "Items"
    ]
    assert record["id"]["S"].startswith("notification#")
    assert record["status"]["S"] == "COMPLETED"
    assert int(record["expiration"]["N"]) > 0


def test_one_bad_record_fails_alone(account: UserPool) -> None:
    # Given a batch with a message off the contract between two good ones
    event = sqs_event(_training_finished("a"), '{"kind": "welcome", "to": "ada@"}', _training_finished("b"))
    bad = event["Records"][1]["messageId"]

    # When the function handles it
    response = _invoke(event)

    # Then only the bad record is reported, for SQS to retry and dead-letter, and the others were sent
    assert _failures(response) == [bad]
    assert len(sent_emails()) == 2


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({k: v for k, v in _training_finished().items() if k != "to"}),  # missing field
        json.dumps(_training_finished(to="ada@example")),  # invalid address
        json.dumps(_training_finished(job_id="j" * 201)),  # oversized field
        json.dumps(_training_finished(reason="r" * 2001)),
        json.dumps(_training_finished(notification_id="../../etc/passwd")),
        json.dumps(_training_finished(attachments=[{"key": "k", "filename": "f.pdf"}] * 11)),
        json.dumps(_training_finished(kind="invoice")),
        json.dumps(_training_finished(surprise=True)),  # unknown field
    ],
)
def test_messages_off_the_contract_are_retried_and_never_sent(account: UserPool, body: str) -> None:
    # Given a message that does not follow the notification contract
    event = sqs_event(body)

    # When the function handles it
    response = _invoke(event)

    # Then its record fails, so it ends in the dead-letter queue for a person, and nothing is sent
    assert _failures(response) == [event["Records"][0]["messageId"]]
    assert sent_emails() == []


@pytest.mark.parametrize(
    ("size", "key"),
    [(MAX_ATTACHMENT_BYTES + 1, "reports/huge.pdf"), (None, "reports/never-written.pdf")],
    ids=["oversized", "missing"],
)
def test_an_attachment_that_cannot_be_sent_drops_the_message(
    account: UserPool, size: int | None, key: str
) -> None:
    # Given a notification whose attachment is over the size limit, or not there
    if size is not None:
        storage.put_bytes(Bucket.REPORTS, key, b"\0" * size)
    body = _training_finished(attachments=[{"key": key, "filename": "report.pdf"}])

    # When the function handles it
    response = _invoke(sqs_event(body))

    # Then no retry is asked for, since none could send it, and nothing was sent
    assert _failures(response) == []
    assert sent_emails() == []


def test_a_recipient_ses_rejects_is_dropped_not_retried(account: UserPool, ses_error: Stubber) -> None:
    # Given SES refusing the recipient (as in the SES sandbox, for an unverified address)
    ses_error.add_client_error(
        "send_raw_email",
        service_error_code="MessageRejected",
        service_message="Email address is not verified. The following identities failed the check "
        f"in region US-EAST-1: {EMAIL}",
        http_status_code=400,
    )

    # When the function handles the notification
    response = _invoke(sqs_event(_training_finished()))

    # Then the record succeeds: retrying could not deliver it (the log and a metric say so)
    assert _failures(response) == []
    ses_error.assert_no_pending_responses()


@pytest.mark.parametrize(
    "code", ["Throttling", "MailFromDomainNotVerifiedException", "AccountSendingPausedException"]
)
def test_transient_and_configuration_errors_are_retried(
    account: UserPool, ses_error: Stubber, code: str
) -> None:
    # Given SES failing for a reason that time or an operator can fix
    ses_error.add_client_error("send_raw_email", service_error_code=code, http_status_code=400)
    event = sqs_event(_training_finished())

    # When the function handles the notification
    response = _invoke(event)

    # Then the record fails, so SQS retries it
    assert _failures(response) == [event["Records"][0]["messageId"]]


def test_an_unverified_sender_is_retried_and_sends_once_verified(
    account: UserPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sender address nobody verified in SES (moto rejects it as SES does)
    monkeypatch.setenv("COHORT_SENDER_EMAIL", "someone-else@cohort.local")
    aws.reset_clients()
    event = sqs_event(_training_finished())

    # When the function handles the notification
    first = _invoke(event)

    # Then the record fails for a retry, and the failed attempt left no idempotency record behind
    assert _failures(first) == [event["Records"][0]["messageId"]]
    assert sent_emails() == []
    # so once the sender is verified, the retry sends it
    aws.client("ses").verify_email_identity(EmailAddress="someone-else@cohort.local")
    assert _failures(_invoke(event)) == []
    assert [e["From"] for e in sent_emails()] == ["Cohort <someone-else@cohort.local>"]


# -- From API Gateway ------------------------------------------------------------------------


def _api(body: object | None = None, claims: dict[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    """The recorded API Gateway event, with another body or other claims."""
    event = recorded_event("api_gateway_notification") | changes
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if claims is not None:
        event["requestContext"]["authorizer"]["claims"] = claims
    return event


def _answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


def test_a_signed_in_person_gets_a_notification_sent_to_themselves_once(account: UserPool) -> None:
    # Given the recorded request: an evaluation summary, with no recipient given
    event = _api()

    # When it reaches the function twice (a client retrying)
    first, again = _answer(_invoke(event)), _answer(_invoke(event))

    # Then both get 200 with the same SES message id, the second marked as a duplicate
    assert first[0] == again[0] == 200
    assert first[1]["notification_id"] == f"user-{SUB}-report-digits-cnn-1"
    assert first[1]["duplicate"] is False
    assert again[1] == first[1] | {"duplicate": True}
    # and one email went to the caller's own verified address
    assert [(e["To"], e["Subject"]) for e in sent_emails()] == [(EMAIL, "Evaluation of digits-cnn completed")]


def test_a_caller_cannot_use_up_another_notification_id(account: UserPool) -> None:
    # Given a request reusing the id of the platform's welcome email to this person
    event = _api(body=json.loads(_api()["body"]) | {"notification_id": f"welcome-{SUB}"})
    assert _answer(_invoke(event))[0] == 200

    # When the platform then sends the real welcome email
    welcome = {"notification_id": f"welcome-{SUB}", "kind": "welcome", "to": EMAIL, "role": "scientist"}
    assert _failures(_invoke(sqs_event(welcome))) == []

    # Then it went out: the caller's id was scoped to them
    assert [e["Subject"] for e in sent_emails()] == [
        "Evaluation of digits-cnn completed",
        "Welcome to Cohort",
    ]


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({}, 401),  # no Cognito authorizer in front of the route
        ({"sub": SUB}, 401),  # an identity without an email
        ({"sub": SUB, "email": EMAIL, "email_verified": "false"}, 403),
    ],
)
def test_requests_without_a_verified_identity_are_refused(
    account: UserPool, claims: dict[str, str], status: int
) -> None:
    # When a request arrives without a caller whose address is verified
    code, answer = _answer(_invoke(_api(claims=claims)))

    # Then it is refused with a reason, and nothing is sent
    assert code == status
    assert answer["detail"]
    assert sent_emails() == []


def test_no_one_can_send_to_another_address(account: UserPool) -> None:
    # Given a request addressed to someone other than the caller
    body = json.loads(_api()["body"]) | {"to": "grace@example.org"}

    # When it reaches the function
    code, answer = _answer(_invoke(_api(body=body)))

    # Then it is forbidden and nothing is sent
    assert (code, answer) == (403, {"detail": "you may only send notifications to your own email address"})
    assert sent_emails() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("", 422, "JSON object in the body"),
        ("{not json", 422, "not JSON"),
        ("[1, 2]", 422, "must be a JSON object"),
        ({"kind": "welcome", "role": "scientist"}, 422, "notification_id"),
        ({"notification_id": "n1", "kind": "welcome"}, 422, "welcome.role: Field required"),
        ({"notification_id": "n1", "kind": "welcome", "role": "scientist", "bcc": "x@y.org"}, 422, "bcc"),
        ({"notification_id": "n" * 200, "kind": "welcome", "role": "scientist"}, 422, "at most 158"),
        (
            {"notification_id": "n1", "kind": "welcome", "role": "scientist", "attachments": [{"key": "k"}]},
            403,
            "attachments",
        ),
        ({"notification_id": "n1", "kind": "welcome", "role": "x" * 2_000_000}, 413, "limit"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(
    account: UserPool, body: object, status: int, says: str
) -> None:
    # When a request with a malformed, incomplete or oversized body arrives
    code, answer = _answer(_invoke(_api(body=body)))

    # Then it gets a 4xx naming the problem, and nothing is sent
    assert code == status
    assert says in answer["detail"]
    assert sent_emails() == []


def test_ses_failures_on_the_api_are_a_503(account: UserPool, ses_error: Stubber) -> None:
    # Given SES throttling the function
    ses_error.add_client_error("send_raw_email", service_error_code="Throttling", http_status_code=400)

    # When a request arrives
    code, answer = _answer(_invoke(_api()))

    # Then the caller is told to try again later, without SES's internals
    assert (code, answer) == (503, {"detail": "the email could not be sent now; try again later"})


def test_other_routes_are_not_found(account: UserPool) -> None:
    # When a request for another path reaches the function, Then it is not found and nothing is sent
    assert _invoke(_api(path="/v1/other", resource="/v1/other"))["statusCode"] == 404
    assert sent_emails() == []


def test_an_event_of_another_source_is_an_error(account: UserPool) -> None:
    # When an event neither SQS nor API Gateway sends reaches the function, Then it fails loudly
    with pytest.raises(ValueError, match="expected an SQS batch or an API Gateway REST request"):
        _invoke({"detail-type": "Scheduled Event"})
