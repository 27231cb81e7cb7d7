"""The email API route's rules: a signed-in person may have a notification sent to themselves.

The caller is whoever API Gateway's Cognito authorizer says (its verified
claims); the body is a notification of the queue's contract, with ``to``
optional. Three rules keep the route from being a way to reach or silence
others:

- the email goes to the caller's own verified address, never to another;
- attachments are refused: they are reports in S3, and only the platform knows whose;
- the notification id is scoped to the caller, so no one can use up (and so
  suppress) an id the platform or another person will send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cohort.domain.errors import Forbidden, InvalidInput, PayloadTooLarge, Unauthorized
from cohort.notify.messages import MAX_NOTIFICATION_ID, Notification, parse_notification


@dataclass(frozen=True)
class Caller:
    user_id: str
    email: str


def caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    """The person API Gateway's Cognito authorizer let through; claims hold strings only."""
    user_id, email = claims.get("sub"), claims.get("email")
    if not user_id or not email:
        raise Unauthorized("sign in: this route needs a Cognito ID token, and the request carried none")
    if str(claims.get("email_verified", "")).lower() != "true":
        raise Forbidden("verify your email address first")
    return Caller(user_id=str(user_id), email=str(email))


def requested_notification(body: str | None, caller: Caller, max_bytes: int) -> Notification:
    """The notification a request body asks for, addressed to the caller, its id scoped to them."""
    if not body:
        raise InvalidInput("send the notification as a JSON object in the body")
    size = len(body.encode())
    if size > max_bytes:
        raise PayloadTooLarge(f"the body is {size:,} bytes; the limit is {max_bytes:,}")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object")
    to = document.get("to", caller.email)
    if not isinstance(to, str) or to.casefold() != caller.email.casefold():
        raise Forbidden("you may only send notifications to your own email address")
    if document.get("attachments"):
        raise Forbidden("attachments are added by the platform only")
    notification_id = document.get("notification_id")
    if not isinstance(notification_id, str) or not notification_id:
        raise InvalidInput("notification_id: a non-empty string is required")
    prefix = f"user-{caller.user_id}-"
    if len(prefix) + len(notification_id) > MAX_NOTIFICATION_ID:
        raise InvalidInput(
            f"notification_id: at most {MAX_NOTIFICATION_ID - len(prefix)} characters on this route"
        )
    return parse_notification({**document, "notification_id": prefix + notification_id, "to": caller.email})
