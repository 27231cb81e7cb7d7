"""The notification contract: what producers put on the notifications queue.

One model per kind, told apart by ``kind``. Every field is bounded, so a
message always fits in SQS and in an email; unknown fields are refused, so a
producer's typo fails where it is made, not in the email function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from cohort.catalogue import Bucket
from cohort.domain.errors import InvalidInput, describe_validation_error
from cohort.domain.roles import Role

MAX_ATTACHMENTS = 10
MAX_NOTIFICATION_ID = 200
MAX_REASON = 2000
MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit, less the angle brackets
MAX_LOCAL_PART_LENGTH = 64

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A plain address, as SES takes it: no display name, no quoted local part, no IP literal.
_ADDRESS = re.compile(
    rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?:{_LABEL}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9-]{{1,59}})"
)


def check_address(value: str) -> str:
    """Return ``value`` if it is one plain email address; raise ValueError saying why not."""
    if len(value) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"an email address has at most {MAX_ADDRESS_LENGTH} characters")
    match = _ADDRESS.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a valid email address")
    if len(match["local"]) > MAX_LOCAL_PART_LENGTH:
        raise ValueError(f"the part of {value!r} before '@' is over {MAX_LOCAL_PART_LENGTH} characters")
    return value


EmailAddress = Annotated[str, AfterValidator(check_address)]
# Also the .eml file name in the local outbox: letters, digits, '.', '_' and '-' only.
NotificationId = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NOTIFICATION_ID - 1}}}$")
]
# One line: names reach the subject header, where a line break would start a header of its own.
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Reason = Annotated[str, StringConstraints(max_length=MAX_REASON)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Attachment(BaseModel):
    """A report stored in S3, attached as ``filename``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: Literal[Bucket.REPORTS] = Bucket.REPORTS  # the only bucket the email function may read
    key: str = Field(min_length=1, max_length=1024)
    filename: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


class _Notification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    notification_id: NotificationId = Field(
        description="Idempotency key: at most one email is sent per id, however often it is queued"
    )
    to: EmailAddress
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=MAX_ATTACHMENTS)


class Welcome(_Notification):
    kind: Literal["welcome"] = "welcome"
    role: Role


class TrainingFinished(_Notification):
    kind: Literal["training_finished"] = "training_finished"
    job_id: Name
    model_name: Name
    status: Literal["completed", "failed"]
    reason: Reason = ""
    rounds_completed: int = Field(ge=0, le=1_000_000)
    total_rounds: int = Field(ge=1, le=1_000_000)
    final_loss: Finite | None = Field(None, ge=0)
    final_accuracy: float | None = Field(None, ge=0, le=1)


class EvaluationFinished(_Notification):
    kind: Literal["evaluation_finished"] = "evaluation_finished"
    evaluation_id: Name
    model_name: Name
    status: Literal["completed", "failed"]
    reason: Reason = ""
    # The headline numbers (``cohort.evaluation.report.summary``): the email words robust_accuracy with
    # its interval, and says so when headline_reliable is 0.
    results: dict[Name, Finite] = Field(default_factory=dict, max_length=50)
    # What to try when the headline is not reliable (the report's ``headline.advice``).
    advice: Reason = ""


Notification = Annotated[Welcome | TrainingFinished | EvaluationFinished, Field(discriminator="kind")]
_NOTIFICATION: TypeAdapter[Notification] = TypeAdapter(Notification)


def parse_notification(data: str | bytes | Mapping[str, Any]) -> Notification:
    """Validate a queued message or an API body; InvalidInput names each problem."""
    try:
        if isinstance(data, str | bytes):
            return _NOTIFICATION.validate_json(data)
        return _NOTIFICATION.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(f"not a valid notification: {describe_validation_error(exc)}") from None
