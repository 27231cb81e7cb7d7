"""Helpers for the Lambda function tests: recorded events and what moto's SQS and SES hold."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from cohort import aws
from cohort.catalogue import Queue
from cohort.settings import get_settings

EVENTS = Path(__file__).resolve().parents[1] / "events"


def recorded_event(name: str) -> dict[str, Any]:
    """A copy of ``tests/events/<name>.json``, safe to change."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def sqs_event(*bodies: str | dict[str, Any]) -> dict[str, Any]:
    """The recorded SQS event's shape, one record per body, each with a message id of its own."""
    template = recorded_event("sqs_notifications")["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(template)
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["messageId"] = str(uuid.uuid4())
        record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 (SQS's checksum)
        records.append(record)
    return {"Records": records}


def sent_emails() -> list[EmailMessage]:
    """Every email moto's SES has accepted in this test, parsed."""
    backend = ses_backends[DEFAULT_ACCOUNT_ID][get_settings().aws_region]
    return [message_from_string(sent.raw_data, policy=policy.default) for sent in backend.sent_messages]


def queued_notifications() -> list[dict[str, Any]]:
    """Take every notification waiting on the notifications queue: their bodies, in order."""
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.NOTIFICATIONS))["QueueUrl"]
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return bodies
