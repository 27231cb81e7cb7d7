"""The producers' side: put a notification on the notifications queue."""

from __future__ import annotations

from cohort import aws
from cohort.catalogue import Queue
from cohort.notify.messages import Notification
from cohort.settings import get_settings


def enqueue(notification: Notification) -> str:
    """Queue ``notification`` for the email function; returns the SQS message id.

    Queueing the same notification twice is harmless: the email function sends
    at most one email per ``notification_id``.
    """
    sqs = aws.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.NOTIFICATIONS))["QueueUrl"]
    response = sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=notification.model_dump_json(),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": notification.kind}},
    )
    return response["MessageId"]
