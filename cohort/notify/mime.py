"""The raw email SES sends: text and HTML as alternatives, then the attached files."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid

from cohort.notify.messages import Notification
from cohort.notify.rendering import Rendered

SENDER_NAME = "Cohort"
NOTIFICATION_ID_HEADER = "X-Cohort-Notification-Id"


@dataclass(frozen=True)
class File:
    filename: str
    data: bytes


def compose(*, sender: str, notification: Notification, rendered: Rendered, files: Sequence[File]) -> bytes:
    """multipart/mixed holding multipart/alternative (text, HTML) and one part per file; CRLF lines."""
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((SENDER_NAME, sender))
    message["To"] = notification.to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message[NOTIFICATION_ID_HEADER] = notification.notification_id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    for file in files:
        content_type = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(file.data, maintype=maintype, subtype=subtype, filename=file.filename)
    return message.as_bytes()
