"""Send one notification through SES, as raw MIME with its reports attached from S3.

Failures come in two kinds, and callers treat them differently:

- :class:`Rejected`, and every other ``CohortError`` (a missing or oversized attachment):
  this message can never be sent, so retrying is pointless;
- anything else (:class:`SendingUnavailable`, S3 or network errors): SES or the
  configuration may recover, so the message is worth retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from cohort import aws, storage
from cohort.domain.errors import CohortError, PayloadTooLarge
from cohort.notify.messages import Attachment, Notification
from cohort.notify.mime import File, compose
from cohort.notify.rendering import render
from cohort.settings import get_settings

log = logging.getLogger(__name__)

# SES takes 10 MB per message, after base64 has grown the attachments by a third.
MAX_ATTACHMENT_BYTES = 7 * 1024 * 1024
# SES refuses these for the message itself (its recipient or content), unless the reason names
# our sender: then it is the configuration that is wrong, and it can be fixed.
_REJECTIONS = frozenset({"MessageRejected", "InvalidParameterValue"})


@dataclass(frozen=True)
class SentEmail:
    notification_id: str
    message_id: str  # SES's id
    raw: bytes


class Rejected(CohortError):
    """SES refused this email for its recipient or its content; sending it again cannot succeed."""

    status_code = 422


class SendingUnavailable(Exception):
    """SES did not send now (throttled, paused, sender not verified); a later retry can succeed."""


Sink = Callable[[SentEmail], None]
_sinks: list[Sink] = []


def add_sink(sink: Sink) -> None:
    """Also hand every sent email to ``sink``; the local platform's outbox is one."""
    _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    _sinks.remove(sink)


def send(notification: Notification) -> SentEmail:
    sender = get_settings().sender_email
    raw = compose(
        sender=sender,
        notification=notification,
        rendered=render(notification),
        files=_fetch(notification.attachments),
    )
    try:
        response = aws.client("ses").send_raw_email(
            Source=sender, Destinations=[notification.to], RawMessage={"Data": raw}
        )
    except ClientError as exc:
        raise _classify(exc, sender) from exc
    sent = SentEmail(notification.notification_id, response["MessageId"], raw)
    for sink in tuple(_sinks):
        try:
            sink(sent)
        except Exception:
            # The email is sent: failing now would have it retried, and sent twice.
            log.exception("a sink of sent emails failed on %s", sent.notification_id)
    return sent


def _fetch(attachments: Iterable[Attachment]) -> list[File]:
    files, budget = [], MAX_ATTACHMENT_BYTES
    for attachment in attachments:
        try:
            data = storage.get_bytes(attachment.bucket, attachment.key, max_bytes=budget)
        except PayloadTooLarge:
            raise PayloadTooLarge(
                f"the attachments pass the limit of {MAX_ATTACHMENT_BYTES:,} bytes at {attachment.key}"
            ) from None
        budget -= len(data)
        files.append(File(attachment.filename, data))
    return files


def _classify(exc: ClientError, sender: str) -> Exception:
    error = exc.response.get("Error", {})
    code, reason = error.get("Code", "Unknown"), error.get("Message", "")
    if code in _REJECTIONS and sender.lower() not in reason.lower():
        return Rejected(f"SES rejected the email ({code}): {reason}")
    return SendingUnavailable(f"SES did not send the email ({code}): {reason}")
