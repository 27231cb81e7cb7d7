"""The email function: notifications from the notifications queue or the API, sent through SES.

- From SQS, in batches with partial responses. A message that can never be
  sent (SES rejected it, its attachment is missing or too large) is logged,
  counted and dropped. Anything else fails its record, so SQS retries it and,
  after five receives, parks it in the dead-letter queue: transient errors, a
  sender not verified in SES, and messages off the contract, which only a
  Cohort bug or a version skew produces and which a redrive can deliver once
  fixed.
- From ``POST /v1/notifications`` behind a Cognito authorizer: a person has a
  notification sent to themselves (``cohort.notify.requests``).

Either way each notification id is sent at most once (``cohort.notify.delivery``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from cohort.domain.errors import CohortError
from cohort.notify.delivery import Delivery, deliver
from cohort.notify.messages import Notification, parse_notification
from cohort.notify.requests import caller_from_claims, requested_notification
from cohort.notify.sending import SendingUnavailable
from cohort.settings import get_settings

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
# A batch whose every record failed is reported like any other: each record is retried alone.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=_on_record, processor=processor, context=context
        )
    if "httpMethod" in event:
        return app.resolve(event, context)
    raise ValueError("expected an SQS batch or an API Gateway REST request")


def _on_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    try:
        notification = parse_notification(record.body)
    except CohortError as exc:
        logger.error(
            "message off the contract: left for the dead-letter queue",
            extra={"sqs_message_id": record.message_id, "problem": exc.message},
        )
        metrics.add_metric(name="NotificationsInvalid", unit=MetricUnit.Count, value=1)
        raise
    try:
        _deliver(notification, lambda_context)
    except CohortError:
        return  # logged and counted: no retry can send it


def _deliver(notification: Notification, lambda_context: LambdaContext) -> Delivery:
    about = {"notification_id": notification.notification_id, "kind": notification.kind}
    try:
        delivery = deliver(notification, lambda_context)
    except CohortError as exc:
        logger.error("email cannot be sent", extra={**about, "problem": exc.message})
        metrics.add_metric(name="EmailsRejected", unit=MetricUnit.Count, value=1)
        raise
    except Exception:
        logger.exception("email not sent this time", extra=about)
        metrics.add_metric(name="EmailsFailed", unit=MetricUnit.Count, value=1)
        raise
    if delivery.duplicate:
        logger.info("sent before: not sent again", extra=about)
        metrics.add_metric(name="EmailsDuplicate", unit=MetricUnit.Count, value=1)
    else:
        logger.info("email sent", extra={**about, "ses_message_id": delivery.message_id})
        metrics.add_metric(name="EmailsSent", unit=MetricUnit.Count, value=1)
    return delivery


@app.post("/v1/notifications")
def post_notification() -> Response:
    event = app.current_event
    caller = caller_from_claims(event.request_context.authorizer.claims)
    notification = requested_notification(event.decoded_body, caller, get_settings().max_request_bytes)
    return _json(200, _deliver(notification, app.lambda_context).model_dump())


@app.exception_handler(CohortError)
def _refused(exc: CohortError) -> Response:
    return _json(exc.status_code, {"detail": exc.message})


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _in_progress(_: IdempotencyAlreadyInProgressError) -> Response:
    return _json(409, {"detail": "this notification is being sent right now; ask again in a minute"})


@app.exception_handler(SendingUnavailable)
def _unavailable(_: SendingUnavailable) -> Response:
    return _json(503, {"detail": "the email could not be sent now; try again later"})


def _json(status_code: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body)
